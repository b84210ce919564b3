import Foundation
import QKStore

/// Finding features by what they fire on: `qkdb features --token T` (every held-out occurrence of
/// a token, from recomputed codes) and `--text S` (the stored max-activating examples whose text
/// contains S; no model needed).
public enum FeatureSearch {
    /// Vocabulary ids whose text is `token` as a person types it: case-sensitive, a leading space
    /// or piece marker ignored (`TokenText.normalised`), so "the" finds "the" and " the", not "The".
    public static func tokenIDs(_ token: String, vocabulary: [Int: String]) -> Set<Int32> {
        let want = TokenText.normalised(token, caseSensitive: true)
        return Set(vocabulary.compactMap { TokenText.normalised($0.value, caseSensitive: true) == want ? Int32($0.key) : nil })
    }

    /// Features of `sides` that fire on the token's held-out occurrences, best first (by mean
    /// activation over the occurrences; the two sides' scales differ, so each side is ranked on its
    /// own and the sides follow each other, query first).
    public static func byToken(_ ids: Set<Int32>, explored: ExploredRun, store: Store, sides: [FeatureSide]) throws -> [(side: FeatureSide, hit: TokenFiring)] {
        let sequences = try explored.heldOutSequences(store: store)
        let codes = try explored.codes(of: sequences)
        var out: [(FeatureSide, TokenFiring)] = []
        for side in sides {
            let table = FeatureTokens(codes: side == .query ? codes.query : codes.key, tokens: sequences,
                                      width: side == .query ? explored.info.spec.dQuery : explored.info.spec.dKey)
            out += table.firing(on: ids).map { (side, $0) }
        }
        return out
    }

    public struct TextMatch: Sendable {
        public var side: FeatureSide
        public var feature: Int
        /// Stored examples whose window contains the text.
        public var examples: Int
        /// The strongest of those examples' activations.
        public var maxActivation: Float
        /// That example's window, firing token marked «so».
        public var example: String
    }

    /// Features whose stored max-activating examples contain `text` (case-insensitive) within
    /// `window` tokens of the firing token, ranked by how many examples match, then by activation.
    public static func byText(_ text: String, store: Store, run: Int64, sides: [FeatureSide], window: Int, wordPiece: Bool) throws -> [TextMatch] {
        let want = text.lowercased()
        let vocabulary = try store.vocabulary(run: run)
        var sequences: [Int: [Int32]] = [:]
        var found: [String: TextMatch] = [:]
        for e in try store.examples(run: run) where sides.contains(e.side) {
            let seq: [Int32]
            if let s = sequences[e.sequenceID] { seq = s } else { seq = try store.sequence(run: run, id: e.sequenceID); sequences[e.sequenceID] = seq }
            guard e.position >= 0, e.position < seq.count else { continue }
            let lo = max(0, e.position - window), hi = min(seq.count, e.position + window + 1)
            let pieces = seq[lo..<hi].map { vocabulary[Int($0)] ?? "<\($0)>" }
            guard TokenText.join(pieces, wordPiece: wordPiece).lowercased().contains(want) else { continue }
            let key = "\(e.side.rawValue) \(e.feature)"
            var m = found[key] ?? TextMatch(side: e.side, feature: e.feature, examples: 0, maxActivation: -.infinity, example: "")
            m.examples += 1
            if e.activation > m.maxActivation {
                m.maxActivation = e.activation
                m.example = TokenText.marked(FeatureView.Example(sequenceID: e.sequenceID, position: e.position, activation: e.activation,
                                                                 tokens: pieces, firing: e.position - lo, values: nil), wordPiece: wordPiece)
            }
            found[key] = m
        }
        return found.values.sorted {
            if $0.examples != $1.examples { return $0.examples > $1.examples }
            if $0.maxActivation != $1.maxActivation { return $0.maxActivation > $1.maxActivation }
            return $0.side == $1.side ? $0.feature < $1.feature : $0.side == .query
        }
    }
}
