/// A token the tokenizer keeps whole wherever its text appears (`<|endoftext|>`, `<|im_start|>`,
/// `[MASK]`, …), matched on the raw text before any normalising or splitting, as Hugging Face
/// does for added tokens.
public struct AddedToken: Sendable, Equatable {
    public var content: String
    public var id: Int32
    /// Special tokens are the control tokens (BOS, EOS, chat markers); the rest are plain added words.
    public var isSpecial: Bool
    /// Whether whitespace on the left / right of a match is swallowed into it.
    public var stripLeft: Bool
    public var stripRight: Bool

    public init(content: String, id: Int32, isSpecial: Bool = true, stripLeft: Bool = false, stripRight: Bool = false) {
        self.content = content; self.id = id; self.isSpecial = isSpecial
        self.stripLeft = stripLeft; self.stripRight = stripRight
    }
}

/// Cuts text into runs of ordinary text and whole added tokens. Matches are leftmost, and the
/// longest token wins among those starting at the same place.
struct AddedTokenMatcher: Sendable {
    enum Piece: Equatable {
        case text(Range<Int>)
        case token(Int32)
    }

    private struct Candidate: Sendable {
        var scalars: [Unicode.Scalar]
        var token: AddedToken
    }

    /// Candidates by first scalar, longest first.
    private var byFirst: [Unicode.Scalar: [Candidate]] = [:]

    var isEmpty: Bool { byFirst.isEmpty }

    init(_ tokens: [AddedToken]) {
        for t in tokens {
            let scalars = Array(t.content.unicodeScalars)
            guard let first = scalars.first else { continue }
            byFirst[first, default: []].append(Candidate(scalars: scalars, token: t))
        }
        for key in byFirst.keys { byFirst[key]!.sort { $0.scalars.count > $1.scalars.count } }
    }

    /// The pieces of `text`, in order. Text pieces may be empty only if the text is.
    func pieces(_ text: [Unicode.Scalar]) -> [Piece] {
        guard !byFirst.isEmpty else { return text.isEmpty ? [] : [.text(0..<text.count)] }
        var out: [Piece] = []
        var textStart = 0
        var i = 0
        let n = text.count
        while i < n {
            guard let candidates = byFirst[text[i]],
                  let hit = candidates.first(where: { Self.matches($0.scalars, text, at: i) }) else {
                i += 1
                continue
            }
            var textEnd = i
            if hit.token.stripLeft {
                while textEnd > textStart && UnicodeClass.isWhitespace(text[textEnd - 1]) { textEnd -= 1 }
            }
            if textEnd > textStart { out.append(.text(textStart..<textEnd)) }
            out.append(.token(hit.token.id))
            i += hit.scalars.count
            if hit.token.stripRight {
                while i < n && UnicodeClass.isWhitespace(text[i]) { i += 1 }
            }
            textStart = i
        }
        if textStart < n { out.append(.text(textStart..<n)) }
        return out
    }

    private static func matches(_ needle: [Unicode.Scalar], _ text: [Unicode.Scalar], at i: Int) -> Bool {
        guard i + needle.count <= text.count else { return false }
        for (k, s) in needle.enumerated() where text[i + k] != s { return false }
        return true
    }
}
