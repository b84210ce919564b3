import QKTensor

/// The tokenizer a GGUF file carries in its metadata (`tokenizer.ggml.*`), read and checked.
/// llama.cpp stores byte-level BPE as the vocabulary (`tokens`, index = id), the merge list
/// (`merges`, "a b" per line), per-token types (`token_type`: 1 normal, 3 control, 4 user
/// defined, ...), the special ids, and `pre`, the name of the pre-tokeniser's split pattern.
public struct GGUFTokenizerMetadata: Sendable {
    public var model: String
    public var tokens: [String]
    public var merges: [String]
    public var tokenTypes: [Int32]?
    public var bosID: Int32?
    public var eosID: Int32?
    public var pre: String?
    /// `tokenizer.ggml.add_bos_token` (llama.cpp's default when absent: prepend BOS).
    public var addsBOS: Bool

    /// Fails with one line naming the file and the missing or malformed key.
    public init(_ file: GGUFFile) throws {
        let path = file.path
        func missing(_ key: String) -> TensorFileError {
            TensorFileError(file: path, message: "GGUF tokenizer metadata '\(key)' is missing (the file carries no usable tokenizer)")
        }
        guard let modelValue = file["tokenizer.ggml.model"] else { throw missing("tokenizer.ggml.model") }
        guard let model = modelValue.string else { throw TensorFileError(file: path, message: "GGUF metadata 'tokenizer.ggml.model' is not a string") }
        guard model == "gpt2" else {
            throw TensorFileError(file: path, message: "GGUF tokenizer model '\(model)' is not supported (only byte-level BPE, 'gpt2')")
        }
        guard let tokValue = file["tokenizer.ggml.tokens"] else { throw missing("tokenizer.ggml.tokens") }
        guard let tokens = tokValue.strings, !tokens.isEmpty else {
            throw TensorFileError(file: path, message: "GGUF metadata 'tokenizer.ggml.tokens' is not a non-empty array of strings")
        }
        guard let mergeValue = file["tokenizer.ggml.merges"] else { throw missing("tokenizer.ggml.merges") }
        guard let merges = mergeValue.strings else {
            throw TensorFileError(file: path, message: "GGUF metadata 'tokenizer.ggml.merges' is not an array of strings")
        }
        var types: [Int32]?
        if let t = file["tokenizer.ggml.token_type"] {
            guard let ints = t.ints, ints.count == tokens.count else {
                throw TensorFileError(file: path, message: "GGUF metadata 'tokenizer.ggml.token_type' is not \(tokens.count) integers")
            }
            types = ints.map { Int32(truncatingIfNeeded: $0) }
        }
        func id(_ key: String) throws -> Int32? {
            guard let v = file[key] else { return nil }
            guard let i = v.int, (0..<tokens.count).contains(i) else {
                throw TensorFileError(file: path, message: "GGUF metadata '\(key)' is \(v), not a token id below \(tokens.count)")
            }
            return Int32(i)
        }
        self.model = model
        self.tokens = tokens
        self.merges = merges
        self.tokenTypes = types
        self.bosID = try id("tokenizer.ggml.bos_token_id")
        self.eosID = try id("tokenizer.ggml.eos_token_id")
        self.pre = file["tokenizer.ggml.pre"]?.string
        self.addsBOS = file["tokenizer.ggml.add_bos_token"]?.bool ?? true
    }
}
