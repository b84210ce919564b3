import Foundation
import GRDB

/// A pairs query: the pairs of one feature, ranked, on one head or on every head.
public struct PairQuery: Sendable {
    public var side: FeatureSide
    public var feature: Int
    /// nil = every head, each ranked on its own (results grouped by head, in head order).
    public var head: Int?
    /// Pairs per head; 0 = all of them.
    public var top: Int
    public var order: PairColumn
    /// Smallest first (e.g. the most inhibitory pairs by value); ties always go to the lower partner index.
    public var ascending: Bool

    public init(side: FeatureSide, feature: Int, head: Int? = nil, top: Int = 20, order: PairColumn = .importance, ascending: Bool = false) {
        self.side = side; self.feature = feature; self.head = head; self.top = top; self.order = order; self.ascending = ascending
    }
}

extension Store {
    /// The pairs of one feature, ranked by `query.order`, top `query.top` per head.
    /// Finds chunks through the zone-map index, decodes only those, and ranks in memory.
    public func pairs(run: Int64, _ query: PairQuery) throws -> [PairRow] {
        try read { db in
            if let prefetcher, let h = query.head {
                // Before anything else: start loading the zone-index page(s) this query will look
                // up (the feature's own entry and, for a key feature, the head's query-major
                // entries its pairs are fetched through), so a cold read overlaps the catalog work.
                let key: [Int64] = [run, Int64(h), Int64(query.side.ordering), Int64(query.feature)]
                prefetcher.willNeedZone(from: query.side == .key ? [run, Int64(h), 0, 0] : key, through: key)
            }
            let cached = try cachedRun(run, db)
            let shape = cached.shape
            guard let map = cached.pairMap else { throw StoreError("\(path): run \(run) has no pair map yet") }
            let extent = shape.extent(query.side)
            guard query.feature >= 0, query.feature < extent else {
                throw StoreError("\(query.side.rawValue) feature \(query.feature) is out of range for run \(run) (d_\(query.side.rawValue) \(extent))")
            }
            if let h = query.head, h < 0 || h >= shape.nHead {
                throw StoreError("head \(h) is out of range for run \(run) (n_head \(shape.nHead))")
            }
            guard query.top >= 0 else { throw StoreError("--top must be 0 (all) or positive, got \(query.top)") }
            guard map.columns.contains(query.order) else {
                throw StoreError("run \(run) has no \(query.order.rawValue) column to order by (it has \(map.columns.map(\.rawValue).joined(separator: ", ")))")
            }
            var out: [PairRow] = []
            for h in query.head.map({ [$0] }) ?? Array(0..<shape.nHead) {
                out += try rankedRow(run: run, map: map, shape: shape, side: query.side, feature: query.feature, head: h,
                                     top: query.top, order: query.order, ascending: query.ascending, db)
            }
            return out
        }
    }

    /// The chunks holding row `lead` of one ordering on one head (usually one; a long row spans several).
    func chunks(run: Int64, side: FeatureSide, head: Int, lead: Int, _ db: Database) throws -> [PairChunkRecord] {
        // Common case in one statement: the first chunk whose zone reaches `lead`. Only when the
        // row runs to that chunk's end (it may continue) does the general scan below run.
        guard let record = try firstChunk(run: run, side: side, head: head, lead: lead, db) else { return [] }
        if record.firstLead > lead { return [] }
        if record.lastLead > lead { return [record] }
        let zone = try db.cachedStatement(sql: """
            SELECT rowid, first_lead FROM pair_chunks
            WHERE run_id = ? AND ordering = ? AND head = ? AND last_lead >= ? ORDER BY last_lead, first_lead
            """)
        var rowids: [Int64] = []
        let cursor = try Row.fetchCursor(zone, arguments: [run, side.ordering, head, lead])
        while let row = try cursor.next() {
            let first: Int = try row.required(at: 1, "\(path): a chunk zone of run \(run)")
            if first > lead { break }
            rowids.append(try row.required(at: 0, "\(path): a chunk zone of run \(run)"))
        }
        guard !rowids.isEmpty else { return [] }
        let fetch = try db.cachedStatement(sql: "SELECT \(Store.chunkColumns) FROM pair_chunks WHERE rowid = ?")
        return try rowids.map { id in
            guard let row = try Row.fetchOne(fetch, arguments: [id]) else { throw StoreError("\(path): chunk row \(id) of run \(run) vanished") }
            return try chunkRecord(row, run: run)
        }
    }

