import Foundation
import QKTensor

/// The pattern terms of the step-1 loss for one sequence, forward and backward together.
///
/// For each query head h (reading key head g(h)) and each pair (Q, K) among
/// (q̂, k̂) weight w_full, (q̂, k) weight w_q, (q, k̂) weight w_k:
///
///     S = Q_h K_gᵀ / sqrt(d_head)            (after RoPE, when the model has it)
///     S[i, j] = -inf where j is not allowed   (after i on causal models)
///     log P̂ = S − logsumexp_row(S)
///     KL_i  = Σ_j P_ij (log P_ij − log P̂_ij)  (0·log 0 = 0; log P̂ floored at −69 ≈ log 1e-30)
///
/// Backward of KL_i with respect to S_i: dS_ij = P̂_ij · Σ_j P_ij − P_ij on allowed j, 0 on
/// masked j (softmax gives them no mass, so no gradient). Then
///     dQ_h += dS · K_g / sqrt(d_head),   dK_g += dSᵀ · Q_h / sqrt(d_head)
/// and RoPE's backward (the inverse rotation) takes dQ, dK back to pre-rotation q̂, k̂.
///
/// A query row whose true pattern is all zeros (a padding query) contributes nothing.
struct PatternLoss {
    let geometry: AttentionGeometry
    let length: Int
    let rope: RoPE?
    let ropeTables: (cos: [Float], sin: [Float])?

    init(geometry: AttentionGeometry, length: Int) {
        self.geometry = geometry; self.length = length
        if let theta = geometry.ropeTheta {
            let r = RoPE(dHead: geometry.dHead, theta: theta)
            rope = r; ropeTables = r.tables(positions: length)
        } else { rope = nil; ropeTables = nil }
    }

    /// Per-thread buffers, reused across sequences.
    final class Scratch {
        var scores: [Float], dScores: [Float], rowTerm: [Float]
        var qHatR: [Float], kHatR: [Float], qR: [Float], kR: [Float]
        init(length t: Int, qWidth: Int, kWidth: Int) {
            scores = [Float](repeating: 0, count: t * t); dScores = scores
            rowTerm = [Float](repeating: 0, count: t)
            qHatR = [Float](repeating: 0, count: t * qWidth); qR = qHatR
            kHatR = [Float](repeating: 0, count: t * kWidth); kR = kHatR
        }
    }

    struct Sums {
        var klFull = 0.0, klQOnly = 0.0, klKOnly = 0.0
        /// Rows whose reconstructed (full) pattern's argmax is the true argmax.
        var top1Agree = 0, rows = 0
        mutating func add(_ o: Sums) {
            klFull += o.klFull; klQOnly += o.klQOnly; klKOnly += o.klKOnly; top1Agree += o.top1Agree; rows += o.rows
        }
    }

