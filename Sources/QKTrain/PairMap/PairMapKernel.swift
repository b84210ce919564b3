import Foundation
import QKTensor

/// The forward and backward pass of step 2 for one sequence, working only on features that fire
/// in it.
///
/// Per sequence the active query features U_Q and key features U_K (a few hundred of the
/// dictionary) index a small dense block W_loc[u_q, head, u_k] of the effective map W = M·m,
/// gathered from the co-occurrence index. Then
///
///     U[p,h,:]   = Σ_{i active at p} aQ_i(p) W_loc[i,h,:]      (~20 contiguous row updates per p)
///     S_h        = U_h · A_K^T + B_h                            (one GEMM per head; A_K = dense
///                                                                 [T, u_k] key codes)
///     P̂_h(p,·)   = softmax over allowed s;   KL = Σ_s P (log P − log P̂)
///
/// and the backward pass runs the same products in reverse with G_h = (P̂_h − P_h)/rows:
///
///     V_h            = G_h · A_K                                (one GEMM per head)
///     dW_loc[i,h,:] += aQ_i(p) V[p,h,:]                         (~20 row updates per p)
///
/// The query side stays sparse (its codes multiply whole rows of W_loc), the key side goes
/// through BLAS: [T, u_k] is small and dense enough that a GEMM beats any sparse loop. The cost
/// is O(T · (L0 · u_k · heads + T · u_k · heads)), never O(d_Q · d_K · heads). Each worker thread
/// owns one kernel (its buffers are reused across sequences).
final class PairMapKernel {
    let nHead: Int
    let causal: Bool
    private var queryLocal: [Int32]
    private var keyLocal: [Int32]
    private var usedQuery: [Int32] = []
    private var usedKey: [Int32] = []
    private var qIdx: [Int32] = []
    private var block = Buffer()        // W_loc [u_q, head, u_k]
    private var blockGrad = Buffer()    // dL/dW_loc, same layout
    private var u = Buffer()            // U [T, head, u_k]; reused for V
    private var keyDense = Buffer()     // A_K [T, u_k]
    private var scores = Buffer()       // S [head, T, T]; then P̂, then G
    private var keyBias = Buffer()      // [head, T]

    init(queryWidth: Int, keyWidth: Int, nHead: Int, causal: Bool) {
        self.nHead = nHead; self.causal = causal
        queryLocal = [Int32](repeating: -1, count: queryWidth)
        keyLocal = [Int32](repeating: -1, count: keyWidth)
    }

    deinit { for b in [block, blockGrad, u, keyDense, scores, keyBias] { b.free() } }