    static let chunkColumns = "ordering, seq, head, first_lead, last_lead, nnz, checksum, leads, trails, floats"

    func chunkRecord(_ row: Row, run: Int64) throws -> PairChunkRecord {
        let what = "\(path): a chunk row of run \(run)"
        func blob(_ i: Int) throws -> [UInt8]? { (try row.optional(at: i, what) as Data?).map { [UInt8]($0) } }
        func int(_ i: Int) throws -> Int { try row.required(at: i, what) }
        let seq = try int(1)
        guard let leads = try blob(7), let trails = try blob(8), let floats = try blob(9) else {
            throw StoreError("\(path): chunk \(seq) of run \(run) is missing a required blob")
        }
        return PairChunkRecord(ordering: try int(0), seq: seq, head: try int(2), firstLead: try int(3), lastLead: try int(4), nnz: try int(5),
                               checksum: try row.required(at: 6, what),
                               leads: leads, trails: trails, floats: floats)
    }

    /// Ranks one row (one leading feature on one head) and returns its best `top` pairs.
    /// Query rows are answered from their own chunks. Key rows rank from the key-major ordering
    /// when it holds the ranking column, then fetch the chosen pairs' other columns from the
    /// query-major ordering; ranking by a column it lacks fetches the whole row first.
    func rankedRow(run: Int64, map: PairMapInfo, shape: PairMapShape, side: FeatureSide, feature: Int, head: Int,
                   top: Int, order: PairColumn, ascending: Bool, _ db: Database) throws -> [PairRow] {
        if side == .key {
            // On a cold file: start reading the key row's chunk now, and prepare the statements
            // the fetches will need while it loads (preparing is CPU work a cold query has to do
            // anyway; here it overlaps the disk instead of following it).
            if let prefetcher, let first = try chunkLocation(run: run, side: .key, head: head, lead: feature, db) {
                prefetcher.willNeed(rowids: [first.rowid], wait: false)
                for statement in HotStatement.allCases { _ = try hotStatement(statement, db) }
            }
            if map.keyColumns.contains(order) {
                // The key-major ranking key is rounded to bf16, which never reorders two values
                // (rounding is monotonic), so the exact top N lie among the entries whose rounded
                // key is at least the N-th best rounded key. Fetch those, rank exactly, keep N.
                let (trails, keys) = try rowKeys(run: run, map: map, shape: shape, side: .key, feature: feature, head: head, column: order, db)
                let candidates = TopSelection.candidates(roundedKey: keys, trails: trails, top: top, ascending: ascending)
                let rows = try fetchFromQueryMajor(run: run, map: map, shape: shape, head: head, keyFeature: feature,
                                                   queryFeatures: candidates.map { Int(trails[$0]) }, db)
                return TopSelection.rank(rows, by: order, side: side, top: top, ascending: ascending)
            }
            let (trails, _) = try rowKeys(run: run, map: map, shape: shape, side: .key, feature: feature, head: head, column: nil, db)
            let all = try fetchFromQueryMajor(run: run, map: map, shape: shape, head: head, keyFeature: feature, queryFeatures: trails.map(Int.init), db)
            return TopSelection.rank(all, by: order, side: side, top: top, ascending: ascending)
        }
        var best: [PairRow] = []
        for record in try chunks(run: run, side: side, head: head, lead: feature, db) {
            let reader = try PairChunkReader(record: record, run: run, codec: map.codec, zstd: zstd, shape: shape)
            guard let r = reader.row(of: feature) else { continue }
            let lo = Int(reader.offsets[r]), hi = Int(reader.offsets[r + 1])
            let trails = try reader.trails(extent: shape.extent(side.other))
            let floats = try reader.floats(names: map.storedColumns(.query))
            guard let key = floats.column(order) else { throw StoreError("\(path): \(record.name(run: run)) lacks its \(order.rawValue) column") }
            let picked = TopSelection.pick(key: Array(key), trails: trails, range: lo..<hi, top: top, ascending: ascending)
            best += picked.map { floats.pair($0, head: head, queryFeature: feature, keyFeature: Int(trails[$0]), extraColumns: map.extraColumns) }
        }
        return TopSelection.rank(best, by: order, side: side, top: top, ascending: ascending)
    }

