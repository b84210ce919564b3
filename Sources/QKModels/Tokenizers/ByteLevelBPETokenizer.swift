import Foundation

/// Byte-level BPE (GPT-2, Llama-3, SmolLM2, Qwen2, …), token for token identical to Hugging
/// Face's on the same files.
///
/// Encoding runs in four stages: added tokens are cut out of the raw text whole; the rest is split
/// into words by the family's pattern (`ByteLevelSplitPattern`); each word's UTF-8 bytes become one
/// symbol each; and the merges fuse symbols by rank. Words repeat, so their ids are cached.
/// Because every byte has a symbol, no text is ever unknown, and decoding is exact.
public struct ByteLevelBPETokenizer: Tokenizer {
    /// Token strings as the vocabulary spells them (byte alphabet; added tokens as their text).
    public let tokens: [String]
    /// The bytes each id decodes to.
    private let bytesOfID: [[UInt8]]
    /// The id of each single byte, -1 where the vocabulary lacks it (the byte is then dropped, as
    /// Hugging Face drops it when the model has no unknown token).
    private let idOfByte: [Int32]
    private let merges: BytePairMerges
    private let added: AddedTokenMatcher
    private let addedIDs: Set<Int32>
    public let pattern: ByteLevelSplitPattern
    /// Whether digits are first cut off one by one (Hugging Face's `Digits(individual_digits)`).
    public let splitsDigits: Bool
    /// Whether a space is put before text that does not start with one (RoBERTa-style).
    public let addsPrefixSpace: Bool
    /// Whether text (outside added tokens) is put in Unicode NFC first (Qwen2's normalizer).
    public let normalizesNFC: Bool
    /// Llama-3's `ignore_merges`: a word that is itself in the vocabulary is one token, merges or not.
    public let ignoresMergesForKnownWords: Bool
    /// Token ids by their byte string, kept only for `ignoresMergesForKnownWords`.
    private let idOfBytes: [[UInt8]: Int32]
    public let bosID: Int32?
    public let eosID: Int32?
    private let cache = TokenCache<[UInt8]>()

    public var vocabSize: Int { tokens.count }

    /// The general initialiser: vocabulary, merges in rank order (each a pair of vocabulary
    /// strings), and added tokens.
    /// - Parameter source: names the files in error messages.
    public init(vocabulary: [String: Int32], merges: [(String, String)], addedTokens: [AddedToken] = [],
                pattern: ByteLevelSplitPattern = .gpt2, splitsDigits: Bool = false, addsPrefixSpace: Bool = false,
                normalizesNFC: Bool = false, ignoresMergesForKnownWords: Bool = false, bosID: Int32? = nil, eosID: Int32? = nil, source: String) throws {
        var size = 0
        for (token, id) in vocabulary {
            guard id >= 0 else { throw ModelError("\(source): token \(token.debugDescription) has negative id \(id)") }
            size = max(size, Int(id) + 1)
        }
        for t in addedTokens {
            guard t.id >= 0 else { throw ModelError("\(source): added token \(t.content.debugDescription) has negative id \(t.id)") }
            size = max(size, Int(t.id) + 1)
        }
        guard size > 0 else { throw ModelError("\(source): the vocabulary is empty") }
        guard size <= 10_000_000 else { throw ModelError("\(source): token id \(size - 1) is implausibly large") }

        var tokens = [String](repeating: "", count: size)
        for (token, id) in vocabulary { tokens[Int(id)] = token }
        for t in addedTokens { tokens[Int(t.id)] = t.content }
        // Decoding follows Hugging Face's ByteLevel decoder: a token spelled in the byte alphabet
        // decodes to the bytes it spells, any other token (e.g. "<|im_start|>" written with
        // characters outside the alphabet) to its own UTF-8.
        self.bytesOfID = tokens.map { ByteLevelAlphabet.bytes(ofToken: $0) ?? Array($0.utf8) }
        self.tokens = tokens

        var idOfByte = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            if let id = vocabulary[String(ByteLevelAlphabet.scalarOfByte[b])] { idOfByte[b] = id }
        }
        self.idOfByte = idOfByte

