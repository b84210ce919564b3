import ArgumentParser

/// `qkdb run` — placeholder until its issue lands; replaced by the real command.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "The whole job: harvest → train → mask → statistics → evaluation → store.")
    func run() throws { throw ValidationError("`qkdb run` is not built yet") }
}
