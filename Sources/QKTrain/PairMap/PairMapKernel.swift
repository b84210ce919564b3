import Foundation

/// The forward and backward pass of step 2 for one sequence, working only on features that fire
/// in it.
///
/// Per sequence the active query features U_Q and key features U_K (a few hundred of the
/// dictionary) index a small dense block W_loc[u_q, u_k, head] of the effective map W = M·m,
/// gathered from the co-occurrence index. Then, per query position p:
///
///     u_p[j,h]    = Σ_{i active at p} aQ_i(p) W_loc[i,j,h]          (~20 contiguous row updates)
///     score(s,h)  = B_s[h] + Σ_{j active at s} aK_j(s) u_p[j,h]     (~20 terms per key position)
///     P̂           = softmax over allowed s;   KL = Σ_s P (log P − log P̂)
///
/// and the backward pass runs the same two sums in reverse with G = (P̂ − P)/rows:
///
///     v_p[j,h]       = Σ_s G(s,h) aK_j(s)
///     dW_loc[i,j,h] += aQ_i(p) v_p[j,h]
///
/// so the cost is O(positions · (L0 · u_k · heads + key non-zeros · heads)), never
/// O(d_Q · d_K · heads). Each worker thread owns one kernel (its buffers are reused).
final class PairMapKernel {
    let nHead: Int
    let causal: Bool
    private var queryLocal: [Int32]
    private var keyLocal: [Int32]
    private var usedQuery: [Int32] = []
    private var usedKey: [Int32] = []
    private var qIdx: [Int32] = []
    private var kIdx: [Int32] = []
    private var block = Buffer()        // W_loc
    private var blockGrad = Buffer()    // dL/dW_loc
    private var u = Buffer()
    private var v = Buffer()
    private var scores = Buffer()       // [s, head]
    private var keyBias = Buffer()      // [s, head]
    private var rowMax = Buffer()

    init(queryWidth: Int, keyWidth: Int, nHead: Int, causal: Bool) {
        self.nHead = nHead; self.causal = causal
        queryLocal = [Int32](repeating: -1, count: queryWidth)
        keyLocal = [Int32](repeating: -1, count: keyWidth)
    }

    deinit { for b in [block, blockGrad, u, v, scores, keyBias, rowMax] { b.free() } }

