import Foundation

extension WordPieceTokenizer {
    /// A Hugging Face `tokenizer.json` whose model is WordPiece behind BertNormalizer and
    /// BertPreTokenizer (what BERT checkpoints ship besides, or instead of, vocab.txt).
    public static func load(tokenizerJSON path: String) throws -> WordPieceTokenizer {
        guard let root = try TokenizerFiles.json(path, what: "Hugging Face tokenizer") as? [String: Any],
              let model = root["model"] as? [String: Any] else {
            throw ModelError("\(path): no \"model\" object (Hugging Face tokenizer)")
        }
        guard (model["type"] as? String) == "WordPiece" else {
            throw ModelError("\(path): model type \((model["type"] as? String ?? "missing").debugDescription) is not WordPiece")
        }
        guard (model["continuing_subword_prefix"] as? String ?? "##") == "##",
              (model["unk_token"] as? String ?? "[UNK]") == "[UNK]" else {
            throw ModelError("\(path): only WordPiece with \"##\" continuations and [UNK] is supported")
        }
        guard let vocab = model["vocab"] as? [String: Any] else {
            throw ModelError("\(path): model.vocab is not an object of token → id")
        }
        var byID: [Int: String] = [:]
        for (token, value) in vocab {
            guard let number = value as? NSNumber, let id = Int(exactly: number.doubleValue), id >= 0, id < 10_000_000 else {
                throw ModelError("\(path): token \(token.debugDescription) has id \(ByteLevelBPETokenizer.describe(value)), not a non-negative integer")
            }
            byID[id] = token
        }
        let size = (byID.keys.max() ?? -1) + 1
        let tokens = (0..<size).map { byID[$0] ?? "" }
        guard let normalizer = root["normalizer"] as? [String: Any], (normalizer["type"] as? String) == "BertNormalizer" else {
            throw ModelError("\(path): WordPiece needs a BertNormalizer; found \(ByteLevelBPETokenizer.describe(root["normalizer"] ?? NSNull()))")
        }
        guard let pre = root["pre_tokenizer"] as? [String: Any], (pre["type"] as? String) == "BertPreTokenizer" else {
            throw ModelError("\(path): WordPiece needs a BertPreTokenizer; found \(ByteLevelBPETokenizer.describe(root["pre_tokenizer"] ?? NSNull()))")
        }
        guard normalizer["clean_text"] as? Bool ?? true else {
            throw ModelError("\(path): BertNormalizer without clean_text is not supported")
        }
        let lowercases = normalizer["lowercase"] as? Bool ?? true
        let special = try ByteLevelBPETokenizer.addedTokens(root["added_tokens"], source: path)
        return try WordPieceTokenizer(tokens: tokens, lowercases: lowercases,
                                      stripsAccents: normalizer["strip_accents"] as? Bool,
                                      splitsCJK: normalizer["handle_chinese_chars"] as? Bool ?? true,
                                      maxWordLength: (model["max_input_chars_per_word"] as? Int) ?? 100,
                                      specialTokens: special, source: path)
    }
}
