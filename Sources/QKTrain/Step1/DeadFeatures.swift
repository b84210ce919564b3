import Foundation
import QKTensor

/// When each feature last fired, in training tokens. A feature is dead once `window` tokens have
/// passed without it firing; live features are the rest. Cheap to update: one pass over the
/// batch's active entries.
public struct FeatureActivityTracker: Sendable, Equatable {
    public var lastFired: [Int]
    public let window: Int

    public init(features: Int, window: Int) { lastFired = [Int](repeating: 0, count: features); self.window = window }

    /// Marks every feature active in `codes` as fired at `tokenCount` (tokens seen after the batch).
    public mutating func record(_ codes: SparseActivations, tokenCount: Int) {
        for i in codes.indices { lastFired[Int(i)] = tokenCount }
    }

    public func dead(at tokens: Int) -> [Int] {
        lastFired.indices.filter { tokens - lastFired[$0] >= window }
    }

    public func liveCount(at tokens: Int) -> Int { lastFired.reduce(0) { $0 + (tokens - $1 < window ? 1 : 0) } }
}

/// Re-initialises dead features toward what the dictionary reconstructs worst.
///
/// For each dead feature a token is drawn with probability ∝ its squared reconstruction error in
/// the current batch; the feature's decoder row becomes the unit residual direction (target −
/// reconstruction) there, and its encoder row the token's centred input direction (x − x̄, so it
/// ignores what every token shares) scaled to a fifth of the mean live encoder-row norm. b_enc is
/// then set so the feature fires on only the ~1% of the batch's tokens most like that one: a
/// b_enc = 0 restart fires on about half of all tokens, pays the sparsity penalty on all of them,
/// and dies again. Its Adam moments are reset by the caller.
///
/// Each restarted feature claims the tokens it fires on: they leave the draw for the rest of the
/// round. Without that, the worst-reconstructed tokens (on BERT the [CLS] at position 0 of every
/// sequence, nearly the same vector each time) draw dozens of dead features at once, which then
/// all survive as near-copies of one another; every copy multiplies the pairs step 2 must keep.
/// When every token is claimed the remaining dead features wait for the next round.
enum DeadFeatureResampler {
    /// Returns the features it restarted (the others stay dead until the next round).
    static func resample(_ p: inout TranscoderParameters, features: [Int], codes: SparseActivations,
                         x: [Float], target: [Float], tokenError: [Float], live: [Bool], rng: inout TrainingRandom) -> [Int] {
        guard !features.isEmpty, !tokenError.isEmpty else { return [] }
        var restarted: [Int] = []
        let d = p.dIn, o = p.dOut
        // Mean encoder-row norm over live features.
        var normSum: Float = 0, liveN = 0
        for i in 0..<p.dHidden where live[i] {
            var s: Float = 0
            for j in 0..<d { s += p.encoderT[i * d + j] * p.encoderT[i * d + j] }
            normSum += s.squareRoot(); liveN += 1
        }
        let encNorm = liveN > 0 ? 0.2 * normSum / Float(liveN) : 0.2
        // Draw weights ∝ error²; a token's weight drops to 0 once a restarted feature claims it.
        var weight = tokenError.map { Double($0) * Double($0) }
        var cdf = [Double](repeating: 0, count: tokenError.count)
        let rows = tokenError.count
        var mean = [Float](repeating: 0, count: d)
        for r in 0..<rows { for j in 0..<d { mean[j] += x[r * d + j] } }
        for j in 0..<d { mean[j] /= Float(rows) }
        var column = [Float](repeating: 0, count: rows)
        var sorted = [Float](repeating: 0, count: rows)
        for i in features {
            var acc = 0.0
            for t in 0..<rows { acc += weight[t]; cdf[t] = acc }
            guard acc > 0 else { return restarted }
            let u = Double(rng.uniform()) * acc
            var lo = 0, hi = cdf.count - 1
            while lo < hi { let mid = (lo + hi) / 2; if cdf[mid] < u { lo = mid + 1 } else { hi = mid } }
            let tok = lo
            weight[tok] = 0
            // Residual at that token: target − (b_dec + Σ a W_dec).
            var res = [Float](repeating: 0, count: o)
            for c in 0..<o { res[c] = target[tok * o + c] - p.bDec[c] }
            for e in codes.rowStart[tok]..<codes.rowStart[tok + 1] {
                let f = Int(codes.indices[e]), a = codes.values[e]
                for c in 0..<o { res[c] -= a * p.wDec[f * o + c] }
            }
            var rn: Float = 0
            for c in 0..<o { rn += res[c] * res[c] }
            rn = rn.squareRoot()
            var xn: Float = 0
            for j in 0..<d { let v = x[tok * d + j] - mean[j]; xn += v * v }
            xn = xn.squareRoot()
            guard rn > 0, xn > 0 else { continue }
            for c in 0..<o { p.wDec[i * o + c] = res[c] / rn }
            for j in 0..<d { p.encoderT[i * d + j] = (x[tok * d + j] - mean[j]) / xn * encNorm }
            // Threshold at the batch's 99th percentile of this feature's pre-activation.
            for r in 0..<rows {
                var s: Float = 0
                for j in 0..<d { s += x[r * d + j] * p.encoderT[i * d + j] }
                column[r] = s
            }
            for r in 0..<rows { sorted[r] = column[r] }
            sorted.sort()
            let threshold = sorted[min(rows - 1, Int(0.99 * Double(rows)))]
            p.bEnc[i] = -threshold
            for r in 0..<rows where column[r] >= threshold { weight[r] = 0 }
            restarted.append(i)
        }
        return restarted
    }
}
