import Foundation
import QKTensor
import QKModels
import QKTrain
import QKStore

/// Step 2 and the statistics as a pipeline stage: harvests and encodes the mask-training and
/// held-out sequences, trains and prunes the mask, and writes the pair map, the key-bias term,
/// feature statistics, max-activating examples, their sequences and the vocabulary to the run.
public enum MaskStage {
    public static func run(run: Int64, options o: PipelineOptions, model: any TransformerModel, plan: CorpusPlan,
                           store: Store, observer: PipelineObserver) throws -> PairMapResult {
        let (query, key) = try loadTranscoders(run: run, options: o, store: store)
        let cfg = model.config
        let trainSet = plan.train.prefix(min(plan.train.count, o.maskSequences))
        let total = trainSet.count + plan.heldOut.count
        observer.stageStarted("step 2: harvest codes", total: Double(total), unit: "seq")
        var started = Date()
        let training = try Captures.pairMapSequences(trainSet, model: model, layer: o.layer, query: query, key: key) {
            observer.stageProgress(Double($0), "")
        }
        let heldOut = try Captures.pairMapSequences(plan.heldOut, model: model, layer: o.layer, query: query, key: key) {
            observer.stageProgress(Double(trainSet.count + $0), "")
        }
        observer.stageFinished("step 2: harvest codes", seconds: Date().timeIntervalSince(started),
                               summary: "\(training.count) training and \(heldOut.count) held-out sequences")

        var maskOptions = o.mask
        maskOptions.seed = o.seed
        let stepsPerEpoch = (training.count + maskOptions.batchSequences - 1) / maskOptions.batchSequences
        let epochs = maskOptions.epochs
        // With μ chosen from the data (not on RoPE layers yet), the search's masks come first, as
        // a stage of their own; the final mask's first step starts "train mask".
        let choose = o.maskPenaltyFromData == true && cfg.ropeTheta == nil
        let searchStage = "step 2: choose mask penalty μ"
        var searching = choose
        started = Date()
        if choose { observer.stageStarted(searchStage, total: Double(MaskPenaltySearch.maxMasks), unit: "masks") }
        else { observer.stageStarted("step 2: train mask", total: Double(max(1, stepsPerEpoch * epochs)), unit: "steps") }
        var steps = 0   // training and then fine-tuning steps, counted through
        let result = try PairMap.run(query: query, key: key, config: cfg, training: training, heldOut: heldOut,
                                     options: maskOptions, choosePenalty: choose, searchProgress: { n, mu in
            observer.stageProgress(Double(n - 1), String(format: "mask %d: μ %.3g", n, mu))
        }) { p in
            if searching {
                searching = false
                observer.stageFinished(searchStage, seconds: Date().timeIntervalSince(started), summary: "")
                observer.stageStarted("step 2: train mask", total: Double(max(1, stepsPerEpoch * epochs)), unit: "steps")
                started = Date()
            }
            steps += 1
            observer.stageProgress(Double(steps), String(format: "epoch %d/%d  KL %.4f  below τ %.1f%%",
                                                         (steps - 1) / max(1, p.stepsPerEpoch) + 1, epochs, p.kl, 100 * p.fractionBelowThreshold))
        }
        let maskSeconds = Date().timeIntervalSince(started)
        let m = result.metrics
        observer.stageFinished("step 2: train mask", seconds: maskSeconds, summary: String(
            format: "%d → %d entries  masked %.2f%% of live map, %.4f%% of whole  KL %.3f → pruned %.3f",
            m.entriesConsidered, m.entriesAfterPruning, 100 * m.maskedFractionLive, 100 * m.maskedFractionWhole,
            m.klUnmasked, m.klPruned))

        // One transaction: the pair map and everything measured with it land together.
        try store.stage {
            try write(result, run: run, heldOut: plan.heldOut, heldOutCodes: heldOut, model: model, store: store,
                      maskSeconds: maskSeconds, keyFirstPosition: key.firstPositionFeature)
        }
        return result
    }

    static func loadTranscoders(run: Int64, options o: PipelineOptions, store: Store) throws -> (Transcoder, Transcoder) {
        (try RunTensors.transcoder(side: "query", activation: o.training.queryActivation, run: run, in: store),
         try RunTensors.transcoder(side: "key", activation: o.training.keyActivation, run: run, in: store))
    }

