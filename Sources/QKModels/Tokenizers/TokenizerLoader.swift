import Foundation

/// Loads the tokenizer that belongs to a Hugging Face model directory.
///
/// BERT prefers `vocab.txt` (WordPiece), then a WordPiece `tokenizer.json`; the decoders prefer
/// `tokenizer.json` (byte-level BPE, or WordPiece if that is what it holds), then GPT-2's
/// `vocab.json` + `merges.txt` (byte-level BPE). `tokenizer_config.json`, when present, supplies
/// the casing of WordPiece models and the BOS/EOS names of BPE ones. GGUF models carry their
/// tokenizer inside the file: see `ByteLevelBPETokenizer.init(ggufTokens:…)`.
public func loadTokenizer(modelDirectory: String, architecture: Architecture) throws -> any Tokenizer {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: modelDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw ModelError("\(modelDirectory): no such model directory")
    }
    let dir = URL(fileURLWithPath: modelDirectory)
    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
    let config = try tokenizerConfig(path("tokenizer_config.json"))
    let has = { (name: String) in TokenizerFiles.exists(path(name)) }

    let wordPiece = {
        try WordPieceTokenizer.load(vocabTXT: path("vocab.txt"),
                                    lowercases: config["do_lower_case"] as? Bool ?? true,
                                    stripsAccents: config["strip_accents"] as? Bool,
                                    splitsCJK: config["tokenize_chinese_chars"] as? Bool ?? true)
    }
    let bpe = { () throws -> any Tokenizer in
        if has("tokenizer.json") {
            if try tokenizerJSONModelType(path("tokenizer.json")) == "WordPiece" {
                return try WordPieceTokenizer.load(tokenizerJSON: path("tokenizer.json"))
            }
            return try ByteLevelBPETokenizer.load(tokenizerJSON: path("tokenizer.json"),
                                                  bos: TokenizerFiles.tokenName(config["bos_token"]),
                                                  eos: TokenizerFiles.tokenName(config["eos_token"]))
        }
        return try ByteLevelBPETokenizer.load(vocabJSON: path("vocab.json"), mergesTXT: path("merges.txt"),
                                              extraAddedTokens: configAddedTokens(config))
    }
    switch architecture {
    case .bert:
        if has("vocab.txt") { return try wordPiece() }
        if has("tokenizer.json") { return try WordPieceTokenizer.load(tokenizerJSON: path("tokenizer.json")) }
        throw ModelError("\(modelDirectory): no tokenizer files (a BERT model needs vocab.txt or tokenizer.json)")
    case .gpt2, .llama:
        if has("tokenizer.json") || has("vocab.json") || has("merges.txt") { return try bpe() }
        if has("vocab.txt") { return try wordPiece() }
        throw ModelError("\(modelDirectory): no tokenizer files (a byte-level BPE model needs tokenizer.json, or vocab.json + merges.txt)")
    }
}

/// The `model.type` of a tokenizer.json ("BPE", "WordPiece", …).
private func tokenizerJSONModelType(_ path: String) throws -> String? {
    let root = try TokenizerFiles.json(path, what: "Hugging Face tokenizer") as? [String: Any]
    return (root?["model"] as? [String: Any])?["type"] as? String
}

/// tokenizer_config.json as a dictionary, or empty when absent.
private func tokenizerConfig(_ path: String) throws -> [String: Any] {
    guard TokenizerFiles.exists(path) else { return [:] }
    guard let object = try TokenizerFiles.json(path, what: "tokenizer settings") as? [String: Any] else {
        throw ModelError("\(path): not a JSON object (tokenizer settings)")
    }
    return object
}

/// The `added_tokens_decoder` entries of tokenizer_config.json (id → {content, special, …}).
private func configAddedTokens(_ config: [String: Any]) -> [AddedToken] {
    guard let table = config["added_tokens_decoder"] as? [String: Any] else { return [] }
    return table.compactMap { key, value in
        guard let id = Int32(key), let entry = value as? [String: Any], let content = entry["content"] as? String else { return nil }
        return AddedToken(content: content, id: id, isSpecial: entry["special"] as? Bool ?? false,
                          stripLeft: entry["lstrip"] as? Bool ?? false, stripRight: entry["rstrip"] as? Bool ?? false)
    }.sorted { $0.id < $1.id }
}
