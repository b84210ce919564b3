/// Figures of one step-2 run.
public struct PairMapMetrics: Sendable, Codable, Equatable {
    /// Mask entries trained: co-firing (query, key) pairs × heads.
    public var entriesConsidered: Int
    /// Entries with m > 0 after training (clamping at 0 already removes some).
    public var entriesBeforePruning: Int
    /// Entries with m ≥ threshold, i.e. the stored pair map.
    public var entriesAfterPruning: Int
    /// Live features (firing in the training data) on each side.
    public var liveQueryFeatures: Int
    public var liveKeyFeatures: Int
    /// Share of the live-feature map (live Q × live K × heads) that is zero after pruning.
    public var maskedFractionLive: Double
    /// Share of the whole d_Q × d_K × heads map that is zero after pruning.
    public var maskedFractionWhole: Double
    /// Held-out pattern KL (nats per query row) of: the unmasked map over co-firing pairs
    /// (= the transcoders' KL up to pairs never seen in training), the trained mask, the pruned map.
    public var klUnmasked: Double
    public var klTrained: Double
    public var klPruned: Double
    public var penalty: Float
    public var threshold: Float
    public var epochs: Int
    /// Training wall time per epoch, seconds.
    public var secondsPerEpoch: Double
    /// Process CPU time per epoch (all threads), seconds: steadier than wall time on a shared machine.
    public var cpuSecondsPerEpoch: Double
}

/// The pruned pair map with its statistics, as COO arrays ordered by (head, query, key), plus
/// per-feature statistics of both dictionaries over the held-out sample.
public struct PairMapResult: Sendable {
    public var head: [Int32]
    public var queryFeature: [Int32]
    public var keyFeature: [Int32]
    /// W = M·m, the pair's bilinear weight after masking.
    public var value: [Float]
    public var mask: [Float]
    /// Mean over allowed (p, s) of |aQ_i(p) aK_j(s) W|.
    public var importance: [Float]
    /// Mean over (p, s) where both fire of aQ_i(p) aK_j(s) W (signed: inhibitory pairs are < 0).
    public var meanContribution: [Float]
    /// Fraction of allowed (p, s) where both fire.
    public var cooccurrence: [Float]
    /// B[h, j] = <b_decQ[h], W_decK[j, g(h)]>/sqrt(d_head) as `[head, key feature]`: the score the
    /// query bias gives each key feature, which the pair map does not contain.
    public var keyBiasScore: [Float]
    /// Mean over allowed (p, s) of |B[h, j]·aK_j(s)| as `[head, key feature]`: the attention
    /// importance the key-bias term carries, on the pairs' scale. A dense query direction (one
    /// every token carries) is absorbed into the query transcoder's b_dec, so an attention sink
    /// it drives lives here rather than in any pair.
    public var keyBiasImportance: [Float] = []
    public var metrics: PairMapMetrics
    /// RoPE runs only (empty otherwise): per pair, the offset p − s in 0..<context where |M(Δ)·m|
    /// is largest, and M·m there (`value` holds the same number on RoPE runs).
    public var peakOffset: [Int32] = []
    public var peakValue: [Float] = []
    /// The μ search that chose `metrics.penalty`, when step 2 chose it from the data.
    public var penaltySearch: MaskPenaltyCurve? = nil
    /// RoPE runs only: the θ the offset profiles were computed with.
    public var ropeTheta: Float? = nil
    public var queryFeatures: FeatureStatistics
    public var keyFeatures: FeatureStatistics

    public var count: Int { head.count }

    /// Key features of head `h` ranked by the attention importance their surviving pairs carry
    /// (Σ importance over the pairs, plus the key-bias term's), strongest first. An attention sink
    /// is a key feature near the top of this ranking whose `bosFraction` is near 1; ranking by
    /// bos_fraction alone would promote rare BOS features that carry no attention.
    public func keyFeaturesByImportance(head h: Int) -> [(feature: Int, importance: Double)] {
        var total = [Int: Double]()
        for e in 0..<count where Int(head[e]) == h { total[Int(keyFeature[e]), default: 0] += Double(importance[e]) }
        let width = keyFeatures.width
        if keyBiasImportance.count >= (h + 1) * width {
            for j in 0..<width where keyBiasImportance[h * width + j] > 0 { total[j, default: 0] += Double(keyBiasImportance[h * width + j]) }
        }
        return total.map { (feature: $0.key, importance: $0.value) }.sorted { ($0.importance, -$0.feature) > ($1.importance, -$1.feature) }
    }

    /// The surviving pairs of query feature `i` on head `h`, by importance, strongest first.
    public func pairs(head h: Int, queryFeature i: Int) -> [Int] {
        (0..<count).filter { Int(head[$0]) == h && Int(queryFeature[$0]) == i }.sorted { importance[$0] > importance[$1] }
    }
}

extension PairMapMetrics {
    /// The figures known once the mask is trained (both objectives, RoPE or not, report these);
    /// the pruned counts are filled by `recordPruning`.
    init(entriesConsidered: Int, trained: [Float], index: CooccurrenceIndex,
         kl: (unmasked: Double, trained: Double, pruned: Double), options: MaskTrainingOptions,
         secondsPerEpoch: Double, cpuSecondsPerEpoch: Double) {
        self.init(entriesConsidered: entriesConsidered, entriesBeforePruning: trained.reduce(0) { $0 + ($1 > 0 ? 1 : 0) },
                  entriesAfterPruning: 0, liveQueryFeatures: index.liveQuery, liveKeyFeatures: index.liveKey,
                  maskedFractionLive: 0, maskedFractionWhole: 0,
                  klUnmasked: kl.unmasked, klTrained: kl.trained, klPruned: kl.pruned,
                  penalty: options.penalty, threshold: options.threshold, epochs: options.epochs,
                  secondsPerEpoch: secondsPerEpoch, cpuSecondsPerEpoch: cpuSecondsPerEpoch)
    }

    /// Records how many entries survived pruning and the masked shares of the live-feature map
    /// (live Q × live K × heads) and of the whole d_Q × d_K × heads map.
    mutating func recordPruning(kept: Int, nHead h: Int, dQuery: Int, dKey: Int) {
        entriesAfterPruning = kept
        let liveMap = Double(liveQueryFeatures * liveKeyFeatures * h)
        maskedFractionLive = liveMap == 0 ? 1 : 1 - Double(kept) / liveMap
        maskedFractionWhole = 1 - Double(kept) / Double(dQuery * dKey * h)
    }
}
