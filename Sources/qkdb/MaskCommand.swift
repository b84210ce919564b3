import ArgumentParser

/// `qkdb mask` — placeholder until its issue lands; replaced by the real command.
struct MaskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mask", abstract: "Step 2: learn the sparse query-feature × key-feature mask of a run.")
    func run() throws { throw ValidationError("`qkdb mask` is not built yet") }
}
