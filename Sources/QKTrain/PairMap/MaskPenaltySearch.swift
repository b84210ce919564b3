import Foundation

/// One trained-and-pruned mask of a μ search.
public struct MaskPenaltyPoint: Sendable, Codable, Equatable {
    public var penalty: Float
    /// Entries the pruned mask keeps.
    public var kept: Int
    /// KL of the pruned map on the mask-training sequences, and its ratio to the unmasked map's
    /// there (the unmasked map is the transcoders' bilinear form, so this is "× transcoders'").
    public var klPruned: Double
    public var ratio: Double

    public init(penalty: Float, kept: Int, klPruned: Double, ratio: Double) {
        self.penalty = penalty; self.kept = kept; self.klPruned = klPruned; self.ratio = ratio
    }
}

/// The μ–KL–size curve a search traced and the μ it chose.
///
/// The rule (DESIGN §5): the largest μ whose pruned map keeps its KL on the mask-training
/// sequences within `targetRatio` (1.4) × the unmasked map's KL there — as few pairs as the
/// transcoders' patterns allow at that fidelity, measured without touching the held-out set.
/// μ's scale depends on the model (the KL's gradient per entry against μ/(2·sqrt(m+ε))), so the
/// search brackets it: from the starting μ it doubles while the ratio holds, or halves until it
/// does (at most `maxMasks` masks), then takes the geometric interpolation between the last μ that
/// held and the first that did not, at the ratio's crossing, and trains the final mask there.
public struct MaskPenaltyCurve: Sendable, Codable, Equatable {
    public var points: [MaskPenaltyPoint]
    public var klUnmasked: Double
    public var targetRatio: Double
    public var chosen: Float
    public var rule: String

    public init(points: [MaskPenaltyPoint], klUnmasked: Double, targetRatio: Double, chosen: Float, rule: String) {
        self.points = points; self.klUnmasked = klUnmasked; self.targetRatio = targetRatio; self.chosen = chosen; self.rule = rule
    }
}

public enum MaskPenaltySearch {
    public static let targetRatio = 1.4
    /// Masks the bracketing may train before the final one.
    public static let maxMasks = 6

    /// Searches μ for `objective` (its training sequences) starting from `options.penalty`.
    /// Every mask is trained with `options` but for its μ; `progress` gets (mask number, μ).
    public static func run(objective: PairMapObjective, options: MaskTrainingOptions,
                           progress: ((Int, Float) -> Void)? = nil) throws -> MaskPenaltyCurve {
        let start = options.penalty > 0 ? options.penalty : MaskTrainingOptions().penalty
        let klUnmasked = try objective.meanKL(mask: [Float](repeating: 1, count: objective.entryCount), sequences: objective.training)
        var points: [MaskPenaltyPoint] = []
        func trial(_ mu: Float) throws -> MaskPenaltyPoint {
            progress?(points.count + 1, mu)
            var o = options
            o.penalty = mu
            let trainer = try MaskTrainer(objective: objective, options: o)
            trainer.train()
            let pruned = trainer.prunedMask
            let kl = try objective.meanKL(mask: pruned, sequences: objective.training)
            let p = MaskPenaltyPoint(penalty: mu, kept: pruned.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }, klPruned: kl,
                                     ratio: klUnmasked > 0 ? kl / klUnmasked : 1)
            points.append(p)
            return p
        }
        // The largest μ tried that holds the ratio and the smallest that does not; until both
        // exist, double from the last that held or halve from the last that did not.
        var good: MaskPenaltyPoint? = nil, bad: MaskPenaltyPoint? = nil
        var mu = start
        while points.count < maxMasks && (good == nil || bad == nil) {
            let p = try trial(mu)
            if p.ratio <= targetRatio { good = p; mu = p.penalty * 2 } else { bad = p; mu = p.penalty / 2 }
        }
        guard let g = good else {
            let smallest = points.map(\.penalty).min() ?? start
            return MaskPenaltyCurve(points: points.sorted { $0.penalty < $1.penalty }, klUnmasked: klUnmasked, targetRatio: targetRatio,
                                    chosen: smallest, rule: "no μ tried kept the ratio within \(targetRatio): the smallest tried")
        }
        guard let b = bad else {
            return MaskPenaltyCurve(points: points.sorted { $0.penalty < $1.penalty }, klUnmasked: klUnmasked, targetRatio: targetRatio,
                                    chosen: g.penalty, rule: "every μ tried kept the ratio within \(targetRatio): the largest tried")
        }
        // Geometric interpolation at the crossing of the ratio, between the bracketing masks.
        let t = max(0, min(1, (targetRatio - g.ratio) / max(1e-12, b.ratio - g.ratio)))
        let chosen = Float(exp(log(Double(g.penalty)) + t * (log(Double(b.penalty)) - log(Double(g.penalty)))))
        return MaskPenaltyCurve(points: points.sorted { $0.penalty < $1.penalty }, klUnmasked: klUnmasked, targetRatio: targetRatio,
                                chosen: chosen, rule: "the largest μ whose pruned map keeps its KL on the mask-training sequences within \(targetRatio) × the unmasked map's (interpolated in log μ)")
    }
}
