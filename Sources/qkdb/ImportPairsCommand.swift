import ArgumentParser

/// `qkdb import-pairs` — placeholder until its issue lands; replaced by the real command.
struct ImportPairsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import-pairs", abstract: "Import a pair map from a COO .safetensors file as a new run.")
    func run() throws { throw ValidationError("`qkdb import-pairs` is not built yet") }
}
