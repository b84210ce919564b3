import ArgumentParser
import Foundation
import QKModels

/// `qkdb harvest` — run a model on text or token ids and write one layer's hook tensors
/// (and optionally the logits) to a `.safetensors` file. Thin: parse, call `Harvester`, print.
struct HarvestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "harvest",
        abstract: "Run a model on text and write its layer's hook tensors to a .safetensors file.",
        discussion: """
        Writes tokens [n, ctx] (int32), blocks.L.hook_attn_in [n, ctx, d_model], blocks.L.attn.hook_q \
        [n, ctx, n_head, d_head], blocks.L.attn.hook_k [n, ctx, n_kv_head, d_head], \
        blocks.L.attn.hook_pattern [n, n_head, ctx, ctx] and, with --logits, logits [n, ctx, vocab].
        """)

    enum YesNo: String, ExpressibleByArgument { case yes, no }

    @Option(help: "Model folder (config.json + model.safetensors + tokenizer files), or a .gguf file or a folder holding one.")
    var model: String
    @Option(help: "Layer whose attention hooks are captured (0-based).")
    var layer: Int
    @Option(help: "A text to run as one sequence of its natural length (repeatable; texts must tokenize to equal lengths).")
    var text: [String] = []
    @Option(help: "Token ids: .npy or .safetensors (tensor 'tokens'), int32/int64 [n, ctx], used as is.")
    var tokens: String?
    @Option(help: "Corpus: .txt (documents split on blank lines), .jsonl (field 'text'), or a directory of them.")
    var corpus: String?
    @Option(help: "Output .safetensors file.")
    var out: String
    @Option(help: "Tokens per packed sequence (--corpus only).")
    var context: Int = 128
    @Option(help: "Harvest at most this many sequences.")
    var maxSequences: Int?
    @Option(help: "Prepend the model's BOS token (decoders; BERT always adds [CLS]/[SEP]). Default: yes, except for GGUF files that say not to (SmolLM2).")
    var bos: YesNo?
    @Flag(help: "Also write logits [n, ctx, vocab] (models with an LM head).")
    var logits = false
    @Option(help: "Sequences per forward pass.")
    var batchSize: Int = 32
    @Flag(help: "Replace --out even when it is not an earlier harvest (a directory, a store, another file).")
    var force = false

    func run() throws {
        // Checked here rather than in validate(): a ValidationError would print usage lines too.
        let given = [!text.isEmpty, tokens != nil, corpus != nil].filter { $0 }.count
        guard given == 1 else { throw ModelError("give exactly one of --text, --tokens, --corpus") }
        try HarvestWriter.outputTarget(out, force: force).check()   // before minutes of work, not after
        AllocatorTuning.reuseLargeBlocks()
        let m = try loadModel(path: model)
        let harvester = try Harvester(model: m, layer: layer, batchSize: batchSize)
        let input: HarvestInput = corpus.map { .corpus(path: $0) } ?? tokens.map { .tokens(path: $0) } ?? .texts(text)
        let sequences = try input.sequences(for: m, context: context, maxSequences: maxSequences, bos: bos.map { $0 == .yes } ?? prependsBOSByDefault(m))
        // A live bar only on a terminal: piped stderr is reserved for the one-line error.
        let bar = isatty(2) != 0 ? ProgressBar("harvest", total: Double(sequences.count * sequences.context), unit: "tok") : nil
        let s = try harvester.harvest(sequences, logits: logits, to: out, force: force) { done in
            bar?.update(Double(done * sequences.context))
        }
        bar?.finish()
        print("wrote \(s.sequences) sequences × \(s.context) tokens of layer \(layer) to \(out) "
              + "in \(String(format: "%.2f", s.seconds)) s (\(Int(s.tokensPerSecond)) tokens/s)")
    }
}
