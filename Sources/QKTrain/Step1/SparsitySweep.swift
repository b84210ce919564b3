import Foundation

/// One point of a sparsity sweep: a short step-1 run with TopK k on both dictionaries, judged on
/// the held-out set.
public struct SparsityPoint: Sendable, Codable, Equatable {
    /// The TopK k both dictionaries were trained with (their L0, up to the first-position feature).
    public var k: Int
    public var tokens: Int
    public var klFull: Double, klQOnly: Double, klKOnly: Double
    public var l0Query: Double, l0Key: Double
    /// Features that fired on the held-out set, of `dHidden` per dictionary.
    public var liveQuery: Int, liveKey: Int
    public var dHidden: Int
    public var seconds: Double

    public init(k: Int, tokens: Int, klFull: Double, klQOnly: Double, klKOnly: Double, l0Query: Double, l0Key: Double,
                liveQuery: Int, liveKey: Int, dHidden: Int, seconds: Double) {
        self.k = k; self.tokens = tokens; self.klFull = klFull; self.klQOnly = klQOnly; self.klKOnly = klKOnly
        self.l0Query = l0Query; self.l0Key = l0Key; self.liveQuery = liveQuery; self.liveKey = liveKey
        self.dHidden = dHidden; self.seconds = seconds
    }

    public var deadFractionQuery: Double { 1 - Double(liveQuery) / Double(max(dHidden, 1)) }
    public var deadFractionKey: Double { 1 - Double(liveKey) / Double(max(dHidden, 1)) }
}

/// The frontier a sweep traced, and the operating point the rule chose on it.
///
/// The rule (DESIGN §4, "Sparsity from the data"), on held-out KL made non-increasing in k (so one
/// noisy point cannot move it):
/// 1. *Explained*: the sparsest L0 whose KL is down to 3% of the held-out mean pattern's,
///    interpolated in log KL and log2 k between grid points. Planted models get there: their KL
///    keeps halving per doubling past the planted number of directions, so no rule on the curve's
///    shape finds that number, but the level does.
/// 2. *Diminishing returns*, where the grid never gets there (real layers: MiniLM's KL(64) is a
///    third of the mean pattern's): with each doubling's gain as a fraction of the sparsest
///    point's KL, placed at its midpoint in log2 k, the L0 where the gain falls through 1/12 after
///    the last doubling that still gains 1/12 (so a flat stretch at the sparse end cannot stop the
///    climb), interpolated in log2 k. If no doubling gains 1/12, the sparsest k; if the densest
///    doubling still does, the densest.
///
///     gain(k_i → k_i+1) = (KL(k_i) − KL(k_i+1)) / KL(k_0)     at log2 k_i + ½
///
/// The choice is a number such as 20.0 (MiniLM layer 2) or 7.6, not only a grid value.
public struct SparsityFrontier: Sendable, Codable, Equatable {
    public var points: [SparsityPoint]
    /// The held-out baselines, for scale.
    public var baselineMeanPatternKL: Double
    public var baselineUniformKL: Double
    /// The L0 the rule chose (the main run's `l0Target`), and the grid point nearest it.
    public var chosenL0: Double
    public var chosenPoint: Int
    public var rule: String

    /// The gain per doubling, as a fraction of the sparsest point's KL, where diminishing returns stop the rule.
    public static let minimumGainPerDoubling = 1.0 / 12
    /// A KL this fraction of the mean pattern's counts as explained: the rule stops there first.
    public static let explainedFraction = 0.03

    /// Applies the rule to `points` (any order).
    public init(points: [SparsityPoint], baselineMeanPatternKL: Double, baselineUniformKL: Double) {
        let sorted = points.sorted { $0.k < $1.k }
        self.points = sorted
        self.baselineMeanPatternKL = baselineMeanPatternKL
        self.baselineUniformKL = baselineUniformKL
        (chosenL0, rule) = Self.choose(sorted, scale: baselineMeanPatternKL)
        let chosen = chosenL0
        chosenPoint = sorted.indices.min { abs(log2(Double(sorted[$0].k) / chosen)) < abs(log2(Double(sorted[$1].k) / chosen)) } ?? 0
    }

