import QKTensor

/// The model families qkdb runs.
public enum Architecture: String, Sendable, Codable, CaseIterable {
    case gpt2, bert, llama
    /// Decoders attend causally; BERT attends in both directions.
    public var isCausal: Bool { self != .bert }
}

/// Dimensions of a loaded model, read from its own files (config.json or GGUF metadata).
public struct ModelConfig: Sendable, Codable, Equatable {
    public var architecture: Architecture
    public var nLayer: Int
    public var dModel: Int
    public var nHead: Int
    /// Key/value heads (== nHead except for grouped-query attention).
    public var nKVHead: Int
    public var dHead: Int
    public var vocabSize: Int
    /// Longest sequence the position embeddings allow (RoPE models: the trained context).
    public var maxPositions: Int
    /// RoPE base frequency (Llama only).
    public var ropeTheta: Float?
    /// Whether the loaded weights include an LM head (BERT sentence-embedding models do not).
    public var hasLMHead: Bool

    public init(architecture: Architecture, nLayer: Int, dModel: Int, nHead: Int, nKVHead: Int, dHead: Int,
                vocabSize: Int, maxPositions: Int, ropeTheta: Float? = nil, hasLMHead: Bool) {
        self.architecture = architecture; self.nLayer = nLayer; self.dModel = dModel; self.nHead = nHead
        self.nKVHead = nKVHead; self.dHead = dHead; self.vocabSize = vocabSize; self.maxPositions = maxPositions
        self.ropeTheta = ropeTheta; self.hasLMHead = hasLMHead
    }

    /// The key/value head that query head `h` reads (grouped-query attention).
    @inlinable public func kvHead(of h: Int) -> Int { h / (nHead / nKVHead) }
}

/// A batch of equal-length token sequences, row-major `[batch, length]`.
public struct TokenBatch: Sendable, Equatable {
    public var ids: [Int32]
    public var batch: Int
    public var length: Int
    public init(ids: [Int32], batch: Int, length: Int) {
        precondition(ids.count == batch * length, "token batch: \(ids.count) ids is not \(batch)×\(length)")
        self.ids = ids; self.batch = batch; self.length = length
    }
    public init(sequences: [[Int32]]) {
        let l = sequences.first?.count ?? 0
        precondition(sequences.allSatisfy { $0.count == l }, "token batch: sequences differ in length")
        self.init(ids: sequences.flatMap { $0 }, batch: sequences.count, length: l)
    }
    public func sequence(_ i: Int) -> ArraySlice<Int32> { ids[(i * length)..<((i + 1) * length)] }
}

/// What a forward pass captured at one layer, named after TransformerLens hooks.
public struct LayerCapture: Sendable {
    public var layer: Int
    /// `blocks.L.hook_attn_in` — the input W_Q and W_K multiply: `[batch, pos, d_model]`.
    /// (GPT-2/Llama: after the layer's pre-norm; BERT: the previous layer's output.)
    public var attnIn: Tensor
    /// `blocks.L.attn.hook_q`: `[batch, pos, n_head, d_head]`, bias included, before RoPE.
    public var q: Tensor
    /// `blocks.L.attn.hook_k`: `[batch, pos, n_kv_head, d_head]`, bias included, before RoPE.
    public var k: Tensor
    /// `blocks.L.attn.hook_pattern`: `[batch, n_head, q_pos, k_pos]`.
    public var pattern: Tensor

    public init(layer: Int, attnIn: Tensor, q: Tensor, k: Tensor, pattern: Tensor) {
        self.layer = layer; self.attnIn = attnIn; self.q = q; self.k = k; self.pattern = pattern
    }

    public static func hookName(_ layer: Int, _ hook: String) -> String {
        switch hook {
        case "attn_in": return "blocks.\(layer).hook_attn_in"
        default: return "blocks.\(layer).attn.hook_\(hook)"
        }
    }
}

/// Replaces one layer's attention pattern during a forward pass (evaluation patches
/// reconstructed, pruned, zero or uniform patterns in).
public struct PatternPatch: Sendable {
    public var layer: Int
    /// `[batch, n_head, q_pos, k_pos]`, rows summing to 1 (or 0 for zero-ablation).
    public var pattern: Tensor
    public init(layer: Int, pattern: Tensor) { self.layer = layer; self.pattern = pattern }
}

/// The result of a full forward pass.
public struct ModelOutput: Sendable {
    /// `[batch, pos, vocab]` for models with an LM head, else nil.
    public var logits: Tensor?
    /// `[batch, pos, d_model]`: the final hidden state (after the final norm for decoders).
    public var hidden: Tensor
    /// `[batch, d_model]`: mean over positions of `hidden` (BERT sentence embedding, as
    /// sentence-transformers' mean pooling over the attention mask).
    public var pooled: Tensor
    public init(logits: Tensor?, hidden: Tensor, pooled: Tensor) {
        self.logits = logits; self.hidden = hidden; self.pooled = pooled
    }
}

/// Turns text into token ids and back.
public protocol Tokenizer: Sendable {
    var vocabSize: Int { get }
    /// Ids of the text alone: no BOS/CLS/SEP added.
    func encode(_ text: String) -> [Int32]
    /// The text of one token id, as a person should read it (byte-level BPE decoded to UTF-8
    /// where possible, WordPiece `##` kept).
    func tokenString(_ id: Int32) -> String
    func decode(_ ids: [Int32]) -> String
    /// BOS for decoders, [CLS] for BERT.
    var bosID: Int32? { get }
    /// EOS for decoders, [SEP] for BERT.
    var eosID: Int32? { get }
}

/// One transformer, any family. Implementations are read-only after loading and may be
/// shared across threads.
public protocol TransformerModel: AnyObject, Sendable {
    var config: ModelConfig { get }
    var tokenizer: any Tokenizer { get }
    /// Where the weights came from (directory or file), for error messages and run metadata.
    var source: String { get }

    /// Runs layers 0...layer and returns that layer's hook tensors. Stops there.
    func capture(_ tokens: TokenBatch, layer: Int) throws -> LayerCapture

    /// Runs the whole model; if `patch` is given, that layer's attention pattern is replaced.
    func forward(_ tokens: TokenBatch, patch: PatternPatch?) throws -> ModelOutput
}

/// Errors of the model runtime. Every message names the file, layer or token at fault.
public struct ModelError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
