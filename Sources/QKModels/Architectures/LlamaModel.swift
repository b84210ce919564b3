import Foundation
import QKTensor

/// A Llama-family decoder (SmolLM2, Llama 2/3, Mistral-style without sliding windows):
/// pre-RMSNorm blocks, rotary position embeddings, grouped-query attention, SwiGLU MLP,
/// tied or separate LM head. Loads from a GGUF file or a Hugging Face directory
/// (config.json + model.safetensors); either way the weights end up Float32 in memory
/// (quantised GGUF tensors are dequantised once at load) and every product runs through BLAS.
///
/// Hooks (DESIGN §3): `hook_attn_in` is the output of the layer's input RMSNorm; `hook_q` and
/// `hook_k` are the projections before RoPE (`[b, pos, n_head, d_head]` and
/// `[b, pos, n_kv_head, d_head]`); the pattern is `[b, n_head, q, k]`, causal, with query head h
/// reading key/value head `config.kvHead(of: h)`.
///
/// Attention sinks without BOS: SmolLM2's GGUF says `add_bos_token = false`, so a sequence
/// starts with its first real token. Causal attention gives position 0 a unique role anyway —
/// it is the one key every query can see — and the model parks its "no-op" attention there,
/// so the first token of each sequence plays the BOS role for sink analysis. `bosID` and
/// `addsBOSByDefault` expose what the file says; callers prepend `bosID` when asked (`--bos yes`).
public final class LlamaModel: CapturingTransformer, @unchecked Sendable {
    public let config: ModelConfig
    public let tokenizer: any Tokenizer
    public let source: String
    /// The BOS token id the model's files name (nil if none).
    public let bosID: Int32?
    /// Whether the model's own tokenizer settings prepend BOS (`tokenizer.ggml.add_bos_token`).
    public let addsBOSByDefault: Bool
    let weights: LlamaWeights
    let rope: RoPE

    init(config: ModelConfig, weights: LlamaWeights, bos: BOSInfo, tokenizer: any Tokenizer, source: String) {
        self.config = config; self.weights = weights; self.tokenizer = tokenizer; self.source = source
        self.bosID = bos.id; self.addsBOSByDefault = bos.addByDefault
        rope = RoPE(dHead: config.dHead, theta: config.ropeTheta ?? 10000)
    }

    /// Loads a GGUF file (architecture `llama`).
    public convenience init(gguf file: GGUFFile, tokenizer: any Tokenizer) throws {
        let (config, weights, bos) = try LlamaModel.readGGUF(file)
        self.init(config: config, weights: weights, bos: bos, tokenizer: tokenizer, source: file.path)
    }

    public convenience init(ggufPath: String, tokenizer: any Tokenizer) throws {
        try self.init(gguf: try GGUFFile(path: ggufPath), tokenizer: tokenizer)
    }

    /// Loads a Hugging Face directory holding `config.json` and `model.safetensors`.
    public convenience init(huggingFaceDirectory dir: String, tokenizer: any Tokenizer) throws {
        let (config, weights, bos) = try LlamaModel.readHuggingFace(directory: dir)
        self.init(config: config, weights: weights, bos: bos, tokenizer: tokenizer, source: dir)
    }

    public func capture(_ tokens: TokenBatch, layer: Int) throws -> LayerCapture {
        guard (0..<config.nLayer).contains(layer) else {
            throw ModelError("\(source): layer \(layer) does not exist (the model has layers 0…\(config.nLayer - 1))")
        }
        var cap: LayerCapture?
        _ = try run(tokens, stopAfter: layer, captureLayer: layer, patch: nil) { cap = $0 }
        guard let cap else { throw ModelError("\(source): layer \(layer) was not captured") }
        return cap
    }

    public func forward(_ tokens: TokenBatch, patch: PatternPatch?) throws -> ModelOutput {
        try run(tokens, stopAfter: nil, captureLayer: nil, patch: patch) { _ in }
    }

    /// Runs the whole model and captures `layer`'s hooks on the way (harvesting with logits
    /// needs both; one pass instead of two).
    public func forward(_ tokens: TokenBatch, patch: PatternPatch?, capturing layer: Int) throws -> (LayerCapture, ModelOutput) {
        guard (0..<config.nLayer).contains(layer) else {
            throw ModelError("\(source): layer \(layer) does not exist (the model has layers 0…\(config.nLayer - 1))")
        }
        var cap: LayerCapture?
        let out = try run(tokens, stopAfter: nil, captureLayer: layer, patch: patch) { cap = $0 }
        guard let cap else { throw ModelError("\(source): layer \(layer) was not captured") }
        return (cap, out)
    }

    /// Fails on ids outside the vocabulary or sequences longer than the trained context.
    func validate(_ tokens: TokenBatch) throws {
        guard tokens.length > 0, tokens.batch > 0 else { throw ModelError("\(source): empty token batch") }
        guard tokens.length <= config.maxPositions else {
            throw ModelError("\(source): sequence length \(tokens.length) exceeds the model's context of \(config.maxPositions)")
        }
        if let bad = tokens.ids.firstIndex(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw ModelError("\(source): token id \(tokens.ids[bad]) at sequence \(bad / tokens.length), position \(bad % tokens.length) is outside the vocabulary of \(config.vocabSize)")
        }
    }
}
