import ArgumentParser

/// `qkdb feature` — placeholder until its issue lands; replaced by the real command.
struct FeatureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "feature", abstract: "Statistics, examples and partners of one feature.")
    func run() throws { throw ValidationError("`qkdb feature` is not built yet") }
}
