import ArgumentParser
import Foundation
import QKModels
import QKTrain
import QKStore
import QKAnalysis

/// `qkdb run`: the whole job, one run per layer, with a progress bar per stage and a summary.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "The whole job: harvest → train → mask → statistics → evaluation → store.",
        discussion: "With no arguments: all-MiniLM-L6-v2, layer 2, the bundled fortunes corpus, into out/<model>-L<layer>.qkdb.")

    @OptionGroup var pipeline: PipelineArguments
    @OptionGroup var mask: MaskArguments

    @Option(help: "Layer to decompose (repeat for several; one run each).")
    var layer: [Int] = [2]

    @Option(help: "Store file (created if missing; default out/<model>-L<layer>.qkdb).")
    var store: String?

    @Option(help: "Held-out sequences evaluation patches patterns into.")
    var evalSequences: Int?

    func run() throws {
        let started = Date()
        let model = try loadModel(path: pipeline.model)
        for l in layer {
            guard l >= 0, l < model.config.nLayer else {
                throw PipelineError("layer \(l) is out of range: \(pipeline.model) has layers 0..<\(model.config.nLayer)")
            }
        }
        for l in layer {
            var options = pipeline.options(layer: l, model: model)
            mask.apply(to: &options)
            if let e = evalSequences { options.evalSequences = e }
            let name = RunNaming.name(model: options.model, layer: l)
            let path = store ?? "out/\(name).qkdb"
            // Options and corpus are checked before the store is created, so bad input leaves no file.
            try options.validate()
            let observer = ProgressObserver()
            let prepStart = Date()
            let plan = try CorpusPlan(options: options, model: model)
            observer.stageFinished("prepare corpus", seconds: Date().timeIntervalSince(prepStart),
                                   summary: "\(plan.train.count) training and \(plan.heldOut.count) held-out sequences of \(plan.context) tokens")
            try TrainStage.checkCheckpointPath(path + ".checkpoint.safetensors", force: false)
            try FileManager.default.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
            let db = try Store(path: path, mode: .create)
            let cancel = CancellationFlag()
            Interrupt.install { cancel.cancel() }
            let trained = try TrainStage.run(options: options, model: model, plan: plan, store: db, name: name,
                                             observer: observer, cancel: cancel, checkpoint: path + ".checkpoint.safetensors")
            let pairs = try MaskStage.run(run: trained.run, options: options, model: model, plan: plan, store: db, observer: observer)
            let report = try EvalStage.run(run: trained.run, options: options, model: model, plan: plan, store: db, observer: observer).report

            print("\nrun \(trained.run) (\(name)) in \(path)\n")
            if let m = trained.result.evaluation?.metrics {
                print(Summary.dictionaries(m, dHidden: trained.result.query.dHidden) + "\n")
                print(Summary.patternKL(step1: m, step2: pairs.metrics) + "\n")
            }
            print(Summary.pairMap(pairs.metrics, nHead: model.config.nHead, dQuery: trained.result.query.dHidden,
                                  dKey: trained.result.key.dHidden) + "\n")
            print(Summary.evaluationTable(report) + "\n")
            print(Summary.timings(observer.timings))
        }
        FileHandle.standardError.write(Data("finished in \(clock(Date().timeIntervalSince(started)))\n".utf8))
    }
}
