import Foundation
import QKTensor

/// The forward and backward pass of step 2 for one sequence.
///
/// The effective map W = M·m is read from a dense block W_blk[row, col, lane] over a set of
/// query features (rows) and key features (columns), heads innermost and padded to a multiple of
/// 4 lanes: either the live features of the whole training set (the live-block layout of
/// `PairMapObjective`, shared by all sequences) or just the features of this one sequence,
/// gathered from the co-occurrence index (`runGathered`). Then, per query position p:
///
///     U[p,j,·]  = Σ_{i active at p} aQ_i(p) W_blk[i,j,·]      (~20 contiguous row updates through
///                                                              BLAS, run feature by feature)
///     S(s,·)    = B(s,·) + Σ_{j active at s} aK_j(s) U[p,j,·]  (~20 4-lane vector updates per key)
///     P̂(p,h,·)  = softmax over allowed s;   KL = Σ_s P (log P − log P̂)
///
/// and the backward pass runs the same sums in reverse with G = (P̂ − P)/rows:
///
///     V[p,j,·]       = Σ_s G(s,·) aK_j(s)                      (written over U[p])
///     dW_blk[i,j,·] += aQ_i(p) V[p,j,·]
///
/// Both sides stay sparse: the query codes pick whole rows of W_blk, the key codes pick ~20
/// head vectors of U[p] (which sits in L1) per key position. The cost is
/// O(T · L0 · (cols · heads + T · heads)), never O(d_Q · d_K · heads). Each worker thread owns one
/// kernel (its buffers are reused across sequences).
final class PairMapKernel {
    let nHead: Int
    /// Heads padded to a multiple of 4: the innermost dimension of every block, so that one
    /// (feature, key) cell is whole 4-lane vectors.
    let lanes: Int
    let causal: Bool
    private var queryLocal: [Int32]
    private var keyLocal: [Int32]
    private var usedQuery: [Int32] = []
    private var usedKey: [Int32] = []
    private var qIdx: [Int32] = []
    private var kIdx: [Int32] = []
    private var block = Buffer()        // gathered W_blk (per-sequence mode)
    private var blockGrad = Buffer()    // gathered dL/dW_blk (per-sequence mode)
    private var u = Buffer()            // U [T, cols, lane]; overwritten by V
    private var scores = Buffer()       // S [s, lane] of one query position; then P̂, then G
    private var keyBias = Buffer()      // [s, lane]

    init(queryWidth: Int, keyWidth: Int, nHead: Int, causal: Bool) {
        self.nHead = nHead; self.causal = causal; lanes = PairMapKernel.lanes(heads: nHead)
        queryLocal = [Int32](repeating: -1, count: queryWidth)
        keyLocal = [Int32](repeating: -1, count: keyWidth)
    }

    deinit { for b in [block, blockGrad, u, scores, keyBias] { b.free() } }

