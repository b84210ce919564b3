import ArgumentParser
import QKStore
import QKAnalysis

/// `qkdb export-dictionaries`: a run's transcoders in SAELens' layout.
struct ExportDictionariesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-dictionaries",
        abstract: "Export a run's transcoders in SAELens layout (DIR/query, DIR/key: cfg.json, sae_weights.safetensors, sparsity.safetensors).")

    @Option(help: "Store file.") var store: String
    @Option(name: .customLong("run"), help: "Run id.") var runID: Int64
    @Option(help: "Output directory (DIR/query and DIR/key are replaced only if they hold an earlier export).") var out: String
    @Flag(help: "Replace DIR/query and DIR/key whatever they hold.") var force = false

    func run() throws {
        let db = try Store(path: store, mode: .readOnly)
        try DictionaryExport.write(run: runID, store: db, to: out, force: force)
        print("wrote \(out)/query and \(out)/key")
    }
}
