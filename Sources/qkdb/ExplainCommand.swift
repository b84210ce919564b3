import ArgumentParser

/// `qkdb explain` — placeholder until its issue lands; replaced by the real command.
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "explain", abstract: "Split one prompt's attention score into feature-pair contributions.")
    func run() throws { throw ValidationError("`qkdb explain` is not built yet") }
}
