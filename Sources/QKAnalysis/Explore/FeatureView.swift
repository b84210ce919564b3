import Foundation
import QKStore

/// Everything shown about one feature, gathered from the store once so the terminal view, the
/// HTML page and the dashboard JSON agree.
public struct FeatureView: Sendable {
    public struct Example: Sendable {
        public var sequenceID: Int
        public var position: Int
        public var activation: Float
        /// The context window: token texts and where the firing token sits in it.
        public var tokens: [String]
        public var firing: Int
        /// The feature's activation on every token of the window, when the codes were recomputed.
        public var values: [Float]?
    }
    public var side: FeatureSide
    public var index: Int
    public var stats: FeatureStats?
    public var examples: [Example]
    public var histogram: ActivationHistogram?
    /// Strongest partners per head (other side's feature), by importance.
    public var partners: [PairRow]

    /// Reads statistics, examples (with a `window`-token context each side) and the top `top`
    /// pairs per head. `vocabulary` maps ids to text (`Store.vocabulary`).
    public static func load(store: Store, run: Int64, side: FeatureSide, index: Int, vocabulary: [Int: String],
                            window: Int = 8, top: Int = 5, nHead: Int, hasPairMap: Bool,
                            sequenceCache: inout [Int: [Int32]]) throws -> FeatureView {
        let stats = try store.feature(run: run, side: side, index: index)
        var examples: [Example] = []
        for e in try store.examples(run: run, side: side, feature: index) {
            let seq: [Int32]
            if let s = sequenceCache[e.sequenceID] { seq = s } else { seq = try store.sequence(run: run, id: e.sequenceID); sequenceCache[e.sequenceID] = seq }
            guard e.position >= 0, e.position < seq.count else {
                throw StoreError("run \(run): example of \(side.rawValue) feature \(index) points at position \(e.position) of sequence \(e.sequenceID), which has \(seq.count) tokens")
            }
            let lo = max(0, e.position - window), hi = min(seq.count, e.position + window + 1)
            examples.append(Example(sequenceID: e.sequenceID, position: e.position, activation: e.activation,
                                    tokens: seq[lo..<hi].map { vocabulary[Int($0)] ?? "<\($0)>" }, firing: e.position - lo, values: nil))
        }
        var partners: [PairRow] = []
        if hasPairMap {
            for h in 0..<nHead {
                partners += try store.pairs(run: run, PairQuery(side: side, feature: index, head: h, top: top, order: .importance))
            }
        }
        return FeatureView(side: side, index: index, stats: stats, examples: examples, histogram: nil, partners: partners)
    }

    /// The other side's feature of a pair.
    public func partner(of p: PairRow) -> Int { side == .query ? p.keyFeature : p.queryFeature }
}

/// Token texts joined back into readable text.
public enum TokenText {
    /// WordPiece pieces (`##` continues a word) or byte-level pieces (which carry their own spaces).
    public static func join(_ pieces: [String], wordPiece: Bool) -> String {
        pieces.enumerated().map { n, p in render(p, first: n == 0, wordPiece: wordPiece) }.joined()
    }

    /// One piece as it reads in running text.
    public static func render(_ p: String, first: Bool, wordPiece: Bool) -> String {
        guard wordPiece else { return p.replacingOccurrences(of: "\n", with: "⏎") }
        if p.hasPrefix("##") { return String(p.dropFirst(2)) }
        return first ? p : " " + p
    }

    /// A token's text as a person types it: without a leading space or a word-piece / byte-level
    /// / SentencePiece marker (`##`, `Ġ`, `▁`), so "the" finds " the" and "Ġthe"; lower-cased
    /// unless `caseSensitive` ("the" then also finds "The").
    public static func normalised(_ s: String, caseSensitive: Bool = false) -> String {
        var t = (caseSensitive ? s : s.lowercased()).trimmingCharacters(in: .whitespaces)
        for prefix in ["##", "Ġ", "ġ", "▁"] where t.hasPrefix(prefix) { t.removeFirst(prefix.count) }
        return t
    }

    /// An example as one line with the firing token marked «like this».
    public static func marked(_ e: FeatureView.Example, wordPiece: Bool) -> String {
        e.tokens.enumerated().map { n, p in
            let r = render(p, first: n == 0, wordPiece: wordPiece)
            guard n == e.firing else { return r }
            let lead = r.prefix(while: { $0 == " " })
            return lead + "«" + r.dropFirst(lead.count) + "»"
        }.joined()
    }
}
