import ArgumentParser
import Foundation
import QKModels
import QKTrain
import QKStore
import QKAnalysis

/// `qkdb train`: step 1 on its own; writes a new run with the two dictionaries and their metrics.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Step 1: train query and key transcoders on a layer's attention patterns.",
        discussion: "Ctrl-C writes a checkpoint (--checkpoint, default STORE.checkpoint.safetensors) and stops; --resume continues it bit-for-bit.")

    @OptionGroup var pipeline: PipelineArguments

    @Option(help: "Layer whose attention is decomposed.")
    var layer: Int = 2

    @Option(help: "Store file to write the run into (created if missing).")
    var store: String

    @Option(help: "Run name (default: model name and layer).")
    var name: String?

    @Option(help: "Where Ctrl-C writes a checkpoint.")
    var checkpoint: String?

    @Option(help: "Continue from this checkpoint (same options).")
    var resume: String?

    @Flag(help: "Let Ctrl-C replace --checkpoint even when it is not an earlier checkpoint.")
    var force = false

    func run() throws {
        let model = try loadModel(path: pipeline.model)
        let options = pipeline.options(layer: layer, model: model)
        // Checked before the store is created, so bad input leaves no file behind.
        guard layer >= 0, layer < model.config.nLayer else {
            throw PipelineError("layer \(layer) is out of range: \(options.model) has layers 0..<\(model.config.nLayer)")
        }
        try options.validate()
        let plan = try CorpusPlan(options: options, model: model)
        let checkpointPath = checkpoint ?? store + ".checkpoint.safetensors"
        try TrainStage.checkCheckpointPath(checkpointPath, force: force)
        let db = try Store(path: store, mode: .create)
        let cancel = Interrupt.flag()
        let observer = ProgressObserver()
        let out = try TrainStage.run(options: options, model: model, plan: plan, store: db,
                                     name: name ?? RunNaming.name(model: options.model, layer: layer), observer: observer,
                                     cancel: cancel, checkpoint: checkpointPath, resume: resume)
        print("run \(out.run) written to \(store)")
    }
}

/// Default run names: `<model folder or file stem>-L<layer>`.
enum RunNaming {
    static func name(model: String, layer: Int) -> String { "\(modelName(model))-L\(layer)" }
    /// The model's folder or file name without extension ("all-MiniLM-L6-v2").
    static func modelName(_ model: String) -> String { URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent }
}
