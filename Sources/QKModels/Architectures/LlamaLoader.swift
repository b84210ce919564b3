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
        let tokenizer = llamaDirectoryTokenizer(path)
        return try LlamaModel(huggingFaceDirectory: path, tokenizer: tokenizer)
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
    let file = try GGUFFile(path: path)
    // Architecture first, so a non-Llama file is named as such rather than as lacking a tokenizer.
    let arch = try file.string("general.architecture")
    guard arch == "llama" else { throw ModelError("\(path): GGUF architecture '\(arch)' is not supported (only 'llama')") }
    let tokenizer = try ggufTokenizer(file)
    return try LlamaModel(gguf: file, tokenizer: tokenizer)
}

/// The byte-level BPE tokenizer a GGUF file carries; fails naming the missing metadata key.
func ggufTokenizer(_ file: GGUFFile) throws -> any Tokenizer {
    let meta = try GGUFTokenizerMetadata(file)
    return GGUFVocabularyTokenizer(meta)
}

/// A Hugging Face Llama directory's tokenizer (tokenizer.json); nil-safe placeholder until the
/// tokenizer loader handles Llama directories.
func llamaDirectoryTokenizer(_ dir: String) -> any Tokenizer {
    GGUFVocabularyTokenizer(GGUFTokenizerMetadata(tokens: [], bosID: nil, eosID: nil))
}

/// Temporary: reads ids back to token strings from the GGUF vocabulary; encoding needs the BPE
/// tokenizer (replaced by it when that lands).
struct GGUFVocabularyTokenizer: Tokenizer {
    let meta: GGUFTokenizerMetadata
    init(_ meta: GGUFTokenizerMetadata) { self.meta = meta }
    var vocabSize: Int { meta.tokens.count }
    func encode(_ text: String) -> [Int32] { [] }
    func tokenString(_ id: Int32) -> String { meta.tokens.indices.contains(Int(id)) ? meta.tokens[Int(id)] : "#\(id)" }
    func decode(_ ids: [Int32]) -> String { ids.map(tokenString).joined() }
    var bosID: Int32? { meta.bosID }
    var eosID: Int32? { meta.eosID }
}
