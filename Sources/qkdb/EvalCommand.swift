import ArgumentParser

/// `qkdb eval` — placeholder until its issue lands; replaced by the real command.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eval", abstract: "Evaluate a run by patching reconstructed patterns into the model.")
    func run() throws { throw ValidationError("`qkdb eval` is not built yet") }
}
