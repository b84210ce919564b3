import ArgumentParser

/// `qkdb report` — placeholder until its issue lands; replaced by the real command.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Write a browsable static HTML report of a run.")
    func run() throws { throw ValidationError("`qkdb report` is not built yet") }
}
