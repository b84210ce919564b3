import ArgumentParser

/// `qkdb verify` — placeholder until its issue lands; replaced by the real command.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", abstract: "Check a store's integrity: SQLite and every chunk checksum.")
    func run() throws { throw ValidationError("`qkdb verify` is not built yet") }
}