    static func lanes(heads: Int) -> Int { (heads + 3) / 4 * 4 }

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
        let hp = lanes
        let wl = block.reserve(uq * uk * hp, zeroed: true)
        for (il, i) in usedQuery.enumerated() {
            let row = wl + il * uk * hp
            let start = index.pairStart[Int(i)], count = index.pairStart[Int(i) + 1] - start
            for pair in start..<(start + count) {
                let jl = Int(keyLocal[Int(index.pairKey[pair])])
                if jl >= 0 { let src = w + start * h + (pair - start); for x in 0..<h { row[jl * hp + x] = src[x * count] } }
            }
        }
        let gl = grad == nil ? nil : blockGrad.reserve(uq * uk * hp, zeroed: true)
        let kl = queryLocal.withUnsafeBufferPointer { qm in
            keyLocal.withUnsafeBufferPointer { km in
                run(seq, block: wl, blockGrad: gl, queryRow: qm.baseAddress!, keyColumn: km.baseAddress!, columns: uk,
                    keyBiasTable: keyBiasTable, plogp: plogp, rowScale: rowScale)
            }
        }
        if let grad, let gl {
            for (il, i) in usedQuery.enumerated() {
                let row = gl + il * uk * hp
                let start = index.pairStart[Int(i)], count = index.pairStart[Int(i) + 1] - start
                for pair in start..<(start + count) {
                    let jl = Int(keyLocal[Int(index.pairKey[pair])])
                    if jl >= 0 {
                        let dst = grad + start * h + (pair - start)
                        for x in 0..<h { dst[x * count] += row[jl * hp + x] }
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
        let t = seq.length, h = nHead, hp = lanes, vecs = lanes / 4, rowLen = uk * hp
        if t == 0 { return 0 }
        qIdx.removeAll(keepingCapacity: true)
        for f in seq.query.indices { qIdx.append(queryRow[Int(f)]) }
        kIdx.removeAll(keepingCapacity: true)
        for f in seq.key.indices { kIdx.append(keyColumn[Int(f)]) }
        let kb = keyBias.reserve(t * hp, zeroed: true)
        let up = u.reserve(t * rowLen, zeroed: true)
        let sc = scores.reserve(t * hp, zeroed: false)
        var cross = 0.0

        seq.query.values.withUnsafeBufferPointer { qv in
        seq.key.values.withUnsafeBufferPointer { kv in
        seq.key.indices.withUnsafeBufferPointer { kf in
        seq.pattern.data.withUnsafeBufferPointer { pat in
        qIdx.withUnsafeBufferPointer { qi in
        kIdx.withUnsafeBufferPointer { kc in
        seq.query.rowStart.withUnsafeBufferPointer { qs in
        seq.key.rowStart.withUnsafeBufferPointer { ks in
            // Key-side bias Σ_j B[h,j] aK_j(s), as [s, lane].
            for s in 0..<t {
                for e in ks[s]..<ks[s + 1] {
                    let b = kv[e], src = keyBiasTable + Int(kf[e]) * h, dst = kb + s * hp
                    for x in 0..<h { dst[x] += b * src[x] }
                }
            }
            // U[p] = Σ_i aQ_i(p) W_blk[i], feature by feature: a W_blk row is read from memory once
            // per sequence and reused from cache for every position where its feature fires.
            let order = queryOrder(qs, qi, t)
            order.withUnsafeBufferPointer { ord in
                for e in ord { BLAS.axpy(rowLen, qv[Int(e.entry)], wl + Int(qi[Int(e.entry)]) * rowLen, up + Int(e.position) * rowLen) }
            }
            for p in 0..<t {
                let allowed = causal ? p + 1 : t
                let urow = up + p * rowLen
                // S(s, ·) = B(s, ·) + Σ_{j active at s} aK_j(s) U[p, j, ·]: ~20 short vector updates
                // per key position from U[p], which sits in L1.
                if vecs <= 4 {
                    for s in 0..<allowed {
                        gatherRow(sc + s * hp, kb + s * hp, urow, hp, vecs, kv.baseAddress! + ks[s], kc.baseAddress! + ks[s], ks[s + 1] - ks[s])
                    }
                } else {
                    sc.update(from: kb, count: allowed * hp)
                    for s in 0..<allowed {
                        let dst = sc + s * hp
                        for e in ks[s]..<ks[s + 1] { addScaled(dst, kv[e], urow + Int(kc[e]) * hp, vecs) }
                    }
                }
                // Per head (lanes are strided by hp): log-softmax, cross-entropy, then
                // G = (P̂ − P)·rowScale in place. −Σ P log P̂ = (Σ P)·logZ − Σ P·score.
                for x in 0..<h {
                    let row = sc + x, target = pat.baseAddress! + (x * t + p) * t
                    let (mx, ps, pm) = reduceStrided(row, hp, target, allowed)
                    let sum = expShiftStrided(row, hp, allowed, mx)
                    cross += Double(pm) * Double(mx + logf(sum)) - Double(ps)
                    guard gl != nil else { continue }
                    let inv = 1 / sum
                    for s in 0..<allowed { row[s * hp] = (row[s * hp] * inv - target[s]) * rowScale }
                }
                guard gl != nil else { continue }
                for s in 0..<allowed { for x in h..<hp { sc[s * hp + x] = 0 } }
                // V[p, j, ·] = Σ_s G(s, ·) aK_j(s), written over U[p] (no longer needed).
                urow.initialize(repeating: 0, count: rowLen)
                for s in 0..<allowed {
                    let g = sc + s * hp
                    if vecs <= 4 {
                        scatterRow(urow, hp, g, vecs, kv.baseAddress! + ks[s], kc.baseAddress! + ks[s], ks[s + 1] - ks[s])
                    } else {
                        for e in ks[s]..<ks[s + 1] { addScaled(urow + Int(kc[e]) * hp, kv[e], g, vecs) }
                    }
                }
            }
            guard let gl else { return }
            // dW_blk[i] += aQ_i(p) V[p], feature by feature.
            order.withUnsafeBufferPointer { ord in
                for e in ord { BLAS.axpy(rowLen, qv[Int(e.entry)], up + Int(e.position) * rowLen, gl + Int(qi[Int(e.entry)]) * rowLen) }
            }
        }}}}}}}}
        return cross + plogp
    }
}

/// dst[0..<4·vecs] += a · src[0..<4·vecs], four lanes at a time.
@inline(__always)
func addScaled(_ dst: UnsafeMutablePointer<Float>, _ a: Float, _ src: UnsafePointer<Float>, _ vecs: Int) {
    let d = UnsafeMutableRawPointer(dst), r = UnsafeRawPointer(src)
    for v in 0..<vecs {
        let o = v * 16
        let sum = d.loadUnaligned(fromByteOffset: o, as: SIMD4<Float>.self) + a * r.loadUnaligned(fromByteOffset: o, as: SIMD4<Float>.self)
        d.storeBytes(of: sum, toByteOffset: o, as: SIMD4<Float>.self)
    }
}

/// dst = base + Σ_e value[e] · src[column[e]·stride], for rows of up to 16 lanes, with the sum
/// kept in registers (no store/load round trip per term).
@inline(__always)
func gatherRow(_ dst: UnsafeMutablePointer<Float>, _ base: UnsafePointer<Float>, _ src: UnsafePointer<Float>, _ stride: Int,
               _ vecs: Int, _ value: UnsafePointer<Float>, _ column: UnsafePointer<Int32>, _ count: Int) {
    let z = SIMD4<Float>(repeating: 0)
    let b = UnsafeRawPointer(base)
    var a0 = b.loadUnaligned(as: SIMD4<Float>.self)
    var a1 = vecs > 1 ? b.loadUnaligned(fromByteOffset: 16, as: SIMD4<Float>.self) : z
    var a2 = vecs > 2 ? b.loadUnaligned(fromByteOffset: 32, as: SIMD4<Float>.self) : z
    var a3 = vecs > 3 ? b.loadUnaligned(fromByteOffset: 48, as: SIMD4<Float>.self) : z
    for e in 0..<count {
        let v = value[e], r = UnsafeRawPointer(src + Int(column[e]) * stride)
        a0 += v * r.loadUnaligned(as: SIMD4<Float>.self)
        if vecs > 1 { a1 += v * r.loadUnaligned(fromByteOffset: 16, as: SIMD4<Float>.self) }
        if vecs > 2 { a2 += v * r.loadUnaligned(fromByteOffset: 32, as: SIMD4<Float>.self) }
        if vecs > 3 { a3 += v * r.loadUnaligned(fromByteOffset: 48, as: SIMD4<Float>.self) }
    }
    let d = UnsafeMutableRawPointer(dst)
    d.storeBytes(of: a0, as: SIMD4<Float>.self)
    if vecs > 1 { d.storeBytes(of: a1, toByteOffset: 16, as: SIMD4<Float>.self) }
    if vecs > 2 { d.storeBytes(of: a2, toByteOffset: 32, as: SIMD4<Float>.self) }
    if vecs > 3 { d.storeBytes(of: a3, toByteOffset: 48, as: SIMD4<Float>.self) }
}

/// dst[column[e]·stride ..] += value[e] · g for every e, for rows of up to 16 lanes, with g held
/// in registers.
@inline(__always)
func scatterRow(_ dst: UnsafeMutablePointer<Float>, _ stride: Int, _ g: UnsafePointer<Float>, _ vecs: Int,
                _ value: UnsafePointer<Float>, _ column: UnsafePointer<Int32>, _ count: Int) {
    let z = SIMD4<Float>(repeating: 0)
    let r = UnsafeRawPointer(g)
    let g0 = r.loadUnaligned(as: SIMD4<Float>.self)
    let g1 = vecs > 1 ? r.loadUnaligned(fromByteOffset: 16, as: SIMD4<Float>.self) : z
    let g2 = vecs > 2 ? r.loadUnaligned(fromByteOffset: 32, as: SIMD4<Float>.self) : z
    let g3 = vecs > 3 ? r.loadUnaligned(fromByteOffset: 48, as: SIMD4<Float>.self) : z
    for e in 0..<count {
        let v = value[e], d = UnsafeMutableRawPointer(dst + Int(column[e]) * stride)
        d.storeBytes(of: d.loadUnaligned(as: SIMD4<Float>.self) + v * g0, as: SIMD4<Float>.self)
        if vecs > 1 { d.storeBytes(of: d.loadUnaligned(fromByteOffset: 16, as: SIMD4<Float>.self) + v * g1, toByteOffset: 16, as: SIMD4<Float>.self) }
        if vecs > 2 { d.storeBytes(of: d.loadUnaligned(fromByteOffset: 32, as: SIMD4<Float>.self) + v * g2, toByteOffset: 32, as: SIMD4<Float>.self) }
        if vecs > 3 { d.storeBytes(of: d.loadUnaligned(fromByteOffset: 48, as: SIMD4<Float>.self) + v * g3, toByteOffset: 48, as: SIMD4<Float>.self) }
    }
}

/// Over x[s·stride] for s < n: max, Σ target·x and Σ target (two accumulators each).
@inline(__always)
func reduceStrided(_ x: UnsafePointer<Float>, _ stride: Int, _ target: UnsafePointer<Float>, _ n: Int) -> (max: Float, dot: Float, mass: Float) {
    var m0 = -Float.infinity, m1 = m0, d0: Float = 0, d1: Float = 0, t0: Float = 0, t1: Float = 0
    var s = 0
    while s + 2 <= n {
        let v0 = x[s * stride], v1 = x[(s + 1) * stride]
        m0 = v0 > m0 ? v0 : m0; m1 = v1 > m1 ? v1 : m1
        d0 += target[s] * v0; d1 += target[s + 1] * v1; t0 += target[s]; t1 += target[s + 1]
        s += 2
    }
    if s < n { let v = x[s * stride]; m0 = v > m0 ? v : m0; d0 += target[s] * v; t0 += target[s] }
    return (m0 > m1 ? m0 : m1, d0 + d1, t0 + t1)
}

/// x[s·stride] = exp(x[s·stride] − shift) for s < n, returning the sum (see `fastExp`).
@inline(__always)
func expShiftStrided(_ x: UnsafeMutablePointer<Float>, _ stride: Int, _ n: Int, _ shift: Float) -> Float {
    var a0: Float = 0, a1: Float = 0, a2: Float = 0, a3: Float = 0
    var s = 0
    while s + 4 <= n {
        let e0 = fastExp(x[s * stride] - shift), e1 = fastExp(x[(s + 1) * stride] - shift)
        let e2 = fastExp(x[(s + 2) * stride] - shift), e3 = fastExp(x[(s + 3) * stride] - shift)
        x[s * stride] = e0; x[(s + 1) * stride] = e1; x[(s + 2) * stride] = e2; x[(s + 3) * stride] = e3
        a0 += e0; a1 += e1; a2 += e2; a3 += e3
        s += 4
    }
    while s < n { let e = fastExp(x[s * stride] - shift); x[s * stride] = e; a0 += e; s += 1 }
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