    /// Loss sums (nats, summed over heads and query rows) for one sequence; if `dqHat`/`dkHat`
    /// are given, adds `weight · coefficient ·` dKL/dq̂ and /dk̂ into them (pre-RoPE layout).
    func sequence(qHat: UnsafePointer<Float>, kHat: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                  pattern: UnsafePointer<Float>, weights: (full: Float, qOnly: Float, kOnly: Float), coefficient: Float,
                  dqHat: UnsafeMutablePointer<Float>?, dkHat: UnsafeMutablePointer<Float>?, scratch s: Scratch) -> Sums {
        let t = length, nH = geometry.nHead, nKV = geometry.nKVHead, dH = geometry.dHead
        let qw = geometry.qWidth, kw = geometry.kWidth
        let scale = 1 / Float(dH).squareRoot()
        var sums = Sums()
        s.qHatR.withUnsafeMutableBufferPointer { qhr in
        s.kHatR.withUnsafeMutableBufferPointer { khr in
        s.qR.withUnsafeMutableBufferPointer { qr in
        s.kR.withUnsafeMutableBufferPointer { kr in
        s.scores.withUnsafeMutableBufferPointer { sc in
        s.dScores.withUnsafeMutableBufferPointer { ds in
        s.rowTerm.withUnsafeMutableBufferPointer { ent in
            let qhrP = qhr.baseAddress!, khrP = khr.baseAddress!, qrP = qr.baseAddress!, krP = kr.baseAddress!
            qhrP.update(from: qHat, count: t * qw); khrP.update(from: kHat, count: t * kw)
            qrP.update(from: q, count: t * qw); krP.update(from: k, count: t * kw)
            if let rope {
                for v in [qhrP, qrP] { rope.apply(v, positions: t, heads: nH, tables: ropeTables) }
                for v in [khrP, krP] { rope.apply(v, positions: t, heads: nKV, tables: ropeTables) }
            }
            // Gradients with respect to the rotated vectors; rotated back at the end.
            var dqR: [Float] = dqHat == nil ? [] : [Float](repeating: 0, count: t * qw)
            var dkR: [Float] = dkHat == nil ? [] : [Float](repeating: 0, count: t * kw)
            dqR.withUnsafeMutableBufferPointer { dqb in
            dkR.withUnsafeMutableBufferPointer { dkb in
                for h in 0..<nH {
                    let g = geometry.kvHead(of: h)
                    let ph = pattern + h * t * t
                    // Σ_j P log P per row: the constant part of every KL term.
                    for i in 0..<t {
                        var e: Float = 0
                        let row = ph + i * t
                        for j in 0..<t where row[j] > 0 { e += row[j] * logf(row[j]) }
                        ent[i] = e
                    }
                    let terms: [(UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Float, Bool, Bool, Int)] = [
                        (qhrP, khrP, weights.full, true, true, 0),
                        (qhrP, krP, weights.qOnly, true, false, 1),
                        (qrP, khrP, weights.kOnly, false, true, 2),
                    ]
                    for (qm, km, w, gradQ, gradK, which) in terms {
                        let wantGrad = (gradQ && dqHat != nil) || (gradK && dkHat != nil)
                        if w == 0 && which != 0 { continue }
                        let sP = sc.baseAddress!, dP = ds.baseAddress!
                        BLAS.gemm(transB: true, m: t, n: t, k: dH, alpha: scale, qm + h * dH, lda: qw,
                                  km + g * dH, ldb: kw, beta: 0, sP)
                        var kl = 0.0
                        let c = w * coefficient
                        for i in 0..<t {
                            let row = sP + i * t, prow = ph + i * t, drow = dP + i * t
                            let allowed = geometry.causal ? i + 1 : t
                            var m = -Float.infinity
                            for j in 0..<allowed where row[j] > m { m = row[j] }
                            // exp(S − max) once, kept in the gradient row for reuse below.
                            var z: Float = 0
                            for j in 0..<allowed { let e = expf(row[j] - m); drow[j] = e; z += e }
                            let lse = m + logf(z), invZ = 1 / z
                            var cross: Float = 0, rs: Float = 0
                            for j in 0..<allowed where prow[j] > 0 { cross += prow[j] * max(row[j] - lse, -69); rs += prow[j] }
                            // A true pattern with mass on a masked key (should not happen) costs as if P̂ there were 1e-30.
                            if allowed < t { for j in allowed..<t where prow[j] > 0 { cross += prow[j] * -69; rs += prow[j] } }
                            kl += Double(ent[i] - cross)
                            if which == 0 {
                                if rs > 0 {
                                    var bj = 0, bp = -Float.infinity, tj = 0, tp = -Float.infinity
                                    for j in 0..<allowed {
                                        if row[j] > bp { bp = row[j]; bj = j }
                                        if prow[j] > tp { tp = prow[j]; tj = j }
                                    }
                                    if bj == tj { sums.top1Agree += 1 }
                                    sums.rows += 1
                                }
                            }
                            if wantGrad {
                                let crs = c * invZ * rs
                                for j in 0..<allowed { drow[j] = crs * drow[j] - c * prow[j] }
                                if allowed < t { for j in allowed..<t { drow[j] = 0 } }
                            }
                        }
                        switch which { case 0: sums.klFull += kl; case 1: sums.klQOnly += kl; default: sums.klKOnly += kl }
                        guard wantGrad else { continue }
                        if gradQ, dqHat != nil, let dq = dqb.baseAddress {
                            BLAS.gemm(m: t, n: dH, k: t, alpha: scale, dP, lda: t, km + g * dH, ldb: kw,
                                      beta: 1, dq + h * dH, ldc: qw)
                        }
                        if gradK, dkHat != nil, let dk = dkb.baseAddress {
                            BLAS.gemm(transA: true, m: t, n: dH, k: t, alpha: scale, dP, lda: t, qm + h * dH, ldb: qw,
                                      beta: 1, dk + g * dH, ldc: kw)
                        }
                    }
                }
                if let out = dqHat, let dq = dqb.baseAddress {
                    rope?.apply(dq, positions: t, heads: nH, inverse: true, tables: ropeTables)
                    for i in 0..<(t * qw) { out[i] += dq[i] }
                }
                if let out = dkHat, let dk = dkb.baseAddress {
                    rope?.apply(dk, positions: t, heads: nKV, inverse: true, tables: ropeTables)
                    for i in 0..<(t * kw) { out[i] += dk[i] }
                }
            }
            }
        }
        }
        }
        }
        }
        }
        }
        return sums
    }
}
