import QKTrain
import QKStore

/// Which tokens each feature of one dictionary fires on over a sample of sequences: per feature,
/// per token id, how often it fires there and with what total activation; per feature, how many
/// of its firings sit at each of the few positions it fires most at.
///
/// One table serves two readers: automatic labels, written at step 2 from the held-out codes
/// (`label(_:text:)`), and `qkdb features --token`, which rebuilds the table from the same
/// held-out sequences and asks which features fire on a token (`firing(on:)`).
///
///     let table = FeatureTokens(codes: heldOutCodes.key, tokens: heldOutTokens, width: dKey)
///     table.label(7) { vocabulary[Int($0)] ?? "#\($0)" }   // "“the” 41% · “a” 12%"
///     table.firing(on: [1996])                            // features ranked by mean activation there
public struct FeatureTokens: Sendable {
    public struct Tally: Sendable, Equatable {
        public var count = 0
        public var activation = 0.0
    }

    public let width: Int
    /// Per feature: token id → firings there.
    public private(set) var byToken: [[Int32: Tally]]
    /// Per feature: position → firings there.
    public private(set) var byPosition: [[Int: Int]]
    /// Per feature: all its firings.
    public private(set) var firings: [Int]
    /// Token id → occurrences in the sample (fired on or not).
    public private(set) var occurrences: [Int32: Int] = [:]

    /// - Parameters:
    ///   - codes: one sparse code table per sequence (rows = positions).
    ///   - tokens: the token ids of the same sequences (`tokens[n].count == codes[n].rows`).
    public init(codes: [SparseActivations], tokens: [[Int32]], width: Int) {
        self.width = width
        byToken = Array(repeating: [:], count: width)
        byPosition = Array(repeating: [:], count: width)
        firings = Array(repeating: 0, count: width)
        for (a, ids) in zip(codes, tokens) {
            for p in 0..<min(a.rows, ids.count) {
                let token = ids[p]
                occurrences[token, default: 0] += 1
                for e in a.rowStart[p]..<a.rowStart[p + 1] {
                    let f = Int(a.indices[e])
                    guard f < width else { continue }
                    firings[f] += 1
                    byToken[f][token, default: Tally()].count += 1
                    byToken[f][token, default: Tally()].activation += Double(a.values[e])
                    byPosition[f][p, default: 0] += 1
                }
            }
        }
    }

    /// A short automatic label for feature `f`: the tokens it is selective for — each at least 5%
    /// of its firings and at least twice that token's share of the sample — most frequent first
    /// (up to three), with their share of its firings: `“ the” 41% · “ a” 12%`. A feature selective
    /// for no token says how much of the text it fires on: `broad: 35% of tokens`. Either is
    /// prefixed by `position P: ` when at least 90% of its firings sit at one position. Nil for a
    /// feature that never fired.
    ///
    /// Why frequencies, not the max-activating examples: a feature's top examples show where it is
    /// strongest, often on a rare token; the label should say what it usually fires on. Why the
    /// base rate: a dense feature's most frequent tokens are the text's most frequent tokens
    /// (“.” 6% on MiniLM), which says nothing about the feature.
    public func label(_ f: Int, text: (Int32) -> String) -> String? {
        guard f >= 0, f < width, firings[f] > 0 else { return nil }
        let n = Double(firings[f]), positions = Double(max(1, occurrences.values.reduce(0, +)))
        var parts: [String] = []
        if let (p, c) = byPosition[f].max(by: { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }), Double(c) >= 0.9 * n {
            parts.append("position \(p)")
        }
        let selective = byToken[f].filter { token, tally in
            let share = Double(tally.count) / n
            return share >= 0.05 && share >= 2 * Double(occurrences[token] ?? 0) / positions
        }.sorted { $0.value.count != $1.value.count ? $0.value.count > $1.value.count : $0.key < $1.key }
        if selective.isEmpty {
            parts.append("broad: \(FeatureTokens.percent(n / positions)) of tokens")
        } else {
            parts.append(selective.prefix(3).map { "\(FeatureTokens.quoted(text($0.key))) \(FeatureTokens.percent(Double($0.value.count) / n))" }
                .joined(separator: " · "))
        }
        return parts.joined(separator: ": ")
    }

    /// Features that fire on any of `tokens` (one token, or the spellings of one word: "the",
    /// " the"), ranked by their mean activation over the tokens' occurrences (a feature that fires
    /// rarely there ranks low even if strong when it does).
    public func firing(on tokens: Set<Int32>) -> [TokenFiring] {
        let seen = tokens.reduce(0) { $0 + (occurrences[$1] ?? 0) }
        guard seen > 0 else { return [] }
        var out: [TokenFiring] = []
        for f in 0..<width {
            var t = Tally()
            for id in tokens { if let x = byToken[f][id] { t.count += x.count; t.activation += x.activation } }
            guard t.count > 0 else { continue }
            out.append(TokenFiring(feature: f, occurrences: seen, firing: t.count, meanActivation: t.activation / Double(seen),
                                   shareOfFeature: Double(t.count) / Double(firings[f])))
        }
        return out.sorted { $0.meanActivation != $1.meanActivation ? $0.meanActivation > $1.meanActivation : $0.feature < $1.feature }
    }

    /// A token as a label shows it: in typographic quotes (so a CSV field holding a label needs no
    /// quoting of its own), line breaks and tabs made visible.
    static func quoted(_ s: String) -> String {
        "“" + s.replacingOccurrences(of: "\n", with: "⏎").replacingOccurrences(of: "\t", with: "⇥") + "”"
    }

    static func percent(_ x: Double) -> String { "\(Int((100 * x).rounded()))%" }
}

/// One feature that fires on a searched token.
public struct TokenFiring: Sendable, Equatable {
    public var feature: Int
    /// How often the token occurs in the sample.
    public var occurrences: Int
    /// How many of those occurrences the feature fires on.
    public var firing: Int
    /// Σ activation on the token / occurrences.
    public var meanActivation: Double
    /// The token's share of all the feature's firings (1: it fires on nothing else).
    public var shareOfFeature: Double
}
