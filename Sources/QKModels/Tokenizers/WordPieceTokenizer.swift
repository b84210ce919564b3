import Foundation

/// BERT's WordPiece tokenizer (`vocab.txt`), identical to Hugging Face's BertTokenizerFast.
///
/// After `BertNormalizer` has cut the text into words, each word is covered greedily from the
/// left by the longest vocabulary entry that fits; pieces after the first are looked up with the
/// `##` prefix that marks a word continuation ("tokenizer" → "token", "##izer"). A word that cannot
/// be covered, or is longer than 100 characters, becomes a single `[UNK]`. The special tokens
/// ([CLS], [SEP], [MASK], …) are kept whole where they appear in text, as written.
public struct WordPieceTokenizer: Tokenizer {
    /// Vocabulary entries by id.
    public let tokens: [String]
    private let idOf: [String: Int32]
    private let normalizer: BertNormalizer
    private let special: AddedTokenMatcher
    public let unknownID: Int32
    public let bosID: Int32?
    public let eosID: Int32?
    /// Longer words are `[UNK]` outright (BERT's default, 100 characters).
    public let maxWordLength: Int
    private static let continuation = "##"
    private let cache = TokenCache<[Unicode.Scalar]>()

    public var vocabSize: Int { tokens.count }

    /// - Parameters:
    ///   - tokens: the vocabulary in id order (the lines of vocab.txt).
    ///   - lowercases: BERT "uncased" models lower-case; `stripsAccents` defaults to the same.
    ///   - source: names the file in error messages.
    ///   - specialTokens: tokens kept whole in text; nil means those of [PAD] [UNK] [CLS] [SEP] [MASK]
    ///     that the vocabulary has (what BertTokenizerFast adds for a bare vocab.txt).
    public init(tokens: [String], lowercases: Bool = true, stripsAccents: Bool? = nil, splitsCJK: Bool = true,
                maxWordLength: Int = 100, specialTokens: [AddedToken]? = nil, source: String) throws {
        guard !tokens.isEmpty else { throw ModelError("\(source): the vocabulary is empty") }
        var idOf: [String: Int32] = [:]
        idOf.reserveCapacity(tokens.count)
        for (index, token) in tokens.enumerated() { idOf[token] = Int32(index) }
        guard let unknown = idOf["[UNK]"] else { throw ModelError("\(source): the vocabulary has no [UNK] token") }
        self.tokens = tokens
        self.idOf = idOf
        self.unknownID = unknown
        self.bosID = idOf["[CLS]"]
        self.eosID = idOf["[SEP]"]
        self.maxWordLength = maxWordLength
        self.normalizer = BertNormalizer(lowercases: lowercases, stripsAccents: stripsAccents ?? lowercases, splitsCJK: splitsCJK)
        self.special = AddedTokenMatcher(specialTokens ?? ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].compactMap { name in
            idOf[name].map { AddedToken(content: name, id: $0) }
        })
    }

    /// Reads `vocab.txt`: one token per line, the line number (from 0) is the id.
    public static func load(vocabTXT path: String, lowercases: Bool = true, stripsAccents: Bool? = nil,
                            splitsCJK: Bool = true) throws -> WordPieceTokenizer {
        let text = try TokenizerFiles.text(path, what: "BERT WordPiece vocabulary")
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            String(line.hasSuffix("\r") ? line.dropLast() : line)
        }
        if lines.last == "" { lines.removeLast() }
        return try WordPieceTokenizer(tokens: lines, lowercases: lowercases, stripsAccents: stripsAccents,
                                      splitsCJK: splitsCJK, source: path)
    }

    public func encode(_ text: String) -> [Int32] {
        let scalars = Array(text.unicodeScalars)
        var ids: [Int32] = []
        ids.reserveCapacity(scalars.count / 4 + 1)
        for piece in special.pieces(scalars) {
            switch piece {
            case .token(let id): ids.append(id)
            case .text(let range):
                for word in normalizer.words(scalars[range]) { ids.append(contentsOf: encodeWord(word)) }
            }
        }
        return ids
    }

    private func encodeWord(_ word: [Unicode.Scalar]) -> [Int32] {
        if word.count > maxWordLength { return [unknownID] }
        if let hit = cache.ids(for: word) { return hit }
        var pieces: [Int32] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int32?
            while start < end {
                var view = String.UnicodeScalarView()
                if start > 0 { view.append(contentsOf: Self.continuation.unicodeScalars) }
                view.append(contentsOf: word[start..<end])
                if let id = idOf[String(view)] { found = id; break }
                end -= 1
            }
            guard let id = found else {
                pieces = [unknownID]
                break
            }
            pieces.append(id)
            start = end
        }
        cache.store(pieces, for: word)
        return pieces
    }

    public func tokenString(_ id: Int32) -> String {
        guard id >= 0 && Int(id) < tokens.count else { return "<invalid token \(id)>" }
        return tokens[Int(id)]
    }

    /// Joins pieces as Hugging Face's WordPiece decoder does: `##` pieces glue to the previous
    /// one, others get a space, and a space before . ? ! , and a few English clitics is removed.
    public func decode(_ ids: [Int32]) -> String {
        var out = ""
        var first = true
        for id in ids where id >= 0 && Int(id) < tokens.count {
            var token = tokens[Int(id)]
            if !first {
                if token.hasPrefix(Self.continuation) {
                    token.removeFirst(Self.continuation.count)
                } else {
                    token = " " + token
                }
            }
            first = false
            out += Self.cleanUp(token)
        }
        return out
    }

    private static let cleanUps: [(String, String)] = [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
        (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ]

    private static func cleanUp(_ token: String) -> String {
        guard token.hasPrefix(" ") else { return token }
        var t = token
        for (from, to) in cleanUps where t.contains(from) { t = t.replacingOccurrences(of: from, with: to) }
        return t
    }
}
