import Foundation

/// Building a `ByteLevelBPETokenizer` from the file layouts models ship with.
extension ByteLevelBPETokenizer {
    /// GPT-2's original pair of files: `vocab.json` (token → id) and `merges.txt` (one "left right"
    /// merge per line in rank order, after an optional `#version` line). As GPT2TokenizerFast
    /// does, `<|endoftext|>` is kept whole in text and is both BOS and EOS when the vocabulary has
    /// it; `extraAddedTokens` (e.g. from tokenizer_config.json) are kept whole as well.
    public static func load(vocabJSON: String, mergesTXT: String, extraAddedTokens: [AddedToken] = []) throws -> ByteLevelBPETokenizer {
        guard let object = try TokenizerFiles.json(vocabJSON, what: "byte-level BPE vocabulary") as? [String: Any] else {
            throw ModelError("\(vocabJSON): not a JSON object of token → id (byte-level BPE vocabulary)")
        }
        let vocabulary = try idMap(object, source: vocabJSON)
        let text = try TokenizerFiles.text(mergesTXT, what: "byte-level BPE merges")
        var merges: [(String, String)] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.hasSuffix("\r") ? line.dropLast() : line
            if trimmed.isEmpty || (index == 0 && trimmed.hasPrefix("#version")) { continue }
            merges.append(try TokenizerFiles.mergePair(trimmed, number: index + 1, source: mergesTXT))
        }
        var added = extraAddedTokens
        let endOfText = vocabulary["<|endoftext|>"]
        if let endOfText, !added.contains(where: { $0.id == endOfText }) {
            added.append(AddedToken(content: "<|endoftext|>", id: endOfText))
        }
        return try ByteLevelBPETokenizer(vocabulary: vocabulary, merges: merges, addedTokens: added,
                                         bosID: endOfText, eosID: endOfText, source: "\(vocabJSON) + \(mergesTXT)")
    }

    /// A Hugging Face `tokenizer.json` whose model is BPE behind a ByteLevel pre-tokenizer (alone,
    /// after `Digits`, or after a `Split` with the Llama-3 or Qwen2 pattern). `bos`/`eos` name the
    /// BOS and EOS tokens (from tokenizer_config.json); without them `<|endoftext|>` serves if present.
    /// The only normalizer accepted is NFC (Qwen2's).
    public static func load(tokenizerJSON path: String, bos: String? = nil, eos: String? = nil) throws -> ByteLevelBPETokenizer {
        guard let root = try TokenizerFiles.json(path, what: "Hugging Face tokenizer") as? [String: Any],
              let model = root["model"] as? [String: Any] else {
            throw ModelError("\(path): no \"model\" object (Hugging Face tokenizer)")
        }
        guard (model["type"] as? String) == "BPE" else {
            throw ModelError("\(path): model type \((model["type"] as? String ?? "missing").debugDescription) is not BPE")
        }
        guard let vocabObject = model["vocab"] as? [String: Any] else {
            throw ModelError("\(path): model.vocab is not an object of token → id")
        }
        let vocabulary = try idMap(vocabObject, source: path)
        guard let mergeList = model["merges"] as? [Any] else {
            throw ModelError("\(path): model.merges is not a list")
        }
        var merges: [(String, String)] = []
        merges.reserveCapacity(mergeList.count)
        for (index, entry) in mergeList.enumerated() {
            if let line = entry as? String {
                merges.append(try TokenizerFiles.mergePair(Substring(line), number: index + 1, source: path))
            } else if let pair = entry as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else {
                throw ModelError("\(path): merge \(index + 1) is neither \"left right\" nor [left, right]")
            }
        }
        var normalizesNFC = false
        if let normalizer = root["normalizer"], !(normalizer is NSNull) {
            guard let object = normalizer as? [String: Any], (object["type"] as? String) == "NFC" else {
                throw ModelError("\(path): normalizer \(describe(normalizer)) is not supported for byte-level BPE")
            }
            normalizesNFC = true
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let affix = model[key] as? String, !affix.isEmpty {
                throw ModelError("\(path): BPE with a \(key) (\(affix.debugDescription)) is not supported")
            }
        }
        if let dropout = model["dropout"], !(dropout is NSNull) {
            throw ModelError("\(path): BPE dropout (random merges) is not supported")
        }
        if model["byte_fallback"] as? Bool == true {
            throw ModelError("\(path): BPE with byte_fallback is not supported (byte-level BPE needs none)")
        }
        let added = try addedTokens(root["added_tokens"], source: path)
        let shape = try preTokenizerShape(root["pre_tokenizer"], source: path)
        func id(_ name: String?) -> Int32? {
            guard let name else { return nil }
            return added.first(where: { $0.content == name })?.id ?? vocabulary[name]
        }
        let endOfText = id("<|endoftext|>")
        return try ByteLevelBPETokenizer(vocabulary: vocabulary, merges: merges, addedTokens: added,
                                         pattern: shape.pattern, splitsDigits: shape.splitsDigits,
                                         addsPrefixSpace: shape.addsPrefixSpace, normalizesNFC: normalizesNFC,
                                         ignoresMergesForKnownWords: model["ignore_merges"] as? Bool ?? false,
                                         bosID: id(bos) ?? endOfText, eosID: id(eos) ?? endOfText, source: path)
    }

    /// The tokenizer a GGUF file describes, from its metadata arrays: `tokenizer.ggml.tokens`,
    /// `tokenizer.ggml.merges`, `tokenizer.ggml.token_type`, the BOS/EOS ids and
    /// `tokenizer.ggml.pre`. This matches what transformers builds from the same file:
    /// control tokens (type 3) are kept whole as special tokens and user-defined ones (type 4) as
    /// added tokens; `pre` picks the split pattern from transformers' table (the Llama-3 and Qwen2
    /// families), and every other name (SmolLM2's "smollm", "gpt2", "default") uses GPT-2's.
    /// Only for `tokenizer.ggml.model` = "gpt2" (byte-level BPE); SentencePiece GGUFs ("llama")
    /// are a different tokenizer. `tokenTypes` follows llama.cpp: 1 normal, 3 control, 4 user-defined.
    /// - Parameters:
    ///   - splitsDigits: nil follows transformers (no digit pre-split). `true` cuts every digit off
    ///     first, as SmolLM2's own tokenizer.json and llama.cpp's "smollm" do; the two differ only
    ///     where spaces run into a digit ("x  1": transformers "Ġ","Ġ","1", SmolLM2 "ĠĠ","1";
    ///     0.7% of the default corpus's fortunes).
    ///   - source: names the file in error messages.
    public init(ggufTokens: [String], merges: [String], tokenTypes: [Int32]?, bosID: Int32?, eosID: Int32?,
                pre: String?, splitsDigits: Bool? = nil, source: String = "GGUF tokenizer") throws {
        guard !ggufTokens.isEmpty else { throw ModelError("\(source): tokenizer.ggml.tokens is empty") }
        if let tokenTypes, tokenTypes.count != ggufTokens.count {
            throw ModelError("\(source): tokenizer.ggml.token_type has \(tokenTypes.count) entries for \(ggufTokens.count) tokens")
        }
        let pattern = try Self.ggufPattern(pre, source: source)
        // GGUF writers sometimes store a token in plain UTF-8 rather than the byte alphabet;
        // re-spell those so the vocabulary is uniform (as transformers does).
        var vocabulary: [String: Int32] = [:]
        vocabulary.reserveCapacity(ggufTokens.count)
        var spelledInAlphabet = [Bool](repeating: true, count: ggufTokens.count)
        for (index, token) in ggufTokens.enumerated() {
            var key = token
            if ByteLevelAlphabet.bytes(ofToken: token) == nil {
                spelledInAlphabet[index] = false
                key = ByteLevelAlphabet.spell(token.utf8)
            }
            vocabulary[key] = Int32(index)
        }
        var added: [AddedToken] = []
        for (index, token) in ggufTokens.enumerated() {
            let type = tokenTypes?[index] ?? 1
            if type == 3 && spelledInAlphabet[index] {
                added.append(AddedToken(content: token, id: Int32(index), isSpecial: true))
            } else if type == 4 && spelledInAlphabet[index] {
                added.append(AddedToken(content: token, id: Int32(index), isSpecial: false))
            }
        }
        if let endOfText = vocabulary["<|endoftext|>"], !added.contains(where: { $0.id == endOfText }) {
            added.append(AddedToken(content: "<|endoftext|>", id: endOfText))
        }
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(merges.count)
        for (index, line) in merges.enumerated() {
            pairs.append(try TokenizerFiles.mergePair(Substring(line), number: index + 1, source: source))
        }
        try self.init(vocabulary: vocabulary, merges: pairs, addedTokens: added, pattern: pattern,
                      splitsDigits: splitsDigits ?? false, bosID: bosID, eosID: eosID, source: source)
    }

    /// transformers' table of `tokenizer.ggml.pre` names with their own split pattern.
    static func ggufPattern(_ pre: String?, source: String) throws -> ByteLevelSplitPattern {
        switch pre ?? "" {
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
             "jina-v5-nano", "dbrx", "smaug-bpe":
            return .llama3(maxDigits: 3)
        case "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez":
            return .llama3(maxDigits: 1)
        case "tekken", "qwen35", "gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2":
            throw ModelError("\(source): pre-tokenizer \(pre!.debugDescription) is not supported yet")
        default:
            return .gpt2
        }
    }

    // MARK: tokenizer.json pieces

    private static func idMap(_ object: [String: Any], source: String) throws -> [String: Int32] {
        var out: [String: Int32] = [:]
        out.reserveCapacity(object.count)
        for (token, value) in object {
            guard let number = value as? NSNumber, let id = Int32(exactly: number.doubleValue), id >= 0 else {
                throw ModelError("\(source): token \(token.debugDescription) has id \(describe(value)), not a non-negative integer")
            }
            out[token] = id
        }
        return out
    }

    static func addedTokens(_ value: Any?, source: String) throws -> [AddedToken] {
        guard let value, !(value is NSNull) else { return [] }
        guard let list = value as? [[String: Any]] else { throw ModelError("\(source): added_tokens is not a list of objects") }
        return try list.enumerated().map { index, entry in
            guard let content = entry["content"] as? String, let number = entry["id"] as? NSNumber,
                  let id = Int32(exactly: number.doubleValue) else {
                throw ModelError("\(source): added_tokens[\(index)] lacks a string content or an integer id")
            }
            return AddedToken(content: content, id: id, isSpecial: entry["special"] as? Bool ?? false,
                              stripLeft: entry["lstrip"] as? Bool ?? false, stripRight: entry["rstrip"] as? Bool ?? false)
        }
    }

    private struct PreTokenizerShape {
        var pattern: ByteLevelSplitPattern = .none
        var splitsDigits = false
        var addsPrefixSpace = false
    }

    private static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    private static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    private static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    private static func preTokenizerShape(_ value: Any?, source: String) throws -> PreTokenizerShape {
        guard let object = value as? [String: Any] else {
            throw ModelError("\(source): pre_tokenizer is missing; byte-level BPE needs a ByteLevel pre-tokenizer")
        }
        let steps = (object["type"] as? String) == "Sequence" ? (object["pretokenizers"] as? [[String: Any]] ?? []) : [object]
        var shape = PreTokenizerShape()
        var sawByteLevel = false
        for step in steps {
            switch step["type"] as? String {
            case "ByteLevel":
                sawByteLevel = true
                shape.addsPrefixSpace = step["add_prefix_space"] as? Bool ?? false
                if step["use_regex"] as? Bool ?? true {
                    guard shape.pattern == .none else { throw unsupported(step, source) }
                    shape.pattern = .gpt2
                }
            case "Digits" where step["individual_digits"] as? Bool == true && !sawByteLevel && shape.pattern == .none:
                shape.splitsDigits = true
            case "Split":
                guard !sawByteLevel, shape.pattern == .none,
                      (step["behavior"] as? String) == "Isolated", (step["invert"] as? Bool ?? false) == false,
                      let regex = (step["pattern"] as? [String: Any])?["Regex"] as? String else {
                    throw unsupported(step, source)
                }
                switch regex {
                case llama3Regex: shape.pattern = .llama3(maxDigits: 3)
                case qwen2Regex: shape.pattern = .llama3(maxDigits: 1)
                case gpt2Regex: shape.pattern = .gpt2
                default: throw ModelError("\(source): split pattern \(regex.debugDescription) is not one qkdb knows (GPT-2, Llama-3, Qwen2)")
                }
            default:
                throw unsupported(step, source)
            }
        }
        guard sawByteLevel else { throw ModelError("\(source): pre_tokenizer has no ByteLevel step; only byte-level BPE is supported") }
        return shape
    }

    private static func unsupported(_ step: [String: Any], _ source: String) -> ModelError {
        ModelError("\(source): pre-tokenizer step \(describe(step)) is not supported")
    }

    static func describe(_ value: Any) -> String {
        if let text = value as? String { return text.debugDescription }
        guard JSONSerialization.isValidJSONObject(value),
              let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]),
              let text = String(data: data, encoding: .utf8) else { return String(describing: value) }
        return text.count > 120 ? String(text.prefix(117)) + "..." : text
    }
}
