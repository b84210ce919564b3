import Foundation
import QKTensor

/// What each head of a layer does, measured on its true attention patterns over a sample: the
/// share of attention it puts on the first position, on the previous token and on the same
/// token, the mean entropy of its rows, and the mean distance it looks back (p − s).
///
/// Rows are the query positions p ≥ 1 (position 0 can attend only to itself on a causal model,
/// which would count as both "first" and "same"), averaged with equal weight. A key is allowed
/// where the pattern is above 0 (a causal mask gives exactly 0).
///
///     var tally = HeadAttention.Tally(nHead: 12)
///     for s in heldOut { tally.add(pattern: s.pattern) }   // [n_head, t, t]
///     tally.heads[0].role                                  // "first position"
public struct HeadAttention: Codable, Sendable, Equatable {
    public var head: Int
    public var firstPosition: Double
    public var previousToken: Double
    public var sameToken: Double
    /// Mean entropy of a row, in nats.
    public var entropy: Double
    /// Mean entropy of uniform attention over the same rows (log of the allowed keys): the most a row can have.
    public var uniformEntropy: Double
    /// The share uniform attention would put on any one key (mean of 1 / allowed keys): the
    /// yardstick for the three shares above.
    public var uniformShare: Double
    /// Mean attention-weighted offset Σ_s P(p, s)·(p − s).
    public var meanOffset: Double
    public var rows: Int

    enum CodingKeys: String, CodingKey {
        case head, rows, entropy
        case firstPosition = "first_position", previousToken = "previous_token", sameToken = "same_token"
        case uniformEntropy = "uniform_entropy", uniformShare = "uniform_share", meanOffset = "mean_offset"
    }

    /// The head's behaviour in a word: the largest of its first-position, previous-token and
    /// same-token shares, when that share is at least 1.5 × what uniform attention would put on one
    /// key (`uniformShare`, the same yardstick for all three); else "broad" when its rows are at
    /// least 3/4 as spread as uniform attention, else "content" (it picks keys by what they are,
    /// not where).
    ///
    /// Why a lift over uniform rather than a majority: heads mix behaviours. A planted
    /// previous-token pair that fires on a tenth of the positions lifts the previous token's share
    /// from 0.10 to 0.17 and nothing else; a sink head whose queries often find a content match
    /// puts 0.42 on the first position. Heads with no planted behaviour stay within 1.1 × uniform.
    /// On BERT every head parks attention on [CLS] (MiniLM layer 2: 16–49%, against 1/128), so
    /// most of its heads read "first position"; the shares beside the role tell them apart.
    public var role: String {
        let shares = [("first position", firstPosition), ("previous token", previousToken), ("same token", sameToken)]
        if uniformShare > 0, let best = shares.filter({ $0.1 >= 1.5 * uniformShare }).max(by: { $0.1 < $1.1 }) { return best.0 }
        return uniformEntropy > 0 && entropy >= 0.75 * uniformEntropy ? "broad" : "content"
    }

    /// Running sums over sequences.
    public struct Tally: Sendable {
        var sums: [[Double]]   // per head: first, previous, same, entropy, uniform entropy, offset, uniform share
        var rows = 0
        public let nHead: Int

        public init(nHead: Int) {
            self.nHead = nHead
            sums = Array(repeating: Array(repeating: 0, count: 7), count: nHead)
        }

        /// One sequence's pattern `[n_head, t, t]` (rows = query positions). Keys with zero
        /// probability (masked) are not allowed keys: uniform entropy counts only the others.
        public mutating func add(pattern: Tensor) {
            guard pattern.rank == 3, pattern.shape[0] == nHead, pattern.shape[1] == pattern.shape[2] else { return }
            let t = pattern.shape[1]
            guard t > 1 else { return }
            pattern.data.withUnsafeBufferPointer { d in
                for h in 0..<nHead {
                    var s = sums[h]
                    for p in 1..<t {
                        let row = (h * t + p) * t
                        var entropy = 0.0, offset = 0.0, allowed = 0
                        for k in 0..<t {
                            let x = Double(d[row + k])
                            guard x > 0 else { continue }
                            allowed += 1
                            entropy -= x * log(x)
                            offset += x * Double(p - k)
                        }
                        s[0] += Double(d[row]); s[1] += Double(d[row + p - 1]); s[2] += Double(d[row + p])
                        s[3] += entropy; s[4] += log(Double(max(1, allowed))); s[5] += offset; s[6] += 1 / Double(max(1, allowed))
                    }
                    sums[h] = s
                }
            }
            rows += t - 1
        }

        public var heads: [HeadAttention] {
            let n = Double(max(1, rows))
            return sums.enumerated().map { h, s in
                HeadAttention(head: h, firstPosition: s[0] / n, previousToken: s[1] / n, sameToken: s[2] / n,
                              entropy: s[3] / n, uniformEntropy: s[4] / n, uniformShare: s[6] / n, meanOffset: s[5] / n, rows: rows)
            }
        }
    }
}

extension HeadAttention {
    /// Where step 2 stores the held-out heads' attention: `metrics.step2.head_attention`.
    public static let metricsKey = "head_attention"

    /// The per-head attention a run stored at step 2, or nil for runs made before it was measured.
    public static func stored(metrics: String) -> [HeadAttention]? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(metrics.utf8)) as? [String: Any],
              let step2 = object["step2"] as? [String: Any], let heads = step2[metricsKey],
              let data = try? JSONSerialization.data(withJSONObject: heads) else { return nil }
        return try? JSONDecoder().decode([HeadAttention].self, from: data)
    }
}
