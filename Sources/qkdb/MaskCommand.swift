import ArgumentParser
import Foundation
import QKModels
import QKStore
import QKAnalysis

/// `qkdb mask`: step 2 and the statistics on a run whose dictionaries are trained.
struct MaskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mask",
        abstract: "Step 2: learn the sparse query-feature × key-feature mask of a run, prune it, and store pairs and statistics.")

    @Option(help: "Store file.") var store: String
    @Option(name: .customLong("run"), help: "Run id.") var runID: Int64
    @OptionGroup var mask: MaskArguments
    @OptionGroup var model: RunModelArgument

    func run() throws {
        let (db, options, model, plan) = try StoredRun.open(store: store, run: runID, model: model.model, update: { mask.apply(to: &$0) })
        _ = try MaskStage.run(run: runID, options: options, model: model, plan: plan, store: db, observer: ProgressObserver())
        print("run \(runID): pair map written to \(store)")
    }
}

/// `qkdb eval`: patch reconstructed and pruned-map patterns into the model and store the figures.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a run by patching true, reconstructed, pruned-map, uniform and zero patterns into the model.")

    @Option(help: "Store file.") var store: String
    @Option(name: .customLong("run"), help: "Run id.") var runID: Int64
    @Option(help: "Held-out sequences to evaluate on.") var sequences: Int?
    @OptionGroup var model: RunModelArgument

    func run() throws {
        let (db, options, model, plan) = try StoredRun.open(store: store, run: runID, model: model.model, update: { o in
            if let s = sequences { o.evalSequences = s }
        })
        let out = try EvalStage.run(run: runID, options: options, model: model, plan: plan, store: db, observer: ProgressObserver())
        print(Summary.evaluationTable(out.report))
        print(Summary.evaluationAdded(out.added, run: runID))
    }
}

/// Opens a trained run for a later stage: its stored config rebuilds the same model and data.
enum StoredRun {
    static func open(store: String, run: Int64, model given: String?, update: (inout PipelineOptions) -> Void) throws
        -> (Store, PipelineOptions, any TransformerModel, CorpusPlan) {
        let db = try Store(path: store, mode: .readWrite)
        let info = try db.run(run)
        guard info.spec.kind == .trained else {
            throw PipelineError("run \(run) in \(store) is \(info.spec.kind.rawValue), not trained by qkdb: it has no dictionaries")
        }
        var options = try PipelineOptions.from(json: info.spec.config)
        update(&options)
        try options.mask.validate()
        let model = try RunModel.load(run: run, options: options, storePath: store, given: given)
        let plan = try CorpusPlan(options: options, model: model)
        return (db, options, model, plan)
    }
}
