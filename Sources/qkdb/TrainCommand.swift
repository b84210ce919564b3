import ArgumentParser

/// `qkdb train` — placeholder until its issue lands; replaced by the real command.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Step 1: train query and key transcoders on a layer's attention patterns.")
    func run() throws { throw ValidationError("`qkdb train` is not built yet") }
}