    /// The trailing features of one row, in order, and (when `column` is given) that column's values,
    /// from the row's own ordering only (on the key side: rounded to bf16, see `rankedRow`).
    func rowKeys(run: Int64, map: PairMapInfo, shape: PairMapShape, side: FeatureSide, feature: Int, head: Int,
                 column: PairColumn?, _ db: Database) throws -> (trails: [Int32], values: [Float]) {
        var trailsOut: [Int32] = [], valuesOut: [Float] = []
        let stored = map.storedColumns(side)
        for record in try chunks(run: run, side: side, head: head, lead: feature, db) {
            let reader = try PairChunkReader(record: record, run: run, codec: map.codec(side), zstd: zstd, shape: shape)
            guard let r = reader.row(of: feature) else { continue }
            // Only this row's features and values are rebuilt, not the whole chunk's.
            let entries = try ChunkEntries(reader: reader, columnCount: stored.count)
            trailsOut += try entries.rowTrails(r, extent: shape.extent(side.other))
            if let column {
                guard let c = stored.firstIndex(of: column.rawValue) else { throw StoreError("\(path): \(record.name(run: run)) lacks its \(column.rawValue) column") }
                valuesOut += try entries.values(column: c, range: Int(reader.offsets[r])..<Int(reader.offsets[r + 1]))
            }
        }
        return (trailsOut, valuesOut)
    }

    /// The full rows of pairs (head, q, keyFeature) for each q, in the order given, read from the
    /// query-major ordering. Decoded chunks are shared between pairs that fall in the same one.
    ///
    /// Two passes: first every pair's chunk is located from the zone-map index alone, and the
    /// pages of those chunks are hinted to the OS (`PagePrefetcher`), so that on a cold file their
    /// disk reads overlap; then the chunks are read and decoded. A pair whose query row continues
    /// past its first chunk is looked for in the following ones too.
    func fetchFromQueryMajor(run: Int64, map: PairMapInfo, shape: PairMapShape, head: Int, keyFeature: Int,
                             queryFeatures: [Int], _ db: Database) throws -> [PairRow] {
        var locations: [(rowid: Int64, lastLead: Int)?] = []
        locations.reserveCapacity(queryFeatures.count)
        for q in queryFeatures {
            let l = try chunkLocation(run: run, side: .query, head: head, lead: q, db)
            locations.append(l.flatMap { $0.firstLead <= q ? ($0.rowid, $0.lastLead) : nil })
        }
        if let prefetcher, queryFeatures.count > 1 {
            prefetcher.willNeed(rowids: locations.compactMap { $0?.rowid })
        }
        var opened: [Int64: ChunkEntries] = [:]
        let columnCount = map.storedColumns(.query).count
        let slots = ColumnSlots(map.storedColumns(.query), extraColumns: map.extraColumns)
        func missing(_ q: Int) -> StoreError {
            StoreError("\(path): run \(run): pair (head \(head), query feature \(q), key feature \(keyFeature)) is in the key-major ordering but not the query-major one (the store is damaged; run `qkdb verify`)")
        }
        return try zip(queryFeatures, locations).map { q, location in
            guard let location else { throw missing(q) }
            let chunk: ChunkEntries
            if let c = opened[location.rowid] { chunk = c } else {
                guard let record = try self.chunk(rowid: location.rowid, run: run, db), record.ordering == 0, record.head == head else { throw missing(q) }
                chunk = try ChunkEntries(reader: try PairChunkReader(record: record, run: run, codec: map.codec, zstd: zstd, shape: shape),
                                         columnCount: columnCount)
                opened[location.rowid] = chunk
            }
            if let n = try chunk.entry(lead: q, trail: keyFeature, extent: shape.dKey) {
                return try chunk.pair(n, slots: slots, queryFeature: q, keyFeature: keyFeature)
            }
            // The row may run on into the next chunk(s): the rare general path.
            if location.lastLead == q {
                for record in try chunks(run: run, side: .query, head: head, lead: q, db).dropFirst() {
                    let more = try ChunkEntries(reader: try PairChunkReader(record: record, run: run, codec: map.codec, zstd: zstd, shape: shape),
                                                columnCount: columnCount)
                    if let n = try more.entry(lead: q, trail: keyFeature, extent: shape.dKey) {
                        return try more.pair(n, slots: slots, queryFeature: q, keyFeature: keyFeature)
                    }
                }
            }
            throw missing(q)
        }
    }

}

