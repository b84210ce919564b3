import QKTensor

/// A heap buffer of Float32 for one forward pass. Plain pointers (rather than arrays nested in
/// `withUnsafe…` closures) keep the layer code readable; the buffer frees itself. It is not
/// zero-filled: every forward step writes a buffer in full before reading it, and skipping the
/// fill saves a pass over ~100 MB per MiniLM batch.
final class ScratchBuffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    init(_ count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
    }
    deinit { pointer.deallocate() }
    func array() -> [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// Models whose capture and full forward pass can share one run (harvesting with `--logits`
/// needs both; running the model twice would double the cost).
public protocol CapturingTransformer: TransformerModel {
    /// Runs the whole model, capturing `layer`'s hooks on the way.
    func forward(_ tokens: TokenBatch, patch: PatternPatch?, capturing layer: Int) throws -> (LayerCapture, ModelOutput)
}

/// Input checks shared by every architecture: each message names the model and what is wrong,
/// so bad ids or layers surface as one clear error instead of an out-of-bounds read.
enum ForwardChecks {
    static func tokens(_ tokens: TokenBatch, config: ModelConfig, source: String) throws {
        guard tokens.batch > 0, tokens.length > 0 else {
            throw ModelError("\(source): empty input (\(tokens.batch) sequences of \(tokens.length) tokens)")
        }
        guard tokens.length <= config.maxPositions else {
            throw ModelError("\(source): sequence length \(tokens.length) exceeds the model's \(config.maxPositions) positions")
        }
        for (i, id) in tokens.ids.enumerated() where id < 0 || Int(id) >= config.vocabSize {
            throw ModelError("\(source): token id \(id) (sequence \(i / tokens.length), position \(i % tokens.length)) is outside the vocabulary of \(config.vocabSize)")
        }
    }

    static func layer(_ layer: Int, config: ModelConfig, source: String) throws {
        guard layer >= 0, layer < config.nLayer else {
            throw ModelError("\(source): layer \(layer) is out of range (the model has layers 0–\(config.nLayer - 1))")
        }
    }

    static func patch(_ patch: PatternPatch?, tokens: TokenBatch, config: ModelConfig, source: String) throws {
        guard let patch else { return }
        try layer(patch.layer, config: config, source: source)
        let want = [tokens.batch, config.nHead, tokens.length, tokens.length]
        guard patch.pattern.shape == want else {
            throw ModelError("\(source): replacement pattern for layer \(patch.layer) has shape \(patch.pattern.shape), expected \(want)")
        }
    }
}

/// Mean over positions of `[batch, T, d]` → `[batch, d]` (sentence-transformers' mean pooling;
/// sequences carry no padding, so every position counts).
func meanPool(_ hidden: UnsafePointer<Float>, batch: Int, length: Int, width: Int) -> Tensor {
    var out = Tensor(zeros: [batch, width])
    out.data.withUnsafeMutableBufferPointer { o in
        for b in 0..<batch {
            let dst = o.baseAddress! + b * width
            for t in 0..<length {
                let src = hidden + (b * length + t) * width
                for j in 0..<width { dst[j] += src[j] }
            }
            let inv = 1 / Float(length)
            for j in 0..<width { dst[j] *= inv }
        }
    }
    return out
}

/// A tokenizer slot for a model whose tokenizer files could not be loaded: the model still runs
/// on token ids (`--tokens`); anything needing text gets the original load error.
struct UnavailableTokenizer: Tokenizer {
    let error: ModelError
    let vocabSize: Int
    func encode(_ text: String) -> [Int32] { [] }
    func tokenString(_ id: Int32) -> String { "#\(id)" }
    func decode(_ ids: [Int32]) -> String { ids.map { "#\($0)" }.joined(separator: " ") }
    var bosID: Int32? { nil }
    var eosID: Int32? { nil }
}

extension TransformerModel {
    /// The model's tokenizer, or the error that kept it from loading (text input needs one).
    public func requireTokenizer() throws -> any Tokenizer {
        if let missing = tokenizer as? UnavailableTokenizer { throw missing.error }
        return tokenizer
    }
}

/// Range checks every config reader applies (config.json and GGUF metadata alike), so a hostile
/// or mistyped value is one clear line at load instead of NaNs, a trap or a huge allocation.
enum ConfigChecks {
    /// A finite value > 0 (epsilons, RoPE bases); `found` is what the file said, for the message.
    static func positive(_ value: Float?, _ key: String, source: String, found: Any) throws -> Float {
        guard let value, value.isFinite, value > 0 else {
            throw ModelError("\(source): '\(key)' must be a finite number > 0, found \(JSONNumber.quoted(found))")
        }
        return value
    }

    /// Every layer has weight tensors, so a layer count above the tensors present is corrupt; it is
    /// checked before anything is allocated per layer (10^9 layers would reserve ~144 GB up front).
    static func layers(_ n: Int, _ key: String, tensors: Int, source: String) throws {
        guard n >= 1, n <= tensors else {
            throw ModelError("\(source): '\(key)' says \(n) layers, but the weights hold only \(tensors) tensors")
        }
    }
}

/// Loads a directory's tokenizer, keeping the failure instead of failing the model load.
func tokenizerOrUnavailable(directory: String, architecture: Architecture, vocabSize: Int) -> any Tokenizer {
    do { return try loadTokenizer(modelDirectory: directory, architecture: architecture) } catch {
        return UnavailableTokenizer(error: error as? ModelError ?? ModelError("\(error)"), vocabSize: vocabSize)
    }
}
