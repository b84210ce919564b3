import Foundation
import QKTensor

/// Finds and opens a Llama-family model at `path`, which may be
/// - a `.gguf` file,
/// - a directory holding exactly one `.gguf` file (the bundled `models/SmolLM2-135M-Instruct`), or
/// - a Hugging Face directory with `config.json` (`model_type` "llama") and `model.safetensors`.
/// Returns nil when `path` is none of these (so a loader can try other families).
public func loadLlamaModel(path: String) throws -> LlamaModel? {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return nil }
    if !isDirectory.boolValue {
        guard path.lowercased().hasSuffix(".gguf") else { return nil }
        return try openGGUFLlama(path)
    }
    let configPath = (path as NSString).appendingPathComponent("config.json")
    if FileManager.default.fileExists(atPath: configPath) {
        guard let data = FileManager.default.contents(atPath: configPath),
              let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              (json["model_type"] as? String) == "llama" else { return nil }
        let vocab = (json["vocab_size"] as? NSNumber)?.intValue ?? 0
        return try LlamaModel(huggingFaceDirectory: path, tokenizer: llamaDirectoryTokenizer(path, vocabSize: vocab))
    }
    guard let gguf = try ggufFile(inDirectory: path) else { return nil }
    return try openGGUFLlama(gguf)
}

/// The single `.gguf` file in a directory; nil if there is none, an error if there are several.
public func ggufFile(inDirectory dir: String) throws -> String? {
    let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
        .filter { $0.lowercased().hasSuffix(".gguf") }.sorted()
    guard !names.isEmpty else { return nil }
    guard names.count == 1 else {
        throw ModelError("\(dir): holds \(names.count) GGUF files (\(names.joined(separator: ", "))); name one")
    }
    return (dir as NSString).appendingPathComponent(names[0])
}

private func openGGUFLlama(_ path: String) throws -> LlamaModel {
    try oneLineErrors { try openGGUFLlamaUnchecked(path) }
}

private func openGGUFLlamaUnchecked(_ path: String) throws -> LlamaModel {
    let file = try GGUFFile(path: path)
    // Architecture first, so a non-Llama file is named as such rather than as lacking a tokenizer.
    let arch = try file.string("general.architecture")
    guard arch == "llama" else { throw ModelError("\(path): GGUF architecture '\(arch)' is not supported (only 'llama')") }
    let tokenizer = try ggufTokenizer(file)
    return try LlamaModel(gguf: file, tokenizer: tokenizer)
}

/// The byte-level BPE tokenizer a GGUF file carries, built as transformers builds it from the
/// same file; fails naming the missing or malformed metadata key.
func ggufTokenizer(_ file: GGUFFile) throws -> any Tokenizer {
    let meta = try GGUFTokenizerMetadata(file)
    return try ByteLevelBPETokenizer(ggufTokens: meta.tokens, merges: meta.merges, tokenTypes: meta.tokenTypes,
                                     bosID: meta.bosID, eosID: meta.eosID, pre: meta.pre, source: file.path)
}

/// A Hugging Face Llama directory's tokenizer files; when they cannot be read the model still
/// runs on token ids and text input reports why (as for GPT-2 and BERT).
func llamaDirectoryTokenizer(_ dir: String, vocabSize: Int) -> any Tokenizer {
    tokenizerOrUnavailable(directory: dir, architecture: .llama, vocabSize: vocabSize)
}

/// Whether qkdb prepends BOS for this model when the user does not say (`--bos` unset):
/// Llama GGUF files decide (`tokenizer.ggml.add_bos_token`; SmolLM2: no), every other
/// decoder follows DESIGN §3 (yes).
public func prependsBOSByDefault(_ model: any TransformerModel) -> Bool {
    if let llama = model as? LlamaModel { return llama.addsBOSByDefault }
    return true
}
