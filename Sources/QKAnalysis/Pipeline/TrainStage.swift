import Foundation
import QKTensor
import QKModels
import QKTrain
import QKStore

/// Step 1 as a pipeline stage: trains both transcoders on activations harvested on the fly and
/// writes a new run (dictionaries, config, step-1 metrics) to the store.
public enum TrainStage {
    public struct Output {
        public var run: Int64
        public var result: TrainingResult
    }

    /// Refuses (one line) a checkpoint path holding anything but an earlier qkdb checkpoint, unless
    /// `force`: Ctrl-C would replace it. Commands call this before they create or touch the store.
    public static func checkCheckpointPath(_ path: String, force: Bool) throws {
        try OutputTarget(path: path, shape: .file, what: "checkpoint", force: force) {
            OutputTarget.isSafeTensors($0, formatPrefix: "qkdb-step1-checkpoint")
        }.check()
    }

    public static func run(options o: PipelineOptions, model: any TransformerModel, plan: CorpusPlan,
                           store: Store, name: String, observer: PipelineObserver,
                           cancel: CancellationFlag? = nil, checkpoint: String? = nil, resume: String? = nil) throws -> Output {
        let cfg = model.config
        guard o.layer >= 0, o.layer < cfg.nLayer else {
            throw PipelineError("layer \(o.layer) is out of range: \(model.source) has layers 0..<\(cfg.nLayer)")
        }
        var o = o
        var frontier: SparsityFrontier? = nil
        if o.sparsityChoice == .fromData && resume == nil {
            let f = try SweepStage.run(options: o, model: model, plan: plan, observer: observer, cancel: cancel)
            o.training.l0Target = (f.chosenL0 * 10).rounded() / 10
            frontier = f
        } else if o.sparsityChoice == .fromData, let resume {
            // The checkpoint was written with the L0 target the sweep chose; the sweep is not rerun.
            o.training.l0Target = try Step1Checkpoint.options(resume).l0Target
        }
        var training = o.training
        training.heldOutSequences = plan.heldOut.count
        training.seed = o.seed
        // The decoder fit's pair-map term trains its mask as step 2 will.
        training.pairFitMask = o.mask
        training.pairFitSequences = o.maskSequences
        // The source serves the held-out sequences first (the trainer sets the first
        // `heldOutSequences` aside), then the shuffled training sequences; every epoch restarts it.
        let ordered = Captures.concatenate(plan.heldOut, plan.train)
        let batchSize = 32
        func iterator() -> () throws -> TokenBatch? {
            var it = ordered.batches(size: batchSize)
            return { it.next() }
        }
        let source = try ModelActivationSource(model: model, layer: o.layer, batches: iterator(), restart: { iterator() })
        let trainer = try TranscoderTrainer(options: training, source: source)
        observer.stageStarted("step 1: train transcoders", total: Double(training.trainTokens + training.decoderFitTokens), unit: "tok")
        let started = Date()
        let result = try trainer.train(progress: { p in
            let figures = String(format: "loss %.4f  KL %.4f  L0 %.1f/%.1f  live %d/%d",
                                 p.loss, p.patternKL, p.l0Query, p.l0Key, p.liveQuery, p.liveKey)
            observer.stageProgress(Double(p.tokens), p.phase.map { "\($0)  \(figures)" } ?? figures)
        }, cancel: cancel, checkpointPath: checkpoint, resumeFrom: resume)
        guard result.completed else {
            throw PipelineError("training interrupted" + (result.checkpointPath.map { "; checkpoint written to \($0) (continue with --resume \($0))" } ?? ""))
        }
        let seconds = Date().timeIntervalSince(started)

        var metrics: [String: Any] = ["train_seconds": seconds, "train_tokens": result.tokensSeen,
                                      "train_tokens_per_second": result.tokensPerSecond,
                                      "resampled_query": result.resampledQuery, "resampled_key": result.resampledKey,
                                      "lambda_query": Double(result.lambdaQuery), "lambda_key": Double(result.lambdaKey)]
        if let m = result.evaluation?.metrics { metrics["step1"] = try jsonObject(m) }
        if let frontier { metrics["sparsity_sweep"] = try jsonObject(frontier) }
        var recorded = o
        recorded.modelFingerprint = try ModelFingerprint.of(path: o.model)
        let spec = RunSpec(name: name, kind: .trained, model: model.source, architecture: cfg.architecture.rawValue,
                           layer: o.layer, nHead: cfg.nHead, nKVHead: cfg.nKVHead, dHead: cfg.dHead, dModel: cfg.dModel,
                           dQuery: result.query.dHidden, dKey: result.key.dHidden,
                           config: recorded.json(), metrics: try jsonText(metrics), status: "trained")
        // One transaction: the run appears with its dictionaries, or not at all.
        let run = try store.stage { () -> Int64 in
            let run = try store.createRun(spec)
            for (name, t) in tensorList(result) { try store.putTensor(run: run, name: name, shape: t.shape, values: t.data) }
            if let e = result.evaluation {
                let first = result.key.firstPositionFeature
                try store.putFeatures(run: run, densities(e.firingCountsQuery, tokens: e.tokens, side: .query, keyFirstPosition: first)
                                      + densities(e.firingCountsKey, tokens: e.tokens, side: .key, keyFirstPosition: first))
            }
            return run
        }
        let m = result.evaluation?.metrics
        observer.stageFinished("step 1: train transcoders", seconds: seconds, summary: m.map {
            String(format: "held-out KL %.3f (q-only %.3f, k-only %.3f; uniform %.3f)  L0 %.1f/%.1f  live %d/%d",
                   $0.klFull, $0.klQOnly, $0.klKOnly, $0.baselineUniformKL, $0.l0Query, $0.l0Key, $0.liveQuery, $0.liveKey)
        } ?? "")
        return Output(run: run, result: result)
    }

    static func tensorList(_ r: TrainingResult) -> [(name: String, tensor: Tensor)] {
        RunTensors.tensors(r.query, side: "query") + RunTensors.tensors(r.key, side: "key")
    }

    /// Step-1 densities (held-out firing counts) as provisional feature rows; step 2 replaces
    /// them with full statistics.
    static func densities(_ counts: [Int], tokens: Int, side: FeatureSide, keyFirstPosition: Int?) -> [FeatureStats] {
        counts.enumerated().map { i, c in
            FeatureStats(side: side, index: i, alive: c > 0, density: tokens > 0 ? Double(c) / Double(tokens) : 0,
                         label: MaskStage.label(side: side, index: i, keyFirstPosition: keyFirstPosition))
        }
    }
}

func jsonObject<T: Encodable>(_ value: T) throws -> Any {
    try JSONSerialization.jsonObject(with: JSONEncoder().encode(value))
}

func jsonText(_ object: [String: Any]) throws -> String {
    String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
}
