import Foundation
import QKTensor
import QKModels
import QKTrain
import QKStore

/// A run re-opened for exploring: its model, transcoders, pruned map and the held-out sequences
/// stored with it. Histograms and heatmaps are recomputed from these (the store keeps only
/// statistics and top examples), which takes one forward pass over the sample.
public struct ExploredRun: Sendable {
    public let run: Int64
    public let info: RunInfo
    public let options: PipelineOptions
    public let model: any TransformerModel
    public let explainer: Explainer

    /// - Parameter modelPath: `--model`, else the run's model is looked for (`RunModel.locate`).
    /// - Parameter loadPairMap: false when only the model and transcoders are needed (histograms).
    /// - Parameter visitPairs: sees every stored pair during the one pass that builds the scorer
    ///   (the report gathers its top lists there instead of reading millions of pairs twice).
    public static func open(store: Store, run: Int64, model loaded: (any TransformerModel)? = nil, modelPath: String? = nil,
                            loadPairMap: Bool = true, visitPairs: ((PairRow) -> Void)? = nil) throws -> ExploredRun {
        let info = try store.run(run)
        guard info.spec.kind == .trained else {
            throw PipelineError("run \(run) is \(info.spec.kind.rawValue), not trained by qkdb: it has no dictionaries to explore")
        }
        let options = try PipelineOptions.from(json: info.spec.config)
        let model = try loaded ?? RunModel.load(run: run, options: options, storePath: store.path, given: modelPath)
        let (query, key) = try MaskStage.loadTranscoders(run: run, options: options, store: store)
        var scorer: PairMapScorer? = nil
        if info.pairMap != nil, loadPairMap {
            // One pass over the map: the scorer's COO arrays, and whatever the caller gathers.
            var head: [Int32] = [], qf: [Int32] = [], kf: [Int32] = [], value: [Float] = []
            try store.forEachPair(run: run) { row in
                head.append(Int32(row.head)); qf.append(Int32(row.queryFeature)); kf.append(Int32(row.keyFeature)); value.append(row.value)
                visitPairs?(row)
            }
            let bias = try store.tensor(run: run, name: "pairmap.key_bias")
            scorer = try PairMapScorer(nHead: model.config.nHead, dQuery: query.dHidden, dKey: key.dHidden, head: head,
                                       queryFeature: qf, keyFeature: kf, value: value, keyBias: bias.values)
        }
        let explainer = try Explainer(model: model, layer: options.layer, query: query, key: key, scorer: scorer)
        return ExploredRun(run: run, info: info, options: options, model: model, explainer: explainer)
    }

    /// The held-out sequences stored with the run (ids 0..<n), at most `limit`.
    public func heldOutSequences(store: Store, limit: Int = .max) throws -> [[Int32]] {
        var out: [[Int32]] = []
        var id = 0
        while out.count < limit {
            do {
                out.append(try store.sequence(run: run, id: id)); id += 1
            } catch let e as StoreError where e.description.contains("has no sequence") {
                break  // ids are dense from 0: the first missing one ends the sample
            }
        }
        return out
    }

    /// Both dictionaries' codes on the given sequences (one forward pass, batched).
    public func codes(of sequences: [[Int32]], batchSize: Int = 16) throws -> (query: [SparseActivations], key: [SparseActivations]) {
        var q: [SparseActivations] = [], k: [SparseActivations] = []
        var start = 0
        while start < sequences.count {
            let chunk = Array(sequences[start..<min(sequences.count, start + batchSize)])
            let lengths = Set(chunk.map(\.count))
            let groups: [[[Int32]]] = lengths.count == 1 ? [chunk] : chunk.map { [$0] }
            for g in groups {
                let capture = try model.capture(TokenBatch(sequences: g), layer: options.layer)
                let b = capture.attnIn.shape[0], t = capture.attnIn.shape[1], d = capture.attnIn.shape[2]
                for s in 0..<b {
                    let x = Tensor(shape: [t, d], data: Array(capture.attnIn.data[(s * t * d)..<((s + 1) * t * d)]))
                    q.append(explainer.query.encode(x, sequenceLength: t)); k.append(explainer.key.encode(x, sequenceLength: t))
                }
            }
            start += batchSize
        }
        return (q, k)
    }

    /// The model's own pattern `[n_head, t, t]` of one sequence at the run's layer.
    public func truePattern(of tokens: [Int32]) throws -> Tensor {
        let capture = try model.capture(TokenBatch(sequences: [tokens]), layer: options.layer)
        return capture.pattern.reshaped([model.config.nHead, tokens.count, tokens.count])
    }

    /// True, transcoder-reconstructed and pruned-map patterns `[n_head, t, t]` of one sequence.
    public func patterns(of tokens: [Int32]) throws -> (true: Tensor, reconstructed: Tensor, pruned: Tensor?) {
        let capture = try model.capture(TokenBatch(sequences: [tokens]), layer: options.layer)
        let cfg = model.config, t = tokens.count
        let truth = capture.pattern.reshaped([cfg.nHead, t, t])
        let recon = TranscoderPatterns.reconstruct(capture, query: explainer.query, key: explainer.key, config: cfg).reshaped([cfg.nHead, t, t])
        var pruned: Tensor? = nil
        if let scorer = explainer.scorer {
            pruned = EvalStage.prunedMapPatterns(capture, scorer: scorer, query: explainer.query, key: explainer.key,
                                                 causal: cfg.architecture.isCausal).reshaped([cfg.nHead, t, t])
        }
        return (truth, recon, pruned)
    }
}
