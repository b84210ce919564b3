import Foundation
import GRDB

/// An attention-sink key feature: it fires (almost) only on BOS / [CLS], and the pairs into it
/// carry attention importance on some heads.
public struct SinkFeature: Sendable {
    public var keyFeature: Int
    public var bosFraction: Double
    public var density: Double?
    /// Sum over heads of `heads[i].importance` (pairs' and key-bias term's): what sinks rank by.
    public var totalImportance: Double
    /// The part of `totalImportance` the key-bias term B·a_K carries (summed over heads).
    public var keyBiasImportance: Double { heads.reduce(0) { $0 + $1.biasImportance } }
    /// Heads with at least one pair into the feature or a key-bias importance above 0, in head order.
    public var heads: [SinkHead]
}

extension Array where Element == SinkFeature {
    /// The same sinks seen from one head: each keeps only that head, totals become that head's,
    /// and the list is re-ranked (sinks the head does not use drop out).
    public func onHead(_ h: Int) -> [SinkFeature] {
        compactMap { s -> SinkFeature? in
            guard let head = s.heads.first(where: { $0.head == h }) else { return nil }
            var one = s
            one.heads = [head]
            one.totalImportance = head.importance
            return one
        }.sorted { $0.totalImportance != $1.totalImportance ? $0.totalImportance > $1.totalImportance : $0.keyFeature < $1.keyFeature }
    }
}

public struct SinkHead: Sendable {
    public var head: Int
    /// Sum of the importance of every pair into the key feature on this head, plus `biasImportance`.
    public var importance: Double
    /// The importance the key-bias term B[h, j]·aK_j carries on this head (0 when the run does not
    /// store it). A dense query direction that every token carries ends up in the query
    /// transcoder's decoder bias, not in a feature, so the sink it drives shows up here.
    public var biasImportance: Double = 0
    /// The query features whose pairs into the key feature carry the most importance, best first.
    public var queries: [SinkQuery]
}

public struct SinkQuery: Sendable {
    public var queryFeature: Int
    public var importance: Float
    /// The query feature's density, when the run stores its statistics.
    public var density: Double?
}

extension Store {
    /// The `[n_head, d_key]` tensor step 2 writes with the attention importance of the key-bias term.
    public static let keyBiasImportanceTensor = "pairmap.key_bias_importance"

    /// Key features with bos_fraction ≥ `threshold`, ranked by the attention importance they carry
    /// (their pairs' plus the key-bias term's, summed over heads; ties to the lower index), each
    /// with its top `topQueries` query features per head. Ranking by importance rather than by
    /// bos_fraction matters: a rare feature that fires only at position 0 also has bos_fraction 1.
    public func sinks(run: Int64, threshold: Double = 0.9, topQueries: Int = 5) throws -> [SinkFeature] {
        guard topQueries >= 0 else { throw StoreError("--top must be 0 (all) or positive, got \(topQueries)") }
        // Runs written before step 2 stored the key-bias importance rank by their pairs alone.
        let biasImportance = try tensorNames(run: run).contains(Store.keyBiasImportanceTensor)
            ? try tensor(run: run, name: Store.keyBiasImportanceTensor) : nil
        return try read { db in
            let cached = try cachedRun(run, db)
            guard let map = cached.pairMap else { throw StoreError("\(path): run \(run) has no pair map yet") }
            guard map.columns.contains(.importance) else { throw StoreError("\(path): run \(run) has no importance column, which sinks ranks by") }
            try checkStatisticsManifest(run: run, db)
            let keyCount = try Int.fetchOne(db, sql: "SELECT count(*) FROM features WHERE run_id = ? AND side = 'key' AND bos_fraction IS NOT NULL", arguments: [run]) ?? 0
            guard keyCount > 0 else { throw StoreError("\(path): run \(run) has no key-feature statistics (bos_fraction), which sinks needs") }
            let candidates = try Row.fetchAll(db, sql: """
                SELECT idx, bos_fraction, density FROM features WHERE run_id = ? AND side = 'key' AND bos_fraction >= ? ORDER BY idx
                """, arguments: [run, threshold])
            var queryDensity: [Int: Double] = [:]
            let cursor = try Row.fetchCursor(db, sql: "SELECT idx, density FROM features WHERE run_id = ? AND side = 'query' AND density IS NOT NULL", arguments: [run])
            while let row = try cursor.next() { queryDensity[try row.required(at: 0, "\(path): features of run \(run)")] = try row.required(at: 1, "\(path): features of run \(run)") }
            if let b = biasImportance, b.shape != [cached.shape.nHead, cached.shape.dKey] {
                throw StoreError("\(path): run \(run) tensor \(Store.keyBiasImportanceTensor) has shape \(b.shape), expected [\(cached.shape.nHead), \(cached.shape.dKey)]")
            }
            var out: [SinkFeature] = []
            for c in candidates {
                let j: Int = try c.required("idx", "\(path): features of run \(run)")
                guard j < cached.shape.dKey else {
                    throw StoreError("\(path): damaged store: run \(run) has statistics for key feature \(j), beyond its d_key \(cached.shape.dKey)")
                }
                var heads: [SinkHead] = []
                for h in 0..<cached.shape.nHead {
                    // Every pair into the key feature, with exact importance (from the query-major ordering).
                    let all = try rankedRow(run: run, map: map, shape: cached.shape, side: .key, feature: j, head: h,
                                            top: 0, order: .importance, ascending: false, db)
                    let bias = biasImportance.map { Double($0.values[h * cached.shape.dKey + j]) } ?? 0
                    guard !all.isEmpty || bias > 0 else { continue }
                    let total = all.reduce(bias) { $0 + Double($1.importance ?? 0) }
                    let chosen = topQueries == 0 ? all : Array(all.prefix(topQueries))
                    heads.append(SinkHead(head: h, importance: total, biasImportance: bias, queries: chosen.map {
                        SinkQuery(queryFeature: $0.queryFeature, importance: $0.importance ?? 0, density: queryDensity[$0.queryFeature])
                    }))
                }
                out.append(SinkFeature(keyFeature: j, bosFraction: try c.required("bos_fraction", "\(path): key feature \(j) of run \(run)"),
                                       density: try c.optional("density", "\(path): key feature \(j) of run \(run)"),
                                       totalImportance: heads.reduce(0) { $0 + $1.importance }, heads: heads))
            }
            return out.sorted { $0.totalImportance != $1.totalImportance ? $0.totalImportance > $1.totalImportance : $0.keyFeature < $1.keyFeature }
        }
    }
}
