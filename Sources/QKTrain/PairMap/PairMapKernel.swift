import Foundation
import QKTensor

/// The forward and backward pass of step 2 for one sequence.
///
/// The effective map W = M·m is read from a dense block W_blk[row, head, col] over a set of
/// query features (rows) and key features (columns): either the live features of the whole
/// training set (the live-block layout of `PairMapObjective`, shared by all sequences) or just the features of this one
/// sequence, gathered from the co-occurrence index (`runGathered`). Then
///
///     U[p,h,:]   = Σ_{i active at p} aQ_i(p) W_blk[i,h,:]      (~20 contiguous row updates per p,
///                                                               run feature by feature)
///     S          = U · A_K^T + B                               (one GEMM over [T·heads, cols];
///                                                                A_K = dense [T, cols] key codes)
///     P̂(p,h,·)   = softmax over allowed s;   KL = Σ_s P (log P − log P̂)
///
/// and the backward pass runs the same products in reverse with G = (P̂ − P)/rows:
///
///     V              = G · A_K                                 (one GEMM, [T·heads, T] × [T, cols])
///     dW_blk[i,h,:] += aQ_i(p) V[p,h,:]                        (~20 row updates per p)
///
/// The query side stays sparse (its codes pick whole rows of W_blk); the key side goes through
/// BLAS, because [T, cols] is small and dense enough that a GEMM beats any sparse loop. The cost
/// is O(T · (L0 · cols · heads + T · cols · heads)), never O(d_Q · d_K · heads). Each worker
/// thread owns one kernel (its buffers are reused across sequences).
final class PairMapKernel {
    let nHead: Int
    let causal: Bool
    private var queryLocal: [Int32]
    private var keyLocal: [Int32]
    private var usedQuery: [Int32] = []
    private var usedKey: [Int32] = []
    private var qIdx: [Int32] = []
    private var block = Buffer()        // gathered W_blk (per-sequence mode)
    private var blockGrad = Buffer()    // gathered dL/dW_blk (per-sequence mode)
    private var u = Buffer()            // U [T, head, cols]; reused for V
    private var keyDense = Buffer()     // A_K [T, cols]
    private var scores = Buffer()       // S [T, head, T]; then P̂, then G
    private var keyBias = Buffer()      // [head, T]

    init(queryWidth: Int, keyWidth: Int, nHead: Int, causal: Bool) {
        self.nHead = nHead; self.causal = causal
        queryLocal = [Int32](repeating: -1, count: queryWidth)
        keyLocal = [Int32](repeating: -1, count: keyWidth)
    }

    deinit { for b in [block, blockGrad, u, keyDense, scores, keyBias] { b.free() } }

    /// The query codes' non-zeros (entry number and position) grouped by W_blk row, so that one
    /// row's updates run back to back.
    private func queryOrder(_ qs: UnsafeBufferPointer<Int>, _ qi: UnsafeBufferPointer<Int32>, _ t: Int) -> [(entry: Int32, position: Int32)] {
        var out = [(entry: Int32, position: Int32, row: Int32)]()
        out.reserveCapacity(qi.count)
        for p in 0..<t { for e in qs[p]..<qs[p + 1] { out.append((Int32(e), Int32(p), qi[e])) } }
        out.sort { ($0.row, $0.position) < ($1.row, $1.position) }
        return out.map { ($0.entry, $0.position) }
    }

    /// Per-sequence mode: gathers W_blk for this sequence's features from the per-entry map `w`,
    /// runs the pass, and scatters dW_blk back onto the per-entry gradient `grad`.
    func runGathered(_ seq: PairMapSequence, index: CooccurrenceIndex, w: UnsafePointer<Float>,
                     keyBiasTable: UnsafePointer<Float>, plogp: Double,
                     grad: UnsafeMutablePointer<Float>?, rowScale: Float) -> Double {
        let h = nHead
        usedQuery.removeAll(keepingCapacity: true); usedKey.removeAll(keepingCapacity: true)
        for f in seq.query.indices where queryLocal[Int(f)] < 0 {
            queryLocal[Int(f)] = Int32(usedQuery.count); usedQuery.append(f)
        }
        for f in seq.key.indices where keyLocal[Int(f)] < 0 { keyLocal[Int(f)] = 0; usedKey.append(f) }
        // Local key numbers ascend with the global ones, so walking a query feature's pairs (sorted
        // by key) in gather/scatter touches W_blk left to right instead of at random.
        usedKey.sort()
        for (n, f) in usedKey.enumerated() { keyLocal[Int(f)] = Int32(n) }
        defer {
            for f in usedQuery { queryLocal[Int(f)] = -1 }
            for f in usedKey { keyLocal[Int(f)] = -1 }
        }
        let uq = usedQuery.count, uk = usedKey.count
        let wl = block.reserve(uq * uk * h, zeroed: true)
        for (il, i) in usedQuery.enumerated() {
            let row = wl + il * uk * h
            let start = index.pairStart[Int(i)], count = index.pairStart[Int(i) + 1] - start
            for pair in start..<(start + count) {
                let jl = Int(keyLocal[Int(index.pairKey[pair])])
                if jl >= 0 { let src = w + start * h + (pair - start); for x in 0..<h { row[x * uk + jl] = src[x * count] } }
            }
        }
        let gl = grad == nil ? nil : blockGrad.reserve(uq * uk * h, zeroed: true)
        let kl = queryLocal.withUnsafeBufferPointer { qm in
            keyLocal.withUnsafeBufferPointer { km in
                run(seq, block: wl, blockGrad: gl, queryRow: qm.baseAddress!, keyColumn: km.baseAddress!, columns: uk,
                    keyBiasTable: keyBiasTable, plogp: plogp, rowScale: rowScale)
            }
        }
        if let grad, let gl {
            for (il, i) in usedQuery.enumerated() {
                let row = gl + il * uk * h
                let start = index.pairStart[Int(i)], count = index.pairStart[Int(i) + 1] - start
                for pair in start..<(start + count) {
                    let jl = Int(keyLocal[Int(index.pairKey[pair])])
                    if jl >= 0 {
                        let dst = grad + start * h + (pair - start)
                        for x in 0..<h { dst[x * count] += row[x * uk + jl] }
                    }
                }
            }
        }
        return kl
    }

