import ArgumentParser

/// `qkdb sinks` — placeholder until its issue lands; replaced by the real command.
struct SinksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sinks", abstract: "Key features that make heads attend to the first token, and the query features that use them.")
    func run() throws { throw ValidationError("`qkdb sinks` is not built yet") }
}
