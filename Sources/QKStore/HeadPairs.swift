import Foundation
import GRDB

extension Store {
    /// The best `top` pairs of one head (0 = all), by `order` (descending unless `ascending`; ties
    /// to the lower query, then key feature): what `qkdb pairs --head H` lists without a feature.
    ///
    /// A head's pairs are contiguous in the query-major ordering, so its chunks are found through
    /// the zone index and each is decoded once; each contributes only its own best `top`.
    public func headPairs(run: Int64, head: Int, top: Int, order: PairColumn = .importance, ascending: Bool = false) throws -> [PairRow] {
        try read { db in
            let cached = try cachedRun(run, db)
            let shape = cached.shape
            guard let map = cached.pairMap else { throw StoreError("\(path): run \(run) has no pair map yet") }
            guard head >= 0, head < shape.nHead else { throw StoreError("head \(head) is out of range for run \(run) (n_head \(shape.nHead))") }
            guard top >= 0 else { throw StoreError("--top must be 0 (all) or positive, got \(top)") }
            guard map.columns.contains(order) else {
                throw StoreError("run \(run) has no \(order.rawValue) column to order by (it has \(map.columns.map(\.rawValue).joined(separator: ", ")))")
            }
            let statement = try db.cachedStatement(sql: """
                SELECT \(Store.chunkColumns) FROM pair_chunks WHERE run_id = ? AND head = ? AND ordering = 0 ORDER BY last_lead, first_lead
                """)
            let cursor = try Row.fetchCursor(statement, arguments: [run, head])
            var best: [PairRow] = []
            while let row = try cursor.next() {
                let record = try chunkRecord(row, run: run)
                let reader = try PairChunkReader(record: record, run: run, codec: map.codec, zstd: zstd, shape: shape)
                let trails = try reader.trails(extent: shape.dKey)
                let floats = try reader.floats(names: map.storedColumns(.query))
                guard let key = floats.column(order) else { throw StoreError("\(path): \(record.name(run: run)) lacks its \(order.rawValue) column") }
                var lead = [Int32](repeating: 0, count: record.nnz)
                for r in 0..<reader.rowLeads.count {
                    for n in Int(reader.offsets[r])..<Int(reader.offsets[r + 1]) { lead[n] = Int32(reader.rowLeads[r]) }
                }
                // Ties inside a chunk go to the lower query feature (leads ascend within a chunk; the
                // trail breaks ties only within a row), which the final sort makes exact.
                let picked = TopSelection.pick(key: Array(key), trails: lead, range: 0..<record.nnz, top: top, ascending: ascending)
                best += picked.map { floats.pair($0, head: head, queryFeature: Int(lead[$0]), keyFeature: Int(trails[$0]), extraColumns: map.extraColumns) }
            }
            let sorted = best.sorted { a, b in
                let x = a.column(order) ?? 0, y = b.column(order) ?? 0
                if x != y { return ascending ? x < y : x > y }
                return (a.queryFeature, a.keyFeature) < (b.queryFeature, b.keyFeature)
            }
            return top == 0 ? sorted : Array(sorted.prefix(top))
        }
    }

    /// Pairs per head of a run's map (from the chunk catalog alone).
    public func pairCounts(run: Int64) throws -> [Int] {
        try read { db in
            let cached = try cachedRun(run, db)
            guard cached.pairMap != nil else { throw StoreError("\(path): run \(run) has no pair map yet") }
            var counts = [Int](repeating: 0, count: cached.shape.nHead)
            let cursor = try Row.fetchCursor(db, sql: "SELECT head, sum(nnz) FROM pair_chunks WHERE run_id = ? AND ordering = 0 GROUP BY head", arguments: [run])
            while let row = try cursor.next() {
                let h: Int = try row.required(at: 0, "\(path): chunks of run \(run)")
                guard h >= 0, h < counts.count else { throw StoreError("\(path): run \(run) has a chunk on head \(h), beyond its n_head \(counts.count); the store is damaged") }
                counts[h] = try row.required(at: 1, "\(path): chunks of run \(run)")
            }
            return counts
        }
    }
}

/// One (query feature, key feature) pair that several heads of a run keep: the distributed use
/// of one feature pair by several heads (`qkdb pairs --shared`).
public struct SharedPair: Sendable, Equatable {
    public var queryFeature: Int
    public var keyFeature: Int
    /// The heads that keep the pair, ascending.
    public var heads: [Int]
    /// The pair's importance on each of those heads (same order), and their sum.
    public var importance: [Float]
    public var totalImportance: Double
}

extension Store {
    /// Pairs used by at least `minHeads` heads, ranked by how many heads use them, then by their
    /// importance summed over those heads (|value| on maps without importance), ties to the lower
    /// query, then key feature. A head uses a pair when it keeps it with at least `minShare` of
    /// the importance the pair has on its strongest head: with the default mask penalty a pair
    /// planted on heads 0 and 2 is also kept on the other two heads at 1/2,000 of that weight,
    /// which no one would call using it. One pass over the map.
    public func sharedPairs(run: Int64, minHeads: Int = 2, minShare: Float = 0.1) throws -> [SharedPair] {
        guard minHeads >= 1 else { throw StoreError("--min-heads must be at least 1, got \(minHeads)") }
        guard minShare >= 0, minShare <= 1 else { throw StoreError("--min-share must lie in [0, 1], got \(minShare)") }
        var byPair: [Int64: SharedPair] = [:]
        let width = Int64(try self.run(run).shape.dKey)
        try forEachPair(run: run) { p in
            let key = Int64(p.queryFeature) * width + Int64(p.keyFeature)
            let w = p.importance ?? abs(p.value)
            byPair[key, default: SharedPair(queryFeature: p.queryFeature, keyFeature: p.keyFeature, heads: [], importance: [], totalImportance: 0)].heads.append(p.head)
            byPair[key]!.importance.append(w)
            byPair[key]!.totalImportance += Double(w)
        }
        let used = byPair.values.map { p -> SharedPair in
            let strongest = p.importance.max() ?? 0
            let keep = p.importance.indices.filter { p.importance[$0] >= minShare * strongest }
            return SharedPair(queryFeature: p.queryFeature, keyFeature: p.keyFeature, heads: keep.map { p.heads[$0] },
                              importance: keep.map { p.importance[$0] }, totalImportance: keep.reduce(0.0) { $0 + Double(p.importance[$1]) })
        }
        return used.filter { $0.heads.count >= minHeads }.sorted { a, b in
            if a.heads.count != b.heads.count { return a.heads.count > b.heads.count }
            if a.totalImportance != b.totalImportance { return a.totalImportance > b.totalImportance }
            return (a.queryFeature, a.keyFeature) < (b.queryFeature, b.keyFeature)
        }
    }
}
