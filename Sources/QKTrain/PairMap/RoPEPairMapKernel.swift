import Foundation
import QKTensor
import QKModels

/// The decoder rows and biases that step 2 reads on a RoPE model, flattened once.
///
/// Without RoPE a pair's weight M[i,j,h] is one number; with RoPE it is <R_p u_i, R_s v_j>, which
/// depends on the offset p − s, so the RoPE kernels keep the d_head-wide rows themselves.
struct RoPEDecoders: Sendable {
    let u: [Float]      // query W_dec [dQ, nHead·dHead]
    let v: [Float]      // key W_dec [dK, nKVHead·dHead]
    let queryBias: [Float]  // [nHead·dHead]
    let keyBias: [Float]    // [nKVHead·dHead]
    let nHead: Int
    let nKVHead: Int
    let dHead: Int
    let kvOf: [Int]
    let rope: RoPE
    let causal: Bool

    init(query: Transcoder, key: Transcoder, config: ModelConfig) throws {
        guard let theta = config.ropeTheta else {
            throw PairMapError("pair map: \(config.architecture.rawValue) has no RoPE (rope_theta unset)")
        }
        let h = config.nHead, dh = config.dHead
        guard dh > 0, dh % 2 == 0 else { throw PairMapError("pair map: RoPE needs an even head size, got \(dh)") }
        guard config.nKVHead > 0, h % config.nKVHead == 0 else {
            throw PairMapError("pair map: \(h) heads cannot be grouped over \(config.nKVHead) key/value heads")
        }
        guard query.dOut == h * dh, query.bDec.count == h * dh else {
            throw PairMapError("pair map: query decoder writes \(query.dOut) values, the model's q has \(h)×\(dh)")
        }
        guard key.dOut == config.nKVHead * dh, key.bDec.count == config.nKVHead * dh else {
            throw PairMapError("pair map: key decoder writes \(key.dOut) values, the model's k has \(config.nKVHead)×\(dh)")
        }
        guard config.architecture.isCausal else {
            throw PairMapError("pair map: RoPE pair maps are built for causal models; \(config.architecture.rawValue) is bidirectional")
        }
        u = query.wDec.data; v = key.wDec.data; queryBias = query.bDec.data; keyBias = key.bDec.data
        nHead = h; nKVHead = config.nKVHead; dHead = dh
        kvOf = (0..<h).map { config.kvHead(of: $0) }
        rope = RoPE(dHead: dh, theta: theta)
        causal = true
    }
}

/// Step 2's forward and backward pass for one sequence on a RoPE model, exact at every offset.
///
///     score_h(p,s) = [ Σ_ij m_ij aQ_i(p) aK_j(s) <R_p u_i, R_s v_j>      (masked feature × feature)
///                    + <R_p b_Q, R_s (k̂(s) − b_K)> + <R_p q̂(p), R_s b_K> ] / sqrt(d_head)
///
/// (the last two are the key-feature × query-bias, query-feature × key-bias and bias × bias terms,
/// which with RoPE vary along s and do not cancel in the softmax). Nothing is tabulated per offset:
/// per query position p and head h the active query features are folded into one vector per key
/// feature, z_j = Σ_{i active at p} m_ijh aQ_i(p) u_i, rotated once by R_p; every key position then
/// costs Σ_{j active at s} aK_j(s) <R_p z_j, R_s v_j> with R_s v_j rotated once per sequence.
/// The backward pass runs the same sums the other way with G = ∂L/∂score:
///
///     y_j(p)      = Σ_s G(p,s) aK_j(s) R_s v_j
///     ∂L/∂m_ijh  += aQ_i(p) <u_i, R_pᵀ y_j(p)> / sqrt(d_head)
///
/// Each (p, h) row is independent, so forward, softmax, KL and backward run row by row and
/// nothing is kept between rows. Mask entries follow `CooccurrenceIndex.entry(pair:head:heads:)`:
/// for query feature i and head h they are one contiguous run in the order of i's key features.
final class RoPEPairMapKernel {
    let dec: RoPEDecoders
    private var keyLocal: [Int32]
    private var usedKey: [Int32] = []
    private var firstPosition: [Int32] = []
    private var cosTable: [Float] = []
    private var sinTable: [Float] = []
    private var tablePositions = 0

    init(decoders: RoPEDecoders, keyWidth: Int) {
        dec = decoders
        keyLocal = [Int32](repeating: -1, count: keyWidth)
    }

    private func ensureTables(_ t: Int) {
        guard t > tablePositions else { return }
        (cosTable, sinTable) = dec.rope.tables(positions: t)
        tablePositions = t
    }

