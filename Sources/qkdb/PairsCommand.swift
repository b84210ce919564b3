import ArgumentParser

/// `qkdb pairs` — placeholder until its issue lands; replaced by the real command.
struct PairsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pairs", abstract: "The query × key feature pairs of one feature, ranked.")
    func run() throws { throw ValidationError("`qkdb pairs` is not built yet") }
}
