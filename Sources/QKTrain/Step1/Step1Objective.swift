import Foundation
import QKTensor

/// Weights of the step-1 loss (DESIGN §4):
///
///     L = w_full·KL(P‖P̂[q̂,k̂]) + w_q·KL(P‖P̂[q̂,k]) + w_k·KL(P‖P̂[q,k̂])
///       + α·(‖q̂−q‖²/‖q−q̄‖² + ‖k̂−k‖²/‖k−k̄‖²)
///       + λ_Q·penalty(a_Q) + λ_K·penalty(a_K)
///
/// KL terms are means over sequences, heads and query rows (nats per row). The MSE terms are
/// MSE/Var over the batch (so 1 − explained variance): they keep q̂ and k̂ in the model's basis,
/// which the pattern alone does not pin down (any invertible map applied to q and its inverse
/// transpose to k leaves every score unchanged). The penalty is summed over the batch's tokens.
public struct ObjectiveWeights: Sendable, Equatable, Codable {
    public var fullKL: Float = 3
    public var qOnlyKL: Float = 1
    public var kOnlyKL: Float = 1
    public var alpha: Float = 0.1
    public var lambdaQ: Float = 1e-5
    public var lambdaK: Float = 1e-5
    /// ε inside the sqrt penalty (bounds its gradient at tiny activations).
    public var epsilon: Float = 1e-6
    public init() {}
}

/// Every part of the loss for one batch, plus what the trainer and the metrics need.
public struct ObjectiveResult: Sendable {
    public var total: Double = 0
    public var klFull: Double = 0, klQOnly: Double = 0, klKOnly: Double = 0
    /// ‖q̂−q‖² / ‖q−q̄‖² (so explained variance is 1 minus this), and likewise for k.
    public var normalisedMSEQ: Double = 0, normalisedMSEK: Double = 0
    public var penaltyQ: Double = 0, penaltyK: Double = 0
    public var top1Agree = 0, rows = 0
    public var codesQ = SparseActivations(width: 0), codesK = SparseActivations(width: 0)
    /// Per-token squared reconstruction error of q and k (resampling aims new features at the worst).
    public var tokenErrorQ: [Float] = [], tokenErrorK: [Float] = []
    /// Raw sums for pooling over several batches: Σ(q̂−q)², Σ(q−q̄)².
    public var sseQ = 0.0, sstQ = 0.0, sseK = 0.0, sstK = 0.0
}