    static let explainedRule = "the sparsest L0 whose held-out KL is down to 3% of the mean pattern's (interpolated in log KL and log2 k)"
    static let crossingRule = "L0 where one more doubling would remove under a twelfth of the sparsest point's KL (interpolated in log2 k)"
    static let sparsestRule = "no doubling removes a twelfth of the sparsest point's KL: the sparsest k"
    static let densestRule = "the densest doubling still removes a twelfth of the sparsest point's KL: the densest k"

    /// (chosen L0, which case of the rule applied). `scale` is the mean-pattern KL.
    static func choose(_ p: [SparsityPoint], scale: Double) -> (Double, String) {
        guard let first = p.first else { return (0, "no points") }
        var y = p.map(\.klFull)
        for i in y.indices.dropFirst() { y[i] = min(y[i], y[i - 1]) }
        // Explained: the sparsest L0 whose KL is down to ε of the mean pattern's, where the grid gets there.
        let explained = explainedFraction * scale
        if y[0] <= explained { return (Double(first.k), explainedRule) }
        if let i = y.indices.first(where: { y[$0] <= explained }) {
            let xa = log2(Double(p[i - 1].k)), xb = log2(Double(p[i].k))
            let t = (log(y[i - 1]) - log(explained)) / max(1e-12, log(y[i - 1]) - log(max(y[i], 1e-12)))
            return (exp2(xa + min(1, max(0, t)) * (xb - xa)), explainedRule)
        }
        let tau = minimumGainPerDoubling
        // Gain per doubling of each step of the grid, as a fraction of the sparsest point's KL, at
        // the step's midpoint in log2 k.
        let steps = zip(p, p.dropFirst()).enumerated().map { i, ab in
            (x: (log2(Double(ab.0.k)) + log2(Double(ab.1.k))) / 2,
             gain: (y[i] - y[i + 1]) / max(y[0], 1e-12) / max(1e-9, log2(Double(ab.1.k) / Double(ab.0.k))))
        }
        // The last doubling that still gains τ: a flat stretch at the sparse end (too few features
        // to capture anything either way) must not stop the climb before the steep part.
        guard let last = steps.lastIndex(where: { $0.gain >= tau }) else { return (Double(first.k), sparsestRule) }
        if last == steps.count - 1 { return (Double(p.last!.k), densestRule) }
        let a = steps[last], b = steps[last + 1]
        let t = (a.gain - tau) / (a.gain - b.gain)
        return (exp2(a.x + t * (b.x - a.x)), crossingRule)
    }
}

/// How a sweep runs.
public struct SparsitySweepOptions: Sendable, Codable, Equatable {
    /// TopK values to try (nil: `grid(dHidden:)`).
    public var grid: [Int]? = nil
    /// Training tokens of each point.
    public var tokensPerPoint: Int = 87_500

    public init(grid: [Int]? = nil, tokensPerPoint: Int = 87_500) {
        self.grid = grid; self.tokensPerPoint = tokensPerPoint
    }

    /// Doublings of k, since the frontier is read in log L0, up to a sixteenth of the dictionary
    /// (at least 16): 1 … 16 for 128 features; 2 … 64 for 1536, where k = 1 would only cost time
    /// (a layer with one direction per token is not what a large dictionary is for).
    public static func grid(dHidden: Int) -> [Int] {
        var ks: [Int] = []
        var k = dHidden >= 576 ? 2 : 1
        while k <= max(16, dHidden / 16) { ks.append(k); k *= 2 }
        return ks
    }

    /// The sweep's token budget per point for a run of `trainTokens`: 3.5% of it (87.5k for the
    /// default 2.5M; six points, the first with twice that, on a 1536-feature dictionary: about a
    /// fifth of the run's time), but at least 40k (so a quick run still traces a usable frontier)
    /// unless the run itself is shorter.
    public static func tokensPerPoint(trainTokens: Int) -> Int { max(trainTokens * 35 / 1000, min(40_000, trainTokens)) }
    /// Tokens the whole sweep trains on.
    public func totalTokens(points: Int) -> Int { (points + 1) * tokensPerPoint }