/// Top-N selection with one deterministic order: by the key (descending unless ascending),
/// ties to the lower partner (trailing) feature.
enum TopSelection {
    /// Entries that may be in the exact top `top` given a monotonically rounded key: every entry
    /// whose rounded key is at least as good as the `top`-th best rounded key (ties included).
    static func candidates(roundedKey: [Float], trails: [Int32], top: Int, ascending: Bool) -> [Int] {
        let all = 0..<roundedKey.count
        if top == 0 || roundedKey.count <= top { return Array(all) }
        let best = pick(key: roundedKey, trails: trails, range: all, top: top, ascending: ascending)
        guard let last = best.last else { return [] }
        let bound = roundedKey[last]
        return all.filter { ascending ? roundedKey[$0] <= bound : roundedKey[$0] >= bound }
    }

    @inline(__always) static func before(_ a: Float, _ ta: Int32, _ b: Float, _ tb: Int32, ascending: Bool) -> Bool {
        if a != b { return ascending ? a < b : a > b }
        return ta < tb
    }

    /// Indices (into the chunk) of the best `top` entries of `range` (all when top is 0), best first.
    static func pick(key: [Float], trails: [Int32], range: Range<Int>, top: Int, ascending: Bool) -> [Int] {
        if top == 0 || range.count <= top {
            return range.sorted { before(key[$0], trails[$0], key[$1], trails[$1], ascending: ascending) }
        }
        // A small sorted window: most entries fail the comparison with the current worst and cost one test.
        var window: [Int] = []
        window.reserveCapacity(top + 1)
        key.withUnsafeBufferPointer { k in
            trails.withUnsafeBufferPointer { t in
                for n in range {
                    if window.count == top {
                        let w = window[top - 1]
                        if !before(k[n], t[n], k[w], t[w], ascending: ascending) { continue }
                        window.removeLast()
                    }
                    var i = window.count
                    while i > 0 && before(k[n], t[n], k[window[i - 1]], t[window[i - 1]], ascending: ascending) { i -= 1 }
                    window.insert(n, at: i)
                }
            }
        }
        return window
    }

    /// Final order across the pieces of a row that spans chunks.
    static func rank(_ rows: [PairRow], by order: PairColumn, side: FeatureSide, top: Int, ascending: Bool) -> [PairRow] {
        let sorted = rows.sorted { a, b in
            let ta = Int32(side == .query ? a.keyFeature : a.queryFeature), tb = Int32(side == .query ? b.keyFeature : b.queryFeature)
            return before(a.column(order) ?? 0, ta, b.column(order) ?? 0, tb, ascending: ascending)
        }
        return top == 0 ? sorted : Array(sorted.prefix(top))
    }
}