/// The step-1 objective: forward through both transcoders and the pattern loss, and (when asked)
/// the hand-written backward of every part into `gradQ` / `gradK` (accumulated: zero them first).
public enum Step1Objective {
    public static func evaluate(query: TranscoderParameters, key: TranscoderParameters,
                                activations: (query: TranscoderActivation, key: TranscoderActivation),
                                batch: TrainingBatch, geometry: AttentionGeometry, weights w: ObjectiveWeights,
                                gradQ: UnsafeMutablePointer<TranscoderParameters>?, gradK: UnsafeMutablePointer<TranscoderParameters>?,
                                keyFirstPosition: Int? = nil, threads: Int = 2) -> ObjectiveResult {
        let n = batch.tokens, qw = geometry.qWidth, kw = geometry.kWidth, t = batch.length
        var r = ObjectiveResult()
        let wantGrad = gradQ != nil && gradK != nil
        // Encoder (the one dense GEMM) and sparse decoder.
        r.codesQ = batch.x.withUnsafeBufferPointer { SparseCoding.encode(query, activation: activations.query, x: $0.baseAddress!, rows: n, threads: threads) }
        r.codesK = batch.x.withUnsafeBufferPointer { SparseCoding.encode(key, activation: activations.key, x: $0.baseAddress!, rows: n, threads: threads) }
        if let f = keyFirstPosition { r.codesK = r.codesK.fixingFirstPosition(feature: f, sequenceLength: t) }
        var qHat = [Float](repeating: 0, count: n * qw), kHat = [Float](repeating: 0, count: n * kw)
        qHat.withUnsafeMutableBufferPointer { SparseCoding.decode(query, r.codesQ, into: $0.baseAddress!, threads: threads) }
        kHat.withUnsafeMutableBufferPointer { SparseCoding.decode(key, r.codesK, into: $0.baseAddress!, threads: threads) }
        var dqHat = wantGrad ? [Float](repeating: 0, count: n * qw) : []
        var dkHat = wantGrad ? [Float](repeating: 0, count: n * kw) : []

        // Pattern terms, sequences split over threads; each writes only its own rows of dq̂, dk̂.
        let loss = PatternLoss(geometry: geometry, length: t)
        let rowCount = Double(batch.sequences * geometry.nHead * t)
        let coefficient = Float(1 / rowCount)
        var partial = [PatternLoss.Sums](repeating: .init(), count: max(1, threads))
        qHat.withUnsafeBufferPointer { qh in kHat.withUnsafeBufferPointer { kh in
        batch.q.withUnsafeBufferPointer { qt in batch.k.withUnsafeBufferPointer { kt in
        batch.pattern.withUnsafeBufferPointer { pat in
        dqHat.withUnsafeMutableBufferPointer { dq in dkHat.withUnsafeMutableBufferPointer { dk in
        partial.withUnsafeMutableBufferPointer { sums in
            let dqBase = wantGrad ? dq.baseAddress : nil, dkBase = wantGrad ? dk.baseAddress : nil
            Parallel.forEachRange(batch.sequences, ways: threads) { th, range in
                let scratch = PatternLoss.Scratch(length: t, qWidth: qw, kWidth: kw)
                var s = PatternLoss.Sums()
                for b in range {
                    s.add(loss.sequence(qHat: qh.baseAddress! + b * t * qw, kHat: kh.baseAddress! + b * t * kw,
                                        q: qt.baseAddress! + b * t * qw, k: kt.baseAddress! + b * t * kw,
                                        pattern: pat.baseAddress! + b * geometry.nHead * t * t,
                                        weights: (w.fullKL, w.qOnlyKL, w.kOnlyKL), coefficient: coefficient,
                                        dqHat: dqBase.map { $0 + b * t * qw }, dkHat: dkBase.map { $0 + b * t * kw },
                                        scratch: scratch))
                }
                sums[th] = s
            }
        }}}}}}}}
        var sums = PatternLoss.Sums()
        for p in partial { sums.add(p) }
        r.klFull = sums.klFull / rowCount; r.klQOnly = sums.klQOnly / rowCount; r.klKOnly = sums.klKOnly / rowCount
        r.top1Agree = sums.top1Agree; r.rows = sums.rows

        // Normalised MSE: α·SSE/SST; its gradient 2α(q̂−q)/SST joins the pattern gradient.
        func mse(_ hat: [Float], _ truth: [Float], width: Int, grad: inout [Float], errors: inout [Float]) -> (Double, Double) {
            var mean = [Double](repeating: 0, count: width)
            for row in 0..<n { for c in 0..<width { mean[c] += Double(truth[row * width + c]) } }
            for c in 0..<width { mean[c] /= Double(max(n, 1)) }
            var sse = 0.0, sst = 0.0
            errors = [Float](repeating: 0, count: n)
            for row in 0..<n {
                var e: Float = 0
                for c in 0..<width {
                    let d = hat[row * width + c] - truth[row * width + c]; e += d * d
                    let v = Double(truth[row * width + c]) - mean[c]; sst += v * v
                }
                errors[row] = e; sse += Double(e)
            }
            if wantGrad && sst > 0 {
                let f = Float(2 * Double(w.alpha) / sst)
                for i in 0..<(n * width) { grad[i] += f * (hat[i] - truth[i]) }
            }
            return (sse, sst)
        }
        (r.sseQ, r.sstQ) = mse(qHat, batch.q, width: qw, grad: &dqHat, errors: &r.tokenErrorQ)
        (r.sseK, r.sstK) = mse(kHat, batch.k, width: kw, grad: &dkHat, errors: &r.tokenErrorK)
        r.normalisedMSEQ = r.sstQ > 0 ? r.sseQ / r.sstQ : 0
        r.normalisedMSEK = r.sstK > 0 ? r.sseK / r.sstK : 0

        let normsQ = query.decoderNorms(), normsK = key.decoderNorms()
        let lamQ: Float = activations.query == .relu ? w.lambdaQ : 0
        let lamK: Float = activations.key == .relu ? w.lambdaK : 0
        r.penaltyQ = SparseCoding.penalty(r.codesQ, decoderNorms: normsQ, lambda: lamQ, epsilon: w.epsilon)
        r.penaltyK = SparseCoding.penalty(r.codesK, decoderNorms: normsK, lambda: lamK, epsilon: w.epsilon, fixed: keyFirstPosition)
        r.total = Double(w.fullKL) * r.klFull + Double(w.qOnlyKL) * r.klQOnly + Double(w.kOnlyKL) * r.klKOnly
            + Double(w.alpha) * (r.normalisedMSEQ + r.normalisedMSEK) + r.penaltyQ + r.penaltyK

        if let gradQ, let gradK {
            batch.x.withUnsafeBufferPointer { x in
                dqHat.withUnsafeBufferPointer { dq in
                    SparseCoding.backward(query, r.codesQ, x: x.baseAddress!, dOut: dq.baseAddress!, decoderNorms: normsQ,
                                          lambda: lamQ, epsilon: w.epsilon, into: &gradQ.pointee, threads: threads)
                }
                dkHat.withUnsafeBufferPointer { dk in
                    SparseCoding.backward(key, r.codesK, x: x.baseAddress!, dOut: dk.baseAddress!, decoderNorms: normsK,
                                          lambda: lamK, epsilon: w.epsilon, fixed: keyFirstPosition,
                                          into: &gradK.pointee, threads: threads)
                }
            }
        }
        return r
    }
}
