import ArgumentParser

/// `qkdb runs` — placeholder until its issue lands; replaced by the real command.
struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runs", abstract: "List the runs in a store.")
    func run() throws { throw ValidationError("`qkdb runs` is not built yet") }
}