    /// Σ over (head, query position) of KL(P‖P̂) for one sequence (not yet averaged). W_blk row
    /// of query feature f is `queryRow[f]`, column of key feature f is `keyColumn[f]` (every
    /// feature of the sequence must have one). With `blockGrad`, adds dL/dW_blk · rowScale into
    /// it, where L is that KL sum; `plogp` is the sequence's Σ P log P (constant in the mask).
    func run(_ seq: PairMapSequence, block wl: UnsafePointer<Float>, blockGrad gl: UnsafeMutablePointer<Float>?,
             queryRow: UnsafePointer<Int32>, keyColumn: UnsafePointer<Int32>, columns uk: Int,
             keyBiasTable: UnsafePointer<Float>, plogp: Double, rowScale: Float) -> Double {
        let t = seq.length, h = nHead, rowLen = uk * h
        if t == 0 { return 0 }
        qIdx.removeAll(keepingCapacity: true)
        for f in seq.query.indices { qIdx.append(queryRow[Int(f)]) }
        let ak = keyDense.reserve(t * max(uk, 1), zeroed: true)
        let kb = keyBias.reserve(h * t, zeroed: true)
        let up = u.reserve(t * rowLen, zeroed: true)
        let sc = scores.reserve(h * t * t, zeroed: false)
        var cross = 0.0

        seq.query.values.withUnsafeBufferPointer { qv in
        seq.key.values.withUnsafeBufferPointer { kv in
        seq.key.indices.withUnsafeBufferPointer { kf in
        seq.pattern.data.withUnsafeBufferPointer { pat in
        qIdx.withUnsafeBufferPointer { qi in
        seq.query.rowStart.withUnsafeBufferPointer { qs in
        seq.key.rowStart.withUnsafeBufferPointer { ks in
            // Dense key codes and the key-side bias Σ_j B[h,j] aK_j(s).
            for s in 0..<t {
                for e in ks[s]..<ks[s + 1] {
                    let f = Int(kf[e]), b = kv[e]
                    ak[s * uk + Int(keyColumn[f])] = b
                    let src = keyBiasTable + f * h
                    for x in 0..<h { kb[x * t + s] += b * src[x] }
                }
            }
            // U[p] = Σ_i aQ_i(p) W_blk[i], feature by feature: a W_blk row is read from memory once
            // per sequence and reused from cache for every position where its feature fires.
            let order = queryOrder(qs, qi, t)
            order.withUnsafeBufferPointer { ord in
                for e in ord { BLAS.axpy(rowLen, qv[Int(e.entry)], wl + Int(qi[Int(e.entry)]) * rowLen, up + Int(e.position) * rowLen) }
            }
            // S = U · A_K^T for every (position, head) row at once: U is [T·heads, cols] row-major,
            // so all heads go through one GEMM. All key positions (the causal half is masked below).
            if uk > 0 {
                BLAS.gemm(transB: true, m: t * h, n: t, k: uk, up, lda: uk, ak, ldb: uk, sc, ldc: t)
            } else {
                sc.initialize(repeating: 0, count: h * t * t)   // no key feature fires: bias-free, uniform
            }
            // Per (query row, head): bias, log-softmax, cross-entropy, then G = (P̂ − P)·rowScale in
            // place. −Σ P log P̂ = (Σ P)·logZ − Σ P·score needs no log per key.
            for p in 0..<t {
                let allowed = causal ? p + 1 : t
                for x in 0..<h {
                    let row = sc + (p * h + x) * t, target = pat.baseAddress! + (x * t + p) * t, bias = kb + x * t
                    let (mx, ps, pm) = addBiasAndReduce(row, bias, target, allowed)
                    let sum = expShiftInPlace(row, allowed, mx)
                    cross += Double(pm) * Double(mx + logf(sum)) - Double(ps)
                    guard gl != nil else { continue }
                    let inv = 1 / sum
                    for s in 0..<allowed { row[s] = (row[s] * inv - target[s]) * rowScale }
                    for s in allowed..<t { row[s] = 0 }
                }
            }
            guard let gl, uk > 0 else { return }
            // V = G · A_K into U's buffer; then dW_blk[i] += aQ_i(p) V[p].
            BLAS.gemm(m: t * h, n: uk, k: t, sc, lda: t, ak, ldb: uk, up, ldc: uk)
            order.withUnsafeBufferPointer { ord in
                for e in ord { BLAS.axpy(rowLen, qv[Int(e.entry)], up + Int(e.position) * rowLen, gl + Int(qi[Int(e.entry)]) * rowLen) }
            }
        }}}}}}}
        return cross + plogp
    }
}

