import Foundation

/// BERT's text normalisation and word splitting, as Hugging Face's `BertNormalizer` followed by
/// `BertPreTokenizer`:
///
/// 1. cleaning: NUL, U+FFFD and control/format characters are deleted, any whitespace becomes a space;
/// 2. every CJK ideograph is surrounded by spaces (Chinese has no spaces, so each character is a word);
/// 3. accents are stripped: canonical decomposition (NFD), then nonspacing marks (Mn) dropped —
///    "café" → "cafe", "Å" → "A";
/// 4. lower-casing, one scalar at a time (Unicode's full mapping, so "İ" keeps its dot as a mark);
/// 5. words are split at whitespace (dropped) and around every punctuation character (kept alone).
struct BertNormalizer: Sendable {
    var lowercases = true
    var stripsAccents = true
    var splitsCJK = true

    /// The words of `text` after normalisation, each as its scalars.
    func words(_ text: ArraySlice<Unicode.Scalar>) -> [[Unicode.Scalar]] {
        var cleaned: [Unicode.Scalar] = []
        cleaned.reserveCapacity(text.count)
        var isASCII = true
        for s in text {
            if UnicodeClass.isBertRemoved(s) { continue }
            if UnicodeClass.isWhitespace(s) { cleaned.append(" "); continue }
            if s.value >= 128 { isASCII = false }
            if splitsCJK && UnicodeClass.isCJKIdeograph(s) {
                cleaned.append(" "); cleaned.append(s); cleaned.append(" ")
            } else {
                cleaned.append(s)
            }
        }
        if stripsAccents && !isASCII {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: cleaned)
            let decomposed = String(view).decomposedStringWithCanonicalMapping
            cleaned = decomposed.unicodeScalars.filter { !UnicodeClass.isNonspacingMark($0) }
        }
        if lowercases {
            var lowered: [Unicode.Scalar] = []
            lowered.reserveCapacity(cleaned.count)
            for s in cleaned {
                if s.value < 128 {
                    lowered.append(s.value >= 65 && s.value <= 90 ? Unicode.Scalar(UInt8(s.value + 32)) : s)
                } else {
                    lowered.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
                }
            }
            cleaned = lowered
        }
        var words: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        for s in cleaned {
            if UnicodeClass.isWhitespace(s) {
                if !current.isEmpty { words.append(current); current.removeAll(keepingCapacity: true) }
            } else if UnicodeClass.isBertPunctuation(s) {
                if !current.isEmpty { words.append(current); current.removeAll(keepingCapacity: true) }
                words.append([s])
            } else {
                current.append(s)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }
}