    /// Σ over (head, query position) of KL(P‖P̂) for one sequence (not yet averaged), given the
    /// effective map `w` per entry. With `grad`, adds dL/dW · rowScale into it (per entry),
    /// where L is that KL sum; `entropy` is the sequence's Σ P log P (constant in the mask).
    func run(_ seq: PairMapSequence, index: CooccurrenceIndex, w: UnsafePointer<Float>,
             keyBiasTable: UnsafePointer<Float>, entropy: Double,
             grad: UnsafeMutablePointer<Float>?, rowScale: Float) -> Double {
        let t = seq.length, h = nHead
        if t == 0 { return 0 }
        // Local feature numbering for this sequence.
        usedQuery.removeAll(keepingCapacity: true); usedKey.removeAll(keepingCapacity: true)
        qIdx.removeAll(keepingCapacity: true); kIdx.removeAll(keepingCapacity: true)
        for f in seq.query.indices {
            if queryLocal[Int(f)] < 0 { queryLocal[Int(f)] = Int32(usedQuery.count); usedQuery.append(f) }
            qIdx.append(queryLocal[Int(f)])
        }
        for f in seq.key.indices {
            if keyLocal[Int(f)] < 0 { keyLocal[Int(f)] = Int32(usedKey.count); usedKey.append(f) }
            kIdx.append(keyLocal[Int(f)])
        }
        defer {
            for f in usedQuery { queryLocal[Int(f)] = -1 }
            for f in usedKey { keyLocal[Int(f)] = -1 }
        }
        let uq = usedQuery.count, uk = usedKey.count, rowLen = uk * h
        let wl = block.reserve(uq * rowLen, zeroed: true)
        gather(index: index, w: w, into: wl, rowLen: rowLen)
        let gl = grad == nil ? nil : blockGrad.reserve(uq * rowLen, zeroed: true)

        // Key-side bias per position: Σ_j B[h,j] aK_j(s), fixed for the whole training run.
        let kb = keyBias.reserve(t * h, zeroed: true)
        let sc = scores.reserve(t * h, zeroed: false)
        let up = u.reserve(rowLen, zeroed: false)
        let vp = v.reserve(rowLen, zeroed: false)
        let mx = rowMax.reserve(4 * h, zeroed: false)
        let sm = mx + h, ps = mx + 2 * h, pm = mx + 3 * h
        var cross = 0.0

        seq.query.values.withUnsafeBufferPointer { qv in
        seq.key.values.withUnsafeBufferPointer { kv in
        seq.key.indices.withUnsafeBufferPointer { kf in
        seq.pattern.data.withUnsafeBufferPointer { pat in
        qIdx.withUnsafeBufferPointer { qi in
        kIdx.withUnsafeBufferPointer { ki in
        seq.query.rowStart.withUnsafeBufferPointer { qs in
        seq.key.rowStart.withUnsafeBufferPointer { ks in
            for s in 0..<t {
                for e in ks[s]..<ks[s + 1] {
                    let b = kv[e], src = keyBiasTable + Int(kf[e]) * h, dst = kb + s * h
                    for x in 0..<h { dst[x] += b * src[x] }
                }
            }
            for p in 0..<t {
                let allowed = causal ? p + 1 : t
                // u_p = Σ_i aQ_i(p) W_loc[i]
                for x in 0..<rowLen { up[x] = 0 }
                for e in qs[p]..<qs[p + 1] { axpy(rowLen, qv[e], wl + Int(qi[e]) * rowLen, up) }
                // scores over allowed keys
                (sc).update(from: kb, count: allowed * h)
                for s in 0..<allowed {
                    let dst = sc + s * h
                    for e in ks[s]..<ks[s + 1] {
                        let b = kv[e], src = up + Int(ki[e]) * h
                        for x in 0..<h { dst[x] += b * src[x] }
                    }
                }
                // log-softmax per head (heads are innermost, so each pass runs over all heads).
                // Cross-entropy −Σ P log P̂ = (Σ P)·logZ − Σ P·score needs no log per key.
                for x in 0..<h { mx[x] = -Float.infinity; sm[x] = 0; ps[x] = 0; pm[x] = 0 }
                for s in 0..<allowed {
                    let r = sc + s * h
                    for x in 0..<h {
                        let target = pat[(x * t + p) * t + s]
                        ps[x] += target * r[x]; pm[x] += target
                        mx[x] = max(mx[x], r[x])
                    }
                }
                for s in 0..<allowed {
                    let r = sc + s * h
                    for x in 0..<h { let e = expf(r[x] - mx[x]); r[x] = e; sm[x] += e }
                }
                for x in 0..<h {
                    cross += Double(pm[x]) * Double(mx[x] + logf(sm[x])) - Double(ps[x])
                    sm[x] = 1 / sm[x]
                }
                guard let gl else { continue }
                // G = (P̂ − P)·rowScale, in place; then v_p[j] = Σ_s G(s) aK_j(s)
                for s in 0..<allowed {
                    let r = sc + s * h
                    for x in 0..<h { r[x] = (r[x] * sm[x] - pat[(x * t + p) * t + s]) * rowScale }
                }
                for x in 0..<rowLen { vp[x] = 0 }
                for s in 0..<allowed {
                    let g = sc + s * h
                    for e in ks[s]..<ks[s + 1] {
                        let b = kv[e], dst = vp + Int(ki[e]) * h
                        for x in 0..<h { dst[x] += b * g[x] }
                    }
                }
                for e in qs[p]..<qs[p + 1] { axpy(rowLen, qv[e], vp, gl + Int(qi[e]) * rowLen) }
            }
        }}}}}}}}
        if let grad, let gl { scatter(index: index, from: gl, rowLen: rowLen, into: grad) }
        return cross + entropy
    }

    /// W_loc[i_loc, j_loc, :] = W[pair(i, j), :] for co-firing pairs; zero elsewhere.
    private func gather(index: CooccurrenceIndex, w: UnsafePointer<Float>, into wl: UnsafeMutablePointer<Float>, rowLen: Int) {
        let h = nHead
        for (il, i) in usedQuery.enumerated() {
            let row = wl + il * rowLen
            for pair in index.pairStart[Int(i)]..<index.pairStart[Int(i) + 1] {
                let jl = keyLocal[Int(index.pairKey[pair])]
                if jl >= 0 { (row + Int(jl) * h).update(from: w + pair * h, count: h) }
            }
        }
    }

    /// The transpose of `gather`: adds dW_loc back onto the per-entry gradient.
    private func scatter(index: CooccurrenceIndex, from gl: UnsafePointer<Float>, rowLen: Int, into grad: UnsafeMutablePointer<Float>) {
        let h = nHead
        for (il, i) in usedQuery.enumerated() {
            let row = gl + il * rowLen
            for pair in index.pairStart[Int(i)]..<index.pairStart[Int(i) + 1] {
                let jl = keyLocal[Int(index.pairKey[pair])]
                if jl >= 0 {
                    let src = row + Int(jl) * h, dst = grad + pair * h
                    for x in 0..<h { dst[x] += src[x] }
                }
            }
        }
    }
}

/// y += a·x over n contiguous floats (the compiler vectorises this loop).
@inline(__always)
func axpy(_ n: Int, _ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
    for k in 0..<n { y[k] += a * x[k] }
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