        var table = BytePairMerges()
        for (rank, pair) in merges.enumerated() {
            guard let left = vocabulary[pair.0], let right = vocabulary[pair.1] else {
                throw ModelError("\(source): merge \(rank + 1) \"\(pair.0) \(pair.1)\" uses a token not in the vocabulary")
            }
            guard let merged = vocabulary[pair.0 + pair.1] else {
                throw ModelError("\(source): merge \(rank + 1) \"\(pair.0) \(pair.1)\" makes a token not in the vocabulary")
            }
            table.add(left: left, right: right, merged: merged, rank: rank)
        }
        self.merges = table
        self.added = AddedTokenMatcher(addedTokens)
        self.addedIDs = Set(addedTokens.map(\.id))
        self.pattern = pattern
        self.splitsDigits = splitsDigits
        self.addsPrefixSpace = addsPrefixSpace
        self.normalizesNFC = normalizesNFC
        self.ignoresMergesForKnownWords = ignoresMergesForKnownWords
        var idOfBytes: [[UInt8]: Int32] = [:]
        if ignoresMergesForKnownWords {
            for (token, id) in vocabulary { if let bytes = ByteLevelAlphabet.bytes(ofToken: token) { idOfBytes[bytes] = id } }
        }
        self.idOfBytes = idOfBytes
        for (name, id) in [("BOS", bosID), ("EOS", eosID)] {
            if let id, id < 0 || Int(id) >= size {
                throw ModelError("\(source): \(name) id \(id) is outside the vocabulary of \(size) tokens")
            }
        }
        self.bosID = bosID
        self.eosID = eosID
    }

    // MARK: encoding

    public func encode(_ text: String) -> [Int32] {
        let scalars = Array(text.unicodeScalars)
        var ids: [Int32] = []
        ids.reserveCapacity(scalars.count / 3 + 1)
        var utf8: [UInt8] = []
        var words: [Range<Int>] = []
        for piece in added.pieces(scalars) {
            switch piece {
            case .token(let id):
                ids.append(id)
            case .text(let range):
                var segment = scalars[range]
                if normalizesNFC && segment.contains(where: { $0.value >= 0x300 }) {
                    var view = String.UnicodeScalarView()
                    view.append(contentsOf: segment)
                    segment = ArraySlice(String(view).precomposedStringWithCanonicalMapping.unicodeScalars)
                }
                // Hugging Face's pre-tokenizers act on each piece left by the previous step: the
                // prefix space goes before every digit piece too, when both are on.
                for part in digitPieces(segment) {
                    var piece = segment[part]
                    if addsPrefixSpace && piece.first != " " { piece = [" "] + piece }
                    let classified = ClassifiedText(piece)
                    words.removeAll(keepingCapacity: true)
                    pattern.split(classified, 0..<classified.scalars.count, into: &words)
                    for word in words {
                        utf8.removeAll(keepingCapacity: true)
                        for s in classified.scalars[word] { utf8.append(contentsOf: UTF8.encode(s)!) }
                        ids.append(contentsOf: encodeWord(utf8))
                    }
                }
            }
        }
        return ids
    }

    /// The ranges (indices of `segment`) split separately: the whole segment, or with
    /// `splitsDigits` every digit on its own and the runs between them (Rust's `char::is_numeric`).
    private func digitPieces(_ segment: ArraySlice<Unicode.Scalar>) -> [Range<Int>] {
        guard splitsDigits else { return [segment.startIndex..<segment.endIndex] }
        var out: [Range<Int>] = []
        var start = segment.startIndex
        for i in segment.indices where Self.isNumeric(segment[i]) {
            if start < i { out.append(start..<i) }
            out.append(i..<(i + 1))
            start = i + 1
        }
        if start < segment.endIndex { out.append(start..<segment.endIndex) }
        return out
    }

    private static func isNumeric(_ s: Unicode.Scalar) -> Bool {
        if s.value < 128 { return s.value >= 48 && s.value <= 57 }
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    private func encodeWord(_ utf8: [UInt8]) -> [Int32] {
        if let hit = cache.ids(for: utf8) { return hit }
        if ignoresMergesForKnownWords, let id = idOfBytes[utf8] { return [id] }
        var symbols: [Int32] = []
        symbols.reserveCapacity(utf8.count)
        for b in utf8 where idOfByte[Int(b)] >= 0 { symbols.append(idOfByte[Int(b)]) }
        merges.apply(&symbols)
        cache.store(symbols, for: utf8)
        return symbols
    }

    // MARK: decoding

    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && Int(id) < bytesOfID.count { bytes.append(contentsOf: bytesOfID[Int(id)]) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The token as text: its bytes decoded as UTF-8, with any bytes that are not valid UTF-8 on
    /// their own (half a multi-byte character) shown as `\xNN`.
    public func tokenString(_ id: Int32) -> String {
        guard id >= 0 && Int(id) < bytesOfID.count else { return "<invalid token \(id)>" }
        return Self.readable(bytesOfID[Int(id)])
    }

    /// Whether `id` is an added (special or user-defined) token.
    public func isAddedToken(_ id: Int32) -> Bool { addedIDs.contains(id) }

    static func readable(_ bytes: [UInt8]) -> String {
        var out = ""
        var i = 0
        while i < bytes.count {
            let lead = bytes[i]
            let length: Int
            switch lead {
            case 0x00...0x7F: length = 1
            case 0xC2...0xDF: length = 2
            case 0xE0...0xEF: length = 3
            case 0xF0...0xF4: length = 4
            default: length = 0
            }
            if length > 0 && i + length <= bytes.count {
                let slice = bytes[i..<(i + length)]
                let text = String(decoding: slice, as: UTF8.self)
                if text.utf8.elementsEqual(slice) {
                    out += text
                    i += length
                    continue
                }
            }
            out += "\\x" + String(lead, radix: 16, uppercase: true).leftPadded(to: 2)
            i += 1
        }
        return out
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
