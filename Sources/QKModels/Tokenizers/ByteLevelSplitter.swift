/// How a byte-level BPE tokenizer cuts text into words before merging: hand-written matchers
/// for the regular expressions the model families use (a regex engine would be the slowest part
/// of tokenising; these run in one pass over precomputed character classes).
///
/// Each matcher reproduces leftmost-first alternation exactly: at a position the alternatives are
/// tried in the pattern's order and the first that matches decides the word. Every character falls
/// in some alternative, so the words tile the text with no gaps.
public enum ByteLevelSplitPattern: Sendable, Equatable {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    /// (also what Hugging Face uses for GGUF files whose `tokenizer.ggml.pre` it does not list,
    /// SmolLM2's "smollm" among them).
    case gpt2
    /// Llama-3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`. Qwen2 is the same with `\p{N}` for
    /// `\p{N}{1,3}` (`maxDigits` 1).
    case llama3(maxDigits: Int)
    /// No splitting: the whole text (between special tokens) is one word.
    case none
}

/// The text being split: its scalars and their classes, side by side.
struct ClassifiedText {
    var scalars: [Unicode.Scalar]
    var kinds: [UnicodeClass.Kind]

    init(_ scalars: ArraySlice<Unicode.Scalar>) {
        self.scalars = Array(scalars)
        self.kinds = scalars.map(UnicodeClass.kind)
    }
}

extension ByteLevelSplitPattern {
    /// Appends the word boundaries of `text[range]` to `words`.
    func split(_ text: ClassifiedText, _ range: Range<Int>, into words: inout [Range<Int>]) {
        if case .none = self {
            if !range.isEmpty { words.append(range) }
            return
        }
        text.scalars.withUnsafeBufferPointer { s in
            text.kinds.withUnsafeBufferPointer { k in
                var i = range.lowerBound
                let end = range.upperBound
                while i < end {
                    let next: Int
                    switch self {
                    case .gpt2: next = Self.gpt2Word(s, k, i, end)
                    case .llama3(let maxDigits): next = Self.llama3Word(s, k, i, end, maxDigits)
                    case .none: next = end
                    }
                    words.append(i..<next)
                    i = next
                }
            }
        }
    }

    private typealias Scalars = UnsafeBufferPointer<Unicode.Scalar>
    private typealias Kinds = UnsafeBufferPointer<UnicodeClass.Kind>

    @inline(__always)
    private static func isLineBreak(_ s: Unicode.Scalar) -> Bool { s == "\n" || s == "\r" }

    /// Length of the contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `i`, or 0.
    /// `ignoreCase` follows the `(?i:…)` form, under which `ſ` (long s) folds to `s`.
    @inline(__always)
    private static func contraction(_ s: Scalars, _ i: Int, _ end: Int, ignoreCase: Bool) -> Int {
        guard s[i] == "'", i + 1 < end else { return 0 }
        func folded(_ c: Unicode.Scalar) -> UInt32 {
            guard ignoreCase else { return c.value }
            if c.value >= 65 && c.value <= 90 { return c.value + 32 }
            if c.value == 0x17F { return 115 }
            return c.value
        }
        let c1 = folded(s[i + 1])
        switch c1 {
        case 115, 116, 109, 100: return 2                     // s t m d
        case 114, 118, 108:                                   // r v l
            guard i + 2 < end else { return 0 }
            let c2 = folded(s[i + 2])
            if (c1 == 114 || c1 == 118) && c2 == 101 { return 3 }  // re ve
            if c1 == 108 && c2 == 108 { return 3 }                  // ll
            return 0
        default: return 0
        }
    }

    /// The end of `\s+(?!\S)|\s+` from `i` (which is whitespace): the whole run if it reaches the
    /// end of the text, else all but its last character (which then prefixes the next word), or
    /// the single character when the run is one long.
    @inline(__always)
    private static func spaceRun(_ k: Kinds, _ i: Int, _ end: Int) -> Int {
        var j = i
        while j < end && k[j] == .space { j += 1 }
        if j == end || j - i == 1 { return j }
        return j - 1
    }

    /// One alternative of the form ` ?X+` where X is a class: the end, or nil if it does not match.
    @inline(__always)
    private static func optionalSpaceThenRun(_ s: Scalars, _ k: Kinds, _ i: Int, _ end: Int,
                                             _ kind: UnicodeClass.Kind) -> Int? {
        var j = i
        if s[j] == " " && j + 1 < end && k[j + 1] == kind { j += 1 }
        guard k[j] == kind else { return nil }
        while j < end && k[j] == kind { j += 1 }
        return j
    }

    private static func gpt2Word(_ s: Scalars, _ k: Kinds, _ i: Int, _ end: Int) -> Int {
        let c = contraction(s, i, end, ignoreCase: false)
        if c > 0 { return i + c }
        if let j = optionalSpaceThenRun(s, k, i, end, .letter) { return j }
        if let j = optionalSpaceThenRun(s, k, i, end, .number) { return j }
        if let j = optionalSpaceThenRun(s, k, i, end, .other) { return j }
        return spaceRun(k, i, end)
    }

    private static func llama3Word(_ s: Scalars, _ k: Kinds, _ i: Int, _ end: Int, _ maxDigits: Int) -> Int {
        let c = contraction(s, i, end, ignoreCase: true)
        if c > 0 { return i + c }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        var start = -1
        if k[i] == .letter {
            start = i
        } else if k[i] != .number && !isLineBreak(s[i]) && i + 1 < end && k[i + 1] == .letter {
            start = i + 1
        }
        if start >= 0 {
            var j = start
            while j < end && k[j] == .letter { j += 1 }
            return j
        }
        // \p{N}{1,maxDigits}
        if k[i] == .number {
            var j = i
            while j < end && k[j] == .number && j - i < maxDigits { j += 1 }
            return j
        }
        // ?[^\s\p{L}\p{N}]+[\r\n]*
        if var j = optionalSpaceThenRun(s, k, i, end, .other) {
            while j < end && isLineBreak(s[j]) { j += 1 }
            return j
        }
        // \s*[\r\n]+ : through the last line break of the whitespace run
        var j = i
        var afterLastBreak = -1
        while j < end && k[j] == .space {
            if isLineBreak(s[j]) { afterLastBreak = j + 1 }
            j += 1
        }
        if afterLastBreak > 0 { return afterLastBreak }
        return spaceRun(k, i, end)
    }
}