/// row[s] += bias[s] for s < n, returning max_s row[s], Σ target·row and Σ target. Four
/// independent accumulators per sum, so the loop is not one long dependency chain.
@inline(__always)
func addBiasAndReduce(_ row: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, _ target: UnsafePointer<Float>,
                      _ n: Int) -> (max: Float, dot: Float, mass: Float) {
    var m0 = -Float.infinity, m1 = m0, m2 = m0, m3 = m0
    var d0: Float = 0, d1: Float = 0, d2: Float = 0, d3: Float = 0
    var t0: Float = 0, t1: Float = 0, t2: Float = 0, t3: Float = 0
    var s = 0
    while s + 4 <= n {
        let v0 = row[s] + bias[s], v1 = row[s + 1] + bias[s + 1], v2 = row[s + 2] + bias[s + 2], v3 = row[s + 3] + bias[s + 3]
        row[s] = v0; row[s + 1] = v1; row[s + 2] = v2; row[s + 3] = v3
        m0 = v0 > m0 ? v0 : m0; m1 = v1 > m1 ? v1 : m1; m2 = v2 > m2 ? v2 : m2; m3 = v3 > m3 ? v3 : m3
        d0 += target[s] * v0; d1 += target[s + 1] * v1; d2 += target[s + 2] * v2; d3 += target[s + 3] * v3
        t0 += target[s]; t1 += target[s + 1]; t2 += target[s + 2]; t3 += target[s + 3]
        s += 4
    }
    while s < n {
        let v = row[s] + bias[s]
        row[s] = v
        m0 = v > m0 ? v : m0; d0 += target[s] * v; t0 += target[s]
        s += 1
    }
    let m01 = m0 > m1 ? m0 : m1, m23 = m2 > m3 ? m2 : m3
    return (m01 > m23 ? m01 : m23, (d0 + d1) + (d2 + d3), (t0 + t1) + (t2 + t3))
}

/// x[s] = exp(x[s] − shift) for s < n, returning the sum. Uses `fastExp` (a branch-free
/// polynomial), because a libm call per score would cost as much as the GEMMs; arguments are
/// ≤ 0 here, so only underflow matters.
@inline(__always)
func expShiftInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ shift: Float) -> Float {
    var a0: Float = 0, a1: Float = 0, a2: Float = 0, a3: Float = 0
    var s = 0
    while s + 4 <= n {
        let e0 = fastExp(x[s] - shift), e1 = fastExp(x[s + 1] - shift)
        let e2 = fastExp(x[s + 2] - shift), e3 = fastExp(x[s + 3] - shift)
        x[s] = e0; x[s + 1] = e1; x[s + 2] = e2; x[s + 3] = e3
        a0 += e0; a1 += e1; a2 += e2; a3 += e3
        s += 4
    }
    while s < n { let e = fastExp(x[s] - shift); x[s] = e; a0 += e; s += 1 }
    return (a0 + a1) + (a2 + a3)
}

/// exp(x) = 2^k · e^r with k = round(x·log2 e) (by the 1.5·2^23 rounding trick), r = x − k·ln 2
/// (ln 2 in two parts) and a degree-6 Taylor polynomial for e^r on |r| ≤ ln2/2: relative error
/// ~2e-7, about Float's own. Inputs below −87 give 0; inputs are expected ≤ 88.
@inline(__always)
func fastExp(_ x: Float) -> Float {
    let c = x > -87 ? x : -87
    let t = c * 1.442_695_04 + 12_582_912
    let k = t - 12_582_912
    let r = c - k * 0.693_359_375 + k * 2.121_944_4e-4
    var p: Float = 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    // t's low mantissa bits hold k; shift k + 127 into the exponent field.
    let scale = Float(bitPattern: (t.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
    return x < -87 ? 0 : p * scale
}

/// A growable scratch buffer owned by one thread.
struct Buffer {
    private(set) var pointer = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var capacity = 1

    mutating func reserve(_ n: Int, zeroed: Bool) -> UnsafeMutablePointer<Float> {
        if n > capacity {
            pointer.deallocate()
            capacity = max(n, capacity * 2)
            pointer = .allocate(capacity: capacity)
        }
        if zeroed { pointer.initialize(repeating: 0, count: n) }
        return pointer
    }

    func free() { pointer.deallocate() }
}
