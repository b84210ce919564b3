import Foundation
import QKTensor
import QKModels
import QKTrain

/// One term of an attention score: query feature i at the destination times key feature j at
/// the source, through the bilinear map of one head.
public struct PairContribution: Sendable, Equatable {
    public var queryFeature: Int
    public var keyFeature: Int
    public var queryActivation: Float
    public var keyActivation: Float
    /// aQ_i(p) · aK_j(s) · <W_decQ[i,h], W_decK[j,g(h)]> / sqrt(d_head) (RoPE applied at p and s).
    public var contribution: Float
    /// The pair's value in the pruned map (W = M·m, no RoPE), or nil when step 2 pruned the pair
    /// away (or never saw it co-fire).
    public var storedValue: Float?
}

/// The attention score of one head from destination p to source s, split exactly:
///
///     true = Σ_pairs contribution + keyBias + rowConstant + error
///
/// - pair terms use the transcoders' decoder rows (exact, whatever the pruned map kept);
/// - `keyBias` = Σ_j aK_j(s)·<b_decQ, W_decK[j]> (step 2's B term; it varies along s);
/// - `rowConstant` = <q̂(p), b_decK> (constant along s without RoPE, so it cancels in the softmax);
/// - `error` = true score − reconstructed score <q̂(p), k̂(s)>/sqrt(d_head).
public struct ScoreExplanation: Sendable {
    public var dest: Int
    public var src: Int
    public var trueScore: Float
    public var reconstructedScore: Float
    /// The pruned map's score (step 2: pairs kept × mask, plus B).
    public var prunedScore: Float
    public var keyBias: Float
    public var rowConstant: Float
    /// Every co-active pair, strongest |contribution| first.
    public var pairs: [PairContribution]
    public var error: Float { trueScore - reconstructedScore }
    /// Σ pairs + keyBias + rowConstant, accumulated in Double (equals `reconstructedScore` up to rounding).
    public var termSum: Double { pairs.reduce(0.0) { $0 + Double($1.contribution) } + Double(keyBias) + Double(rowConstant) }

    /// The pair terms summed per query feature (or per key feature), strongest |sum| first: robust
    /// to a dictionary splitting one direction over several features on the other side.
    public func marginals(query: Bool) -> [(feature: Int, contribution: Double)] {
        var sums: [Int: Double] = [:]
        for p in pairs { sums[query ? p.queryFeature : p.keyFeature, default: 0] += Double(p.contribution) }
        return sums.map { (feature: $0.key, contribution: $0.value) }
            .sorted { (abs($0.contribution), -$0.feature) > (abs($1.contribution), -$1.feature) }
    }
}

/// All of one prompt's rows for one head: the three attention rows from a destination and, per
/// source, the exact split of the score.
public struct PromptExplanation: Sendable {
    public var tokens: [Int32]
    public var tokenText: [String]
    public var head: Int
    public var dest: Int
    /// Sources the destination may attend to (0...dest on causal models).
    public var sources: Range<Int>
    public var truePattern: [Float]
    public var reconstructedPattern: [Float]
    public var prunedPattern: [Float]
    /// One per allowed source, in position order.
    public var scores: [ScoreExplanation]

    /// The attention-weighted mean score of the row, Σ_s A(p,s)·score(p,s), split into the same
    /// terms (weights: the true pattern), for a summary when no single source is asked about.
    public func weightedSummary() -> ScoreExplanation {
        var pairs: [Int64: PairContribution] = [:]
        var t: Double = 0, r: Double = 0, pr: Double = 0, kbias: Double = 0, rc: Double = 0
        for e in scores {
            let w = Double(truePattern[e.src])
            t += w * Double(e.trueScore); r += w * Double(e.reconstructedScore); pr += w * Double(e.prunedScore)
            kbias += w * Double(e.keyBias); rc += w * Double(e.rowConstant)
            for p in e.pairs {
                let key = Int64(p.queryFeature) << 32 | Int64(p.keyFeature)
                var acc = pairs[key] ?? PairContribution(queryFeature: p.queryFeature, keyFeature: p.keyFeature,
                                                         queryActivation: p.queryActivation, keyActivation: 0, contribution: 0, storedValue: p.storedValue)
                acc.contribution += Float(w) * p.contribution
                acc.keyActivation += Float(w) * p.keyActivation
                pairs[key] = acc
            }
        }
        let sorted = pairs.values.sorted { (abs($0.contribution), -$0.queryFeature, -$0.keyFeature) > (abs($1.contribution), -$1.queryFeature, -$1.keyFeature) }
        return ScoreExplanation(dest: dest, src: -1, trueScore: Float(t), reconstructedScore: Float(r), prunedScore: Float(pr),
                                keyBias: Float(kbias), rowConstant: Float(rc), pairs: sorted)
    }
}
