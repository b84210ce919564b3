import ArgumentParser

/// `qkdb harvest` — placeholder until its issue lands; replaced by the real command.
struct HarvestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "harvest", abstract: "Run a model on text and write its layer's hook tensors to a .safetensors file.")
    func run() throws { throw ValidationError("`qkdb harvest` is not built yet") }
}
