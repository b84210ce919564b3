import ArgumentParser

/// `qkdb export` — placeholder until its issue lands; replaced by the real command.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Export pairs, features or examples as CSV.")
    func run() throws { throw ValidationError("`qkdb export` is not built yet") }
}
