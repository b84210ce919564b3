import ArgumentParser
import Foundation
import QKModels
import QKTensor

/// `qkdb bench-forward` — times a full forward pass (to logits) on random token ids, for the
/// benchmark scripts in tools/bench/ that run qkdb and a PyTorch peer side by side. Hidden from
/// `--help`: it measures the runtime, it answers no question about a model. Uses every core
/// (2 on the reference machine; the peer is given the same).
struct BenchForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-forward",
        abstract: "Time full forward passes (to logits) on random token ids; prints tokens per second.",
        shouldDisplay: false)

    @Option(help: "Model path (a .gguf file, or a folder).") var model: String
    @Option(help: "Sequences per batch.") var batch: Int = 8
    @Option(help: "Tokens per sequence.") var length: Int = 128
    @Option(help: "Timed runs after one warm-up; the best is reported.") var runs: Int = 3

    func validate() throws {
        guard batch > 0, length > 0, runs > 0 else { throw ValidationError("--batch, --length and --runs must be positive") }
    }

    func run() throws {
        let loadStart = Date()
        guard let m = try loadLlamaModel(path: model) else {
            throw ModelError("\(model): not a Llama-family model (a .gguf file, or a folder with one, or config.json with model_type llama)")
        }
        let loadSeconds = Date().timeIntervalSince(loadStart)
        var rng = SystemRandomNumberGenerator()
        let ids = (0..<(batch * length)).map { _ in Int32.random(in: 0..<Int32(m.config.vocabSize), using: &rng) }
        let tokens = TokenBatch(ids: ids, batch: batch, length: length)
        _ = try m.forward(tokens, patch: nil)
        var best = Double.infinity
        for _ in 0..<runs {
            let t0 = Date()
            _ = try m.forward(tokens, patch: nil)
            best = min(best, Date().timeIntervalSince(t0))
        }
        print("blas_kernels \(BLAS.kernelName), threads \(ProcessInfo.processInfo.activeProcessorCount)")
        print(String(format: "load_s %.2f", loadSeconds))
        print(String(format: "tokens_per_s %.1f", Double(batch * length) / best))
    }
}