    /// Runs one sequence. `pattern` (the true `[n_head, t, t]` pattern) gives the KL; without it the
    /// raw scores are written to `scoresOut` (`[n_head, t, t]`, -inf on future keys) and nothing
    /// else is computed. Returns Σ over rows of −Σ_s P log P̂ (the caller adds Σ P log P);
    /// `grad` (per mask entry) receives rowScale·∂CE/∂m.
    func run(query aQ: SparseActivations, key aK: SparseActivations, index: CooccurrenceIndex,
             mask: UnsafePointer<Float>, pattern: UnsafePointer<Float>?, grad: UnsafeMutablePointer<Float>?,
             rowScale: Float, scoresOut: UnsafeMutablePointer<Float>? = nil) -> Double {
        let t = aQ.rows
        guard t > 0 else { return 0 }
        ensureTables(t)
        let h = dec.nHead, g = dec.nKVHead, dh = dec.dHead, half = dh / 2
        let qOut = h * dh, kOut = g * dh
        let scale = 1 / Float(dh).squareRoot()

        // Local key features of this sequence, with the first position each fires at.
        usedKey.removeAll(keepingCapacity: true); firstPosition.removeAll(keepingCapacity: true)
        for s in 0..<t {
            for e in aK.rowStart[s]..<aK.rowStart[s + 1] where keyLocal[Int(aK.indices[e])] < 0 {
                keyLocal[Int(aK.indices[e])] = Int32(usedKey.count); usedKey.append(aK.indices[e]); firstPosition.append(Int32(s))
            }
        }
        defer { for f in usedKey { keyLocal[Int(f)] = -1 } }
        let kLocal = usedKey.count
        let nnzK = aK.indices.count

        // Rotated key rows R_s v_j per key non-zero, rotated query bias per position, and the
        // rotated feature part of k̂ and the full q̂ per position for the bias terms.
        var rk = [Float](repeating: 0, count: max(1, nnzK * kOut))
        var rbq = [Float](repeating: 0, count: t * qOut)
        var rq = [Float](repeating: 0, count: t * qOut)
        var rkf = [Float](repeating: 0, count: t * kOut)
        var rbk = [Float](repeating: 0, count: t * kOut)
        // z and y per local key feature (d_head each), with per-feature "relevant at this p" flags.
        var z = [Float](repeating: 0, count: max(1, kLocal * dh))
        var relevant = [Bool](repeating: false, count: max(1, kLocal))
        var touched = [Int32]()
        var row = [Float](repeating: 0, count: t)

        return dec.u.withUnsafeBufferPointer { ub in
        dec.v.withUnsafeBufferPointer { vb in
        dec.queryBias.withUnsafeBufferPointer { bqb in
        dec.keyBias.withUnsafeBufferPointer { bkb in
        cosTable.withUnsafeBufferPointer { cb in
        sinTable.withUnsafeBufferPointer { sb in
        rk.withUnsafeMutableBufferPointer { rkb in
        rbq.withUnsafeMutableBufferPointer { rbqb in
        rq.withUnsafeMutableBufferPointer { rqb in
        rkf.withUnsafeMutableBufferPointer { rkfb in
        rbk.withUnsafeMutableBufferPointer { rbkb in
        z.withUnsafeMutableBufferPointer { zb in
        row.withUnsafeMutableBufferPointer { rowb in
            let u = ub.baseAddress!, v = vb.baseAddress!, bq = bqb.baseAddress!, bk = bkb.baseAddress!
            let cs = cb.baseAddress!, sn = sb.baseAddress!
            let rkp = rkb.baseAddress!, rbqp = rbqb.baseAddress!, rqp = rqb.baseAddress!
            let rkfp = rkfb.baseAddress!, rbkp = rbkb.baseAddress!, zp = zb.baseAddress!, rowp = rowb.baseAddress!

            /// Rotates one d_head vector in place by position `pos` (`sign` −1: the inverse).
            @inline(__always) func rotate(_ x: UnsafeMutablePointer<Float>, _ pos: Int, _ sign: Float) {
                let c = cs + pos * half, s = sn + pos * half
                for f in 0..<half {
                    let a = x[f], b = x[f + half], sf = sign * s[f]
                    x[f] = a * c[f] - b * sf
                    x[f + half] = b * c[f] + a * sf
                }
            }
            @inline(__always) func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>) -> Float {
                var acc: Float = 0
                for d in 0..<dh { acc += a[d] * b[d] }
                return acc
            }

            for s in 0..<t {
                for e in aK.rowStart[s]..<aK.rowStart[s + 1] {
                    let j = Int(aK.indices[e]), a = aK.values[e]
                    let dst = rkp + e * kOut
                    for x in 0..<kOut { dst[x] = v[j * kOut + x]; rkfp[s * kOut + x] += a * dst[x] }
                    for gg in 0..<g { rotate(dst + gg * dh, s, 1) }
                }
                for x in 0..<kOut { rbkp[s * kOut + x] = bk[x] }
                for gg in 0..<g { rotate(rkfp + s * kOut + gg * dh, s, 1); rotate(rbkp + s * kOut + gg * dh, s, 1) }
                for x in 0..<qOut { rbqp[s * qOut + x] = bq[x]; rqp[s * qOut + x] = bq[x] }
                for e in aQ.rowStart[s]..<aQ.rowStart[s + 1] {
                    let i = Int(aQ.indices[e]), a = aQ.values[e]
                    for x in 0..<qOut { rqp[s * qOut + x] += a * u[i * qOut + x] }
                }
                for hh in 0..<h { rotate(rbqp + s * qOut + hh * dh, s, 1); rotate(rqp + s * qOut + hh * dh, s, 1) }
            }

            var crossEntropy = 0.0
            for p in 0..<t {
                let last = dec.causal ? p : t - 1
                for head in 0..<h {
                    let gh = dec.kvOf[head]
                    // z_j = Σ_i m_ij aQ_i(p) u_i over the key features that fired at or before p.
                    for e in aQ.rowStart[p]..<aQ.rowStart[p + 1] {
                        let i = Int(aQ.indices[e]), a = aQ.values[e]
                        let start = index.pairStart[i], n = index.pairStart[i + 1] - start
                        let entries = start * h + head * n
                        let ui = u + i * qOut + head * dh
                        for k in 0..<n {
                            let jl = Int(keyLocal[Int(index.pairKey[start + k])])
                            if jl < 0 || Int(firstPosition[jl]) > last { continue }
                            if !relevant[jl] { relevant[jl] = true; touched.append(Int32(jl)) }
                            let c = mask[entries + k] * a
                            if c == 0 { continue }
                            let zj = zp + jl * dh
                            for d in 0..<dh { zj[d] += c * ui[d] }
                        }
                    }
                    for jl in touched { rotate(zp + Int(jl) * dh, p, 1) }

                    // Scores of the row.
                    let rbqh = rbqp + p * qOut + head * dh, rqh = rqp + p * qOut + head * dh
                    var maxScore = -Float.infinity
                    for s in 0...last {
                        var acc = dot(rbqh, rkfp + s * kOut + gh * dh) + dot(rqh, rbkp + s * kOut + gh * dh)
                        for e in aK.rowStart[s]..<aK.rowStart[s + 1] {
                            let jl = Int(keyLocal[Int(aK.indices[e])])
                            if relevant[jl] { acc += aK.values[e] * dot(zp + jl * dh, rkp + e * kOut + gh * dh) }
                        }
                        rowp[s] = acc * scale
                        maxScore = max(maxScore, rowp[s])
                    }
                    if let out = scoresOut {
                        let o = out + (head * t + p) * t
                        for s in 0...last { o[s] = rowp[s] }
                        if last + 1 < t { for s in (last + 1)..<t { o[s] = -.infinity } }
                    }
                    if let pat = pattern {
                        var sum: Float = 0
                        for s in 0...last { rowp[s] -= maxScore; sum += expf(rowp[s]) }
                        let logSum = logf(sum)
                        let truth = pat + (head * t + p) * t
                        var ce = 0.0
                        // log P̂(s) = score − max − log Σ exp.
                        for s in 0...last where truth[s] > 0 { ce -= Double(truth[s]) * Double(rowp[s] - logSum) }
                        crossEntropy += ce
                        if let gradient = grad {
                            // y_j = Σ_s G(s) aK_j(s) R_s v_j, reusing z's storage.
                            for jl in touched { let zj = zp + Int(jl) * dh; for d in 0..<dh { zj[d] = 0 } }
                            for s in 0...last {
                                let gs = (expf(rowp[s] - logSum) - truth[s]) * rowScale
                                if gs == 0 { continue }
                                for e in aK.rowStart[s]..<aK.rowStart[s + 1] {
                                    let jl = Int(keyLocal[Int(aK.indices[e])])
                                    guard relevant[jl] else { continue }
                                    let c = gs * aK.values[e], src = rkp + e * kOut + gh * dh, yj = zp + jl * dh
                                    for d in 0..<dh { yj[d] += c * src[d] }
                                }
                            }
                            for jl in touched { rotate(zp + Int(jl) * dh, p, -1) }
                            for e in aQ.rowStart[p]..<aQ.rowStart[p + 1] {
                                let i = Int(aQ.indices[e]), a = aQ.values[e] * scale
                                let start = index.pairStart[i], n = index.pairStart[i + 1] - start
                                let entries = start * h + head * n
                                let ui = u + i * qOut + head * dh
                                for k in 0..<n {
                                    let jl = Int(keyLocal[Int(index.pairKey[start + k])])
                                    if jl < 0 || !relevant[jl] { continue }
                                    gradient[entries + k] += a * dot(ui, zp + jl * dh)
                                }
                            }
                        }
                    }
                    for jl in touched {
                        relevant[Int(jl)] = false
                        let zj = zp + Int(jl) * dh
                        for d in 0..<dh { zj[d] = 0 }
                    }
                    touched.removeAll(keepingCapacity: true)
                }
            }
            return crossEntropy
        }}}}}}}}}}}}}
    }
}
