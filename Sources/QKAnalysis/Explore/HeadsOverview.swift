import Foundation
import QKStore

/// One row per head of a run: what the head attends to (`HeadAttention`, measured on the true
/// patterns of the held-out sequences), how many pairs of the pruned map it keeps, its top pairs
/// and, on RoPE runs, the offsets its pairs peak at. `qkdb heads` prints it; the report's heads
/// page shows the same rows.
public struct HeadSummary: Sendable {
    public var head: Int
    /// Nil when the run predates the measurement and its model could not be run.
    public var attention: HeadAttention?
    public var pairs: Int
    public var topPairs: [PairRow]
    /// RoPE runs: (offset, share of the head's pair importance peaking there), largest first.
    public var peakOffsets: [(offset: Int, share: Double)]
}

public enum HeadsOverview {
    /// - Parameters:
    ///   - attention: the per-head attention (`HeadAttention.stored`, or measured by the caller).
    ///   - topPairs: pairs listed per head.
    public static func summarize(store: Store, run: Int64, attention: [HeadAttention]?, topPairs: Int = 3) throws -> [HeadSummary] {
        let info = try store.run(run)
        let nHead = info.spec.nHead
        guard let map = info.pairMap else {
            return (0..<nHead).map { h in HeadSummary(head: h, attention: attention?.first(where: { $0.head == h }), pairs: 0, topPairs: [], peakOffsets: []) }
        }
        let counts = try store.pairCounts(run: run)
        let order: PairColumn = map.columns.contains(.importance) ? .importance : .value
        let offsetColumn = map.extraColumns.firstIndex(of: "peak_offset")
        return try (0..<nHead).map { h in
            // Every pair only when the offsets are wanted (RoPE); otherwise the top few.
            let rows = try store.headPairs(run: run, head: h, top: offsetColumn == nil ? topPairs : 0, order: order)
            var offsets: [(Int, Double)] = []
            if let c = offsetColumn {
                var weight: [Int: Double] = [:]
                var total = 0.0
                for r in rows {
                    let w = Double(abs(r.column(order) ?? 0))
                    weight[Int(r.extra[c]), default: 0] += w; total += w
                }
                offsets = weight.map { ($0.key, total > 0 ? $0.value / total : 0) }.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
            }
            return HeadSummary(head: h, attention: attention?.first(where: { $0.head == h }), pairs: counts[h],
                               topPairs: Array(rows.prefix(topPairs)), peakOffsets: offsets)
        }
    }
}

extension HeadAttention {
    /// A run's per-head attention: what step 2 stored, else measured now with the run's model
    /// (`explored` opens it only then). Nil for runs without dictionaries.
    public static func of(_ info: RunInfo, store: Store, explored: () throws -> ExploredRun) throws -> [HeadAttention]? {
        if let stored = stored(metrics: info.spec.metrics) { return stored }
        guard info.spec.kind == .trained else { return nil }
        return try measure(try explored(), store: store)
    }

    /// Measures each head's attention on the held-out sequences stored with an explored run (one
    /// forward pass): for runs whose step 2 predates `metrics.step2.head_attention`.
    public static func measure(_ explored: ExploredRun, store: Store) throws -> [HeadAttention] {
        var tally = Tally(nHead: explored.model.config.nHead)
        for tokens in try explored.heldOutSequences(store: store) {
            tally.add(pattern: try explored.truePattern(of: tokens))
        }
        return tally.heads
    }
}