    public func validate() throws {
        guard tokensPerPoint > 0 else { throw TrainError("sweep: tokens per point must be positive, got \(tokensPerPoint)") }
        if let g = grid {
            guard !g.isEmpty, g.allSatisfy({ $0 > 0 }) else { throw TrainError("sweep: every k of the grid must be positive") }
        }
    }
}

/// Traces the sparsity frontier of one layer: for each k of the grid, a short step-1 run with
/// TopK k on both dictionaries (exact L0, so no controller has to settle in a short run), on the
/// same activations and held-out set, then applies `SparsityFrontier`'s rule.
///
///     let frontier = try SparsitySweep.run(base: options, source: cached, sweep: SparsitySweepOptions())
///     options.l0Target = frontier.chosenL0
///
/// Each point keeps everything else of `base` (first-position feature, resampling, α, seed) but
/// has no decoder fit: the fit changes no code, so it cannot move the choice, and it costs.
public enum SparsitySweep {
    public static func run(base: TrainingOptions, source: ActivationSource, sweep: SparsitySweepOptions,
                           progress: ((_ point: Int, _ of: Int, _ k: Int, TrainingProgress) -> Void)? = nil,
                           cancel: CancellationFlag? = nil) throws -> SparsityFrontier {
        try sweep.validate()
        let grid = (sweep.grid ?? SparsitySweepOptions.grid(dHidden: base.dHidden)).filter { $0 <= base.dHidden }
        guard !grid.isEmpty else { throw TrainError("sweep: no k of the grid fits \(base.dHidden) features") }
        var points: [SparsityPoint] = []
        var baselines = (meanPattern: 0.0, uniform: 0.0)
        // The path runs from the densest k to the sparsest, each point starting from the last
        // one's weights: a short run from scratch at small k is far from converged (on MiniLM at
        // 100k tokens, TopK 16 from scratch: KL 0.98; warm from 32: see DESIGN §4), and the
        // frontier would measure the budget rather than the layer.
        var previous: (query: TranscoderParameters, key: TranscoderParameters)? = nil
        let path = Array(grid.enumerated()).reversed()
        for (n, k) in path {
            var o = base
            o.warmupsAtMostAQuarter = nil   // the sweep's short points keep their warm-ups (DESIGN §4)
            o.queryActivation = .topK(k); o.keyActivation = .topK(k)
            o.l0Target = nil
            // The densest point starts from scratch, so it gets twice the budget of the others.
            o.trainTokens = previous == nil ? 2 * sweep.tokensPerPoint : sweep.tokensPerPoint
            o.decoderFitFraction = 0
            // Short runs resample too: a window longer than the run never fires.
            o.deadWindowTokens = min(base.deadWindowTokens, max(1000, sweep.tokensPerPoint / 5))
            o.resampleEveryTokens = min(base.resampleEveryTokens, o.deadWindowTokens)
            try source.rewind()
            let started = Date()
            let result = try TranscoderTrainer(options: o, source: source).train(progress: progress.map { report in
                { p in report(grid.count - 1 - n, grid.count, k, p) }
            }, cancel: cancel, checkpointPath: nil, resumeFrom: nil, startingFrom: previous)
            previous = result.parameters
            guard result.completed, let m = result.evaluation?.metrics else { throw TrainError("sweep interrupted") }
            baselines = (m.baselineMeanPatternKL, m.baselineUniformKL)
            points.append(SparsityPoint(k: k, tokens: result.tokensSeen, klFull: m.klFull, klQOnly: m.klQOnly, klKOnly: m.klKOnly,
                                        l0Query: m.l0Query, l0Key: m.l0Key, liveQuery: m.liveQuery, liveKey: m.liveKey,
                                        dHidden: o.dHidden, seconds: Date().timeIntervalSince(started)))
        }
        return SparsityFrontier(points: points, baselineMeanPatternKL: baselines.meanPattern, baselineUniformKL: baselines.uniform)
    }
}
