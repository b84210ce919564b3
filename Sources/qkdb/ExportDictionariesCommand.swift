import ArgumentParser

/// `qkdb export-dictionaries` — placeholder until its issue lands; replaced by the real command.
struct ExportDictionariesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export-dictionaries", abstract: "Export a run's transcoders in SAELens layout.")
    func run() throws { throw ValidationError("`qkdb export-dictionaries` is not built yet") }
}