    /// The pair map with its columns (plus `peak_offset`/`peak_value` on RoPE runs), the key-bias
    /// term and, on RoPE runs, θ (tensor `rope.theta`).
    public static func writePairMap(_ r: PairMapResult, run: Int64, nHead: Int, store: Store) throws {
        // RoPE runs add each pair's peak offset and its value there; θ is kept with the run so
        // `qkdb pairs --offset` and evaluation can rebuild M(Δ) from the stored decoders.
        let extra: [(name: String, values: [Float])] = r.peakOffset.isEmpty ? [] :
            [("peak_offset", r.peakOffset.map { Float($0) }), ("peak_value", r.peakValue)]
        let coo = PairCOO(head: r.head, queryFeature: r.queryFeature, keyFeature: r.keyFeature, columns: [
            .value: r.value, .mask: r.mask, .importance: r.importance,
            .meanContribution: r.meanContribution, .cooccurrence: r.cooccurrence,
        ], extra: extra)
        try store.putPairMap(run: run, coo)
        if let theta = r.ropeTheta { try store.putTensor(run: run, name: "rope.theta", shape: [1], values: [theta]) }
        try store.putTensor(run: run, name: "pairmap.key_bias", shape: [nHead, r.keyFeatures.width], values: r.keyBiasScore)
        try store.putTensor(run: run, name: Store.keyBiasImportanceTensor, shape: [nHead, r.keyFeatures.width],
                            values: r.keyBiasImportance)
    }

    /// The label the store gives the key dictionary's first-position feature (`qkdb feature`,
    /// `export --what features`); step 1 gives other features none, step 2 an automatic one.
    static func label(side: FeatureSide, index: Int, keyFirstPosition: Int?) -> String? {
        side == .key && index == keyFirstPosition ? "first position (set, not encoded)" : nil
    }

    static func write(_ r: PairMapResult, run: Int64, heldOut: SequenceSet, heldOutCodes: [PairMapSequence], model: any TransformerModel,
                      store: Store, maskSeconds: Double, keyFirstPosition: Int?) throws {
        try writePairMap(r, run: run, nHead: model.config.nHead, store: store)

        // Automatic labels: what each feature usually fires on over the held-out sequences.
        let tokenizer = model.tokenizer
        let heldOutTokens = (0..<heldOut.count).map { Array(heldOut.sequence($0)) }
        var features: [FeatureStats] = []
        var examples: [FeatureExample] = []
        for (side, s) in [(FeatureSide.query, r.queryFeatures), (.key, r.keyFeatures)] {
            let tokens = FeatureTokens(codes: heldOutCodes.map { side == .query ? $0.query : $0.key }, tokens: heldOutTokens, width: s.width)
            for f in 0..<s.width {
                features.append(FeatureStats(side: side, index: f, alive: s.alive[f], density: Double(s.density[f]),
                                             meanActivation: Double(s.meanActivation[f]), maxActivation: Double(s.maxActivation[f]),
                                             bosFraction: Double(s.bosFraction[f]),
                                             label: label(side: side, index: f, keyFirstPosition: keyFirstPosition)
                                                ?? tokens.label(f) { tokenizer.tokenString($0) }))
                for (rank, e) in (s.exampleStart[f]..<s.exampleStart[f + 1]).enumerated() {
                    examples.append(FeatureExample(side: side, feature: f, rank: rank, sequenceID: Int(s.exampleSequence[e]),
                                                   position: Int(s.examplePosition[e]), activation: s.exampleActivation[e]))
                }
            }
        }
        try store.putFeatures(run: run, features)
        try store.putExamples(run: run, examples)
        try store.putSequences(run: run, heldOutTokens.enumerated().map { (id: $0.offset, tokens: $0.element) })
        try store.putVocabulary(run: run, (0..<tokenizer.vocabSize).map { (id: $0, text: tokenizer.tokenString(Int32($0))) })
        var step2 = try jsonObject(r.metrics) as? [String: Any] ?? [:]
        step2["seconds"] = maskSeconds
        if let search = r.penaltySearch { step2["penalty_search"] = try jsonObject(search) }
        var attention = HeadAttention.Tally(nHead: model.config.nHead)
        for s in heldOutCodes { attention.add(pattern: s.pattern) }
        step2[HeadAttention.metricsKey] = try jsonObject(attention.heads)
        try store.mergeMetrics(run: run, try jsonText(["step2": step2]))
        try store.setStatus(run: run, "masked")
    }
}