    /// Σ over (head, query position) of KL(P‖P̂) for one sequence (not yet averaged), given the
    /// effective map `w` per entry. With `grad`, adds dL/dW · rowScale into it (per entry),
    /// where L is that KL sum; `plogp` is the sequence's Σ P log P (constant in the mask).
    func run(_ seq: PairMapSequence, index: CooccurrenceIndex, w: UnsafePointer<Float>,
             keyBiasTable: UnsafePointer<Float>, plogp: Double,
             grad: UnsafeMutablePointer<Float>?, rowScale: Float) -> Double {
        let t = seq.length, h = nHead
        if t == 0 { return 0 }
        // Local feature numbering for this sequence.
        usedQuery.removeAll(keepingCapacity: true); usedKey.removeAll(keepingCapacity: true)
        qIdx.removeAll(keepingCapacity: true)
        for f in seq.query.indices {
            if queryLocal[Int(f)] < 0 { queryLocal[Int(f)] = Int32(usedQuery.count); usedQuery.append(f) }
            qIdx.append(queryLocal[Int(f)])
        }
        for f in seq.key.indices where keyLocal[Int(f)] < 0 {
            keyLocal[Int(f)] = Int32(usedKey.count); usedKey.append(f)
        }
        defer {
            for f in usedQuery { queryLocal[Int(f)] = -1 }
            for f in usedKey { keyLocal[Int(f)] = -1 }
        }
        let uq = usedQuery.count, uk = usedKey.count, rowLen = uk * h
        let wl = block.reserve(uq * rowLen, zeroed: true)
        gather(index: index, w: w, into: wl, uk: uk)
        let gl = grad == nil ? nil : blockGrad.reserve(uq * rowLen, zeroed: true)
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
                    ak[s * uk + Int(keyLocal[f])] = b
                    let src = keyBiasTable + f * h
                    for x in 0..<h { kb[x * t + s] += b * src[x] }
                }
            }
            // U[p] = Σ_i aQ_i(p) W_loc[i]
            for p in 0..<t {
                for e in qs[p]..<qs[p + 1] { BLAS.axpy(rowLen, qv[e], wl + Int(qi[e]) * rowLen, up + p * rowLen) }
            }
            // S_h = U_h · A_K^T, all key positions (the causal half is masked below).
            for x in 0..<h {
                BLAS.gemm(transB: true, m: t, n: t, k: uk, up + x * uk, lda: rowLen, ak, ldb: uk, sc + x * t * t, ldc: t)
            }
            // Per (head, query row): bias, log-softmax, cross-entropy, then G = (P̂ − P)·rowScale in place.
            // −Σ P log P̂ = (Σ P)·logZ − Σ P·score needs no log per key.
            for x in 0..<h {
                let bias = kb + x * t
                for p in 0..<t {
                    let row = sc + (x * t + p) * t, target = pat.baseAddress! + (x * t + p) * t
                    let allowed = causal ? p + 1 : t
                    var mx = -Float.infinity, ps: Float = 0, pm: Float = 0
                    for s in 0..<allowed {
                        let v = row[s] + bias[s]
                        row[s] = v
                        mx = max(mx, v); ps += target[s] * v; pm += target[s]
                    }
                    var sum: Float = 0
                    for s in 0..<allowed { let e = expf(row[s] - mx); row[s] = e; sum += e }
                    cross += Double(pm) * Double(mx + logf(sum)) - Double(ps)
                    guard gl != nil else { continue }
                    let inv = 1 / sum
                    for s in 0..<allowed { row[s] = (row[s] * inv - target[s]) * rowScale }
                    for s in allowed..<t { row[s] = 0 }
                }
            }
            guard let gl else { return }
            // V_h = G_h · A_K into U's buffer; then dW_loc[i] += aQ_i(p) V[p].
            for x in 0..<h {
                BLAS.gemm(m: t, n: uk, k: t, sc + x * t * t, lda: t, ak, ldb: uk, up + x * uk, ldc: rowLen)
            }
            for p in 0..<t {
                for e in qs[p]..<qs[p + 1] { BLAS.axpy(rowLen, qv[e], up + p * rowLen, gl + Int(qi[e]) * rowLen) }
            }
        }}}}}}}
        if let grad, let gl { scatter(index: index, from: gl, uk: uk, into: grad) }
        return cross + plogp
    }

    /// W_loc[i_loc, h, j_loc] = W[pair(i, j) · heads + h] for co-firing pairs; zero elsewhere.
    private func gather(index: CooccurrenceIndex, w: UnsafePointer<Float>, into wl: UnsafeMutablePointer<Float>, uk: Int) {
        let h = nHead
        for (il, i) in usedQuery.enumerated() {
            let row = wl + il * uk * h
            for pair in index.pairStart[Int(i)]..<index.pairStart[Int(i) + 1] {
                let jl = Int(keyLocal[Int(index.pairKey[pair])])
                if jl >= 0 { let src = w + pair * h; for x in 0..<h { row[x * uk + jl] = src[x] } }
            }
        }
    }

    /// The transpose of `gather`: adds dW_loc back onto the per-entry gradient.
    private func scatter(index: CooccurrenceIndex, from gl: UnsafePointer<Float>, uk: Int, into grad: UnsafeMutablePointer<Float>) {
        let h = nHead
        for (il, i) in usedQuery.enumerated() {
            let row = gl + il * uk * h
            for pair in index.pairStart[Int(i)]..<index.pairStart[Int(i) + 1] {
                let jl = Int(keyLocal[Int(index.pairKey[pair])])
                if jl >= 0 { let dst = grad + pair * h; for x in 0..<h { dst[x] += row[x * uk + jl] } }
            }
        }
    }
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
