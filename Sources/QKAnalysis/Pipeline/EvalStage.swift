import Foundation
import QKTensor
import QKModels
import QKTrain
import QKStore

/// Evaluation as a pipeline stage: patches the true, reconstructed, pruned-map, uniform and zero
/// patterns into layer L over held-out sequences and adds the figures to the run's evaluation
/// history (see `EvaluationHistory`; earlier evaluations are kept).
public enum EvalStage {
    public struct Output {
        public var report: PatchEvaluator.Report
        /// Where the new record went in the run's history, and which record the summaries show.
        public var added: EvaluationHistory.Added
    }

    public static func run(run: Int64, options o: PipelineOptions, model: any TransformerModel, plan: CorpusPlan,
                           store: Store, observer: PipelineObserver) throws -> Output {
        let (query, key) = try MaskStage.loadTranscoders(run: run, options: o, store: store)
        let cfg = model.config
        let info = try store.run(run)
        var sources: [PatchEvaluator.Source] = [
            PatchEvaluator.Source(name: "reconstruction") { _, capture in
                TranscoderPatterns.reconstruct(capture, query: query, key: key, config: cfg)
            },
        ]
        if info.pairMap != nil, cfg.ropeTheta != nil {
            let scorer = try loadRoPEScorer(run: run, store: store, query: query, key: key, config: cfg)
            sources.append(PatchEvaluator.Source(name: "pruned_map") { _, capture in
                try ropePrunedMapPatterns(capture, scorer: scorer, query: query, key: key)
            })
        } else if info.pairMap != nil {
            let scorer = try loadScorer(run: run, store: store, nHead: cfg.nHead, dQuery: query.dHidden, dKey: key.dHidden)
            sources.append(PatchEvaluator.Source(name: "pruned_map") { _, capture in
                prunedMapPatterns(capture, scorer: scorer, query: query, key: key, causal: cfg.architecture.isCausal)
            })
        }
        let evalSet = plan.heldOut.prefix(min(plan.heldOut.count, o.evalSequences))
        let batches = Array(evalSet.batches(size: 16))
        observer.stageStarted("evaluate: patch patterns", total: Double(batches.count), unit: "batches")
        let started = Date()
        let evaluator = PatchEvaluator(model: model, layer: o.layer)
        let report = try evaluator.evaluate(batches: batches, sources: sources) { done, _ in observer.stageProgress(Double(done), "") }
        let seconds = Date().timeIntervalSince(started)
        var eval = try jsonObject(report) as? [String: Any] ?? [:]
        eval["seconds"] = seconds
        eval["sequences"] = evalSet.count
        eval["evaluated_at"] = ISO8601DateFormatter().string(from: Date())
        let added = try store.stage {
            let (patch, added) = try EvaluationHistory.adding(eval, to: try store.run(run).spec.metrics)
            try store.mergeMetrics(run: run, patch)
            try store.setStatus(run: run, "complete")
            return added
        }
        let summary = report.results.filter { ["reconstruction", "pruned_map", "zero"].contains($0.name) }
            .map { String(format: "%@ %.4f (recovered %.3f)", $0.name, $0.metric, $0.recovered) }.joined(separator: "  ")
        observer.stageFinished("evaluate: patch patterns", seconds: seconds, summary: "\(report.metricName): clean \(String(format: "%.4f", report.clean))  " + summary)
        return Output(report: report, added: added)
    }

    /// The stored pair map and key-bias term as a scorer.
    public static func loadScorer(run: Int64, store: Store, nHead: Int, dQuery: Int, dKey: Int) throws -> PairMapScorer {
        var head: [Int32] = [], qf: [Int32] = [], kf: [Int32] = [], value: [Float] = []
        try store.forEachPair(run: run) { row in
            head.append(Int32(row.head)); qf.append(Int32(row.queryFeature)); kf.append(Int32(row.keyFeature)); value.append(row.value)
        }
        let bias = try store.tensor(run: run, name: "pairmap.key_bias")
        return try PairMapScorer(nHead: nHead, dQuery: dQuery, dKey: dKey, head: head, queryFeature: qf, keyFeature: kf,
                                 value: value, keyBias: bias.values)
    }

    /// The stored pair map of a RoPE run as an offset-exact scorer (pairs and masks from the
    /// store, decoders and θ from the run's model config).
    public static func loadRoPEScorer(run: Int64, store: Store, query: Transcoder, key: Transcoder,
                                      config: ModelConfig) throws -> RoPEPairScorer {
        var head: [Int32] = [], qf: [Int32] = [], kf: [Int32] = [], mask: [Float] = []
        try store.forEachPair(run: run) { row in
            head.append(Int32(row.head)); qf.append(Int32(row.queryFeature)); kf.append(Int32(row.keyFeature))
            mask.append(row.mask ?? 1)
        }
        return try RoPEPairScorer(query: query, key: key, config: config, head: head, queryFeature: qf, keyFeature: kf, mask: mask)
    }

    /// `[batch, n_head, t, t]` patterns from a RoPE run's pruned pair map.
    public static func ropePrunedMapPatterns(_ capture: LayerCapture, scorer: RoPEPairScorer, query: Transcoder,
                                             key: Transcoder) throws -> Tensor {
        let b = capture.attnIn.shape[0], t = capture.attnIn.shape[1], d = capture.attnIn.shape[2]
        var out = Tensor(zeros: [b, scorer.nHead, t, t])
        let per = scorer.nHead * t * t
        for s in 0..<b {
            let x = Tensor(shape: [t, d], data: Array(capture.attnIn.data[(s * t * d)..<((s + 1) * t * d)]))
            let p = try scorer.pattern(query: query.encode(x, sequenceLength: t), key: key.encode(x, sequenceLength: t))
            out.data.replaceSubrange((s * per)..<((s + 1) * per), with: p.data)
        }
        return out
    }

    /// `[batch, n_head, t, t]` patterns from the pruned pair map, per sequence of the capture.
    public static func prunedMapPatterns(_ capture: LayerCapture, scorer: PairMapScorer, query: Transcoder, key: Transcoder,
                                         causal: Bool) -> Tensor {
        let b = capture.attnIn.shape[0], t = capture.attnIn.shape[1], d = capture.attnIn.shape[2]
        var out = Tensor(zeros: [b, scorer.nHead, t, t])
        let per = scorer.nHead * t * t
        for s in 0..<b {
            let x = Tensor(shape: [t, d], data: Array(capture.attnIn.data[(s * t * d)..<((s + 1) * t * d)]))
            let p = scorer.pattern(query: query.encode(x, sequenceLength: t), key: key.encode(x, sequenceLength: t), causal: causal)
            out.data.replaceSubrange((s * per)..<((s + 1) * per), with: p.data)
        }
        return out
    }
}
