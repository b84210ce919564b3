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
        discussion: """
        With no arguments: all-MiniLM-L6-v2, layer 2, the bundled fortunes corpus, into out/<model>-L<layer>.qkdb. \
        --layer takes a layer, a range or list (0-3,8) or all; several layers go into one store (default \
        out/<model>.qkdb), one run each, and the run ends with a table per layer. Rerunning the same command \
        continues: a layer whose run is complete is kept, one stopped after step 1 or 2 goes on from there, \
        one stopped during step 1 starts again (a crash loses at most the layer in progress).
        """)

    @OptionGroup var pipeline: PipelineArguments
    @OptionGroup var mask: MaskArguments

    @Option(help: "Layer(s) to decompose: 2, 0-3,8 or all (repeatable; one run each).")
    var layer: [String] = ["2"]

    @Option(help: "Store file (created if missing; default out/<model>-L<layer>.qkdb for one layer, out/<model>.qkdb for several).")
    var store: String?

    @Option(help: "Held-out sequences evaluation patches patterns into.")
    var evalSequences: Int?

    func run() throws {
        let started = Date()
        let model = try loadModel(path: pipeline.model)
        let layers = try LayerSelection.parse(layer, nLayer: model.config.nLayer, model: pipeline.model)
        let fingerprint = try ModelFingerprint.of(path: pipeline.model)
        var storePaths: [String] = []
        for l in layers {
            var options = pipeline.options(layer: l, model: model)
            mask.apply(to: &options)
            if let e = evalSequences { options.evalSequences = e }
            options.job = options.jobKey(fingerprint: fingerprint)
            let name = RunNaming.name(model: options.model, layer: l)
            let path = store ?? (layers.count > 1 ? "out/\(RunNaming.modelName(options.model)).qkdb" : "out/\(name).qkdb")
            if !storePaths.contains(path) { storePaths.append(path) }
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
            // A rerun of the same command continues where the last one stopped.
            var runID: Int64
            var trained: TrainingResult? = nil
            var progress = try LayerProgress.of(layer: l, job: options.job ?? "", in: db)
            if case .complete(let done) = progress {
                FileHandle.standardError.write(Data("layer \(l): run \(done) in \(path) is complete; kept\n".utf8))
                continue
            }
            if case .partial(let id, let status) = progress {
                FileHandle.standardError.write(Data("layer \(l): continuing run \(id) in \(path) (\(status))\n".utf8))
                runID = id
                // The stored config holds what the sweep and μ search chose; later stages read it.
                options = try PipelineOptions.from(json: try db.run(id).spec.config)
            } else {
                let cancel = Interrupt.flag()
                let out = try TrainStage.run(options: options, model: model, plan: plan, store: db, name: name,
                                             observer: observer, cancel: cancel, checkpoint: path + ".checkpoint.safetensors")
                runID = out.run; trained = out.result
                progress = .partial(run: runID, status: "trained")
            }
            var pairs: PairMapResult? = nil
            if progress == .partial(run: runID, status: "trained") {
                pairs = try MaskStage.run(run: runID, options: options, model: model, plan: plan, store: db, observer: observer)
            }
            let report = try EvalStage.run(run: runID, options: options, model: model, plan: plan, store: db, observer: observer).report

            print("\nrun \(runID) (\(name)) in \(path)\n")
            if let trained, let m = trained.evaluation?.metrics {
                print(Summary.dictionaries(m, dHidden: trained.query.dHidden) + "\n")
                print(Summary.patternKL(step1: m, step2: pairs?.metrics) + "\n")
            }
            if let pairs, let trained {
                print(Summary.pairMap(pairs.metrics, nHead: model.config.nHead, dQuery: trained.query.dHidden,
                                      dKey: trained.key.dHidden) + "\n")
            }
            print(Summary.evaluationTable(report) + "\n")
            print(Summary.timings(observer.timings))
        }
        if layers.count > 1 {
            for path in storePaths {
                print("\nlayers of \(path):\n" + Summary.layers(try LayerOverview.all(in: try Store(path: path))))
            }
        }
        FileHandle.standardError.write(Data("finished in \(clock(Date().timeIntervalSince(started)))\n".utf8))
    }
}
