/// The character classes the tokenisers need, decided per Unicode scalar.
///
/// Hugging Face's pre-tokenisers are regular expressions (`\p{L}`, `\p{N}`, `\s`) and its BERT
/// normaliser asks Rust's `char` for categories; both reduce to the Unicode general category or the
/// White_Space property, which Swift's standard library answers without ICU. ASCII, which is most
/// of any English corpus, is answered from a 128-entry table so the hot loops never touch the
/// property lookup for it.
///
/// Hugging Face's tables are older than Swift's, and a character unassigned in theirs behaves as
/// an unassigned code point (Cn), so the Unicode version matters for exact agreement: the regex
/// engine (Oniguruma) knows Unicode 16.0, the category tables behind BERT's normaliser and
/// pre-tokeniser (Rust's `unicode_categories`) Unicode 8.0. Newer characters are classed here as
/// unassigned too (measured over every code point against tokenizers 0.23).
enum UnicodeClass {
    /// Whether `s` was assigned by Unicode `major.minor`.
    @inline(__always)
    static func isAssigned(_ s: Unicode.Scalar, by major: Int, _ minor: Int) -> Bool {
        guard let age = s.properties.age else { return false }
        return age.major < major || (age.major == major && age.minor <= minor)
    }

    /// What the byte-level split patterns distinguish: `\p{L}`, `\p{N}`, `\s`, and everything else.
    enum Kind: UInt8 {
        case other = 0, letter = 1, number = 2, space = 3
    }

    private static let asciiKinds: [Kind] = (0..<128).map { value in
        let s = Unicode.Scalar(UInt8(value))
        switch s {
        case "a"..."z", "A"..."Z": return .letter
        case "0"..."9": return .number
        case "\t", "\n", "\u{0B}", "\u{0C}", "\r", " ": return .space
        default: return .other
        }
    }

    @inline(__always)
    static func kind(_ s: Unicode.Scalar) -> Kind {
        if s.value < 128 { return asciiKinds[Int(s.value)] }
        if s.properties.isWhitespace { return .space }
        guard isAssigned(s, by: 16, 0) else { return .other }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    /// Unicode White_Space (what Rust's `char::is_whitespace` and the regexes' `\s` test).
    @inline(__always)
    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        if s.value < 128 { return asciiKinds[Int(s.value)] == .space }
        return s.properties.isWhitespace
    }

    @inline(__always)
    static func isNumber(_ s: Unicode.Scalar) -> Bool { kind(s) == .number }

    /// BERT's punctuation: every ASCII symbol that is not a letter, digit or space (so `$`, `+`,
    /// `^`, `` ` `` count, though Unicode files them as symbols), plus the Unicode P* categories.
    static func isBertPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 128 { return (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) }
        guard isAssigned(s, by: 8, 0) else { return false }
        if unicode8Punctuation.contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }

    /// Characters BERT's text cleaning deletes: NUL, U+FFFD, and control, format, private-use and
    /// surrogate code points (Cc, Cf, Co, Cs) other than tab, newline and carriage return, which
    /// become spaces instead. Unassigned code points (Cn) are kept, as Hugging Face keeps them.
    static func isBertRemoved(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 128 { return v == 0 || (v < 32 && v != 9 && v != 10 && v != 13) || v == 127 }
        if v == 0xFFFD { return true }
        guard isAssigned(s, by: 8, 0) else { return false }
        switch s.properties.generalCategory {
        case .control, .format, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// The CJK ideograph blocks BERT surrounds with spaces so each ideograph becomes its own word.
    static func isCJKIdeograph(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    /// Combining marks that take no space (Mn): what accent stripping drops after NFD.
    static func isNonspacingMark(_ s: Unicode.Scalar) -> Bool {
        guard s.value >= 0x300 else { return false }
        if unicode8NonspacingMarks.contains(s.value) { return true }
        if notUnicode8NonspacingMarks.contains(s.value) { return false }
        return s.properties.generalCategory == .nonspacingMark && isAssigned(s, by: 8, 0)
    }

    // Characters whose category has changed since Unicode 8.0, as the BERT tables still see them.
    /// Punctuation (Po) in 8.0, symbols or marks now: CANADIAN SYLLABICS CHI SIGN, SHARADA SANDHI MARK.
    private static let unicode8Punctuation: Set<UInt32> = [0x166D, 0x111C9]
    /// Nonspacing marks in 8.0, spacing now: HANUNOO SIGN PAMUDPOD, AHOM VOWEL SIGN AW.
    private static let unicode8NonspacingMarks: Set<UInt32> = [0x1734, 0x1171E]
    /// Nonspacing marks now but not in 8.0: two MONGOLIAN BALUDA letters, JAVANESE DIRGA MURE,
    /// SHARADA SANDHI MARK.
    private static let notUnicode8NonspacingMarks: Set<UInt32> = [0x1885, 0x1886, 0xA9BD, 0x111C9]
}
