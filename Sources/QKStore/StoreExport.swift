import Foundation
import GRDB

/// What `qkdb export` can write.
public enum ExportKind: String, Sendable, CaseIterable { case pairs, features, examples }

extension Store {
    /// The CSV header of a run's pairs: the fixed columns, then its extra columns.
    public static let pairHeader = ["head", "query_feature", "key_feature"] + PairColumn.allCases.map(\.rawValue)
    static let featureHeader = ["side", "index", "alive", "density", "mean_activation", "max_activation", "bos_fraction", "label"]
    static let exampleHeader = ["side", "feature", "rank", "sequence_id", "position", "activation"]

    /// Streams every pair of a run, in (head, query, key) order, one chunk at a time.
    public func forEachPair(run: Int64, _ body: (PairRow) throws -> Void) throws {
        try read { db in
            let cached = try cachedRun(run, db)
            guard let map = cached.pairMap else { throw StoreError("\(path): run \(run) has no pair map yet") }
            let cursor = try Row.fetchCursor(db, sql: "SELECT \(Store.chunkColumns) FROM pair_chunks WHERE run_id = ? AND ordering = 0 ORDER BY seq", arguments: [run])
            var expected = 0, streamed = 0
            while let row = try cursor.next() {
                let record = try chunkRecord(row, run: run)
                // Chunks are numbered 0, 1, 2, … in (head, query) order; a renumbered one would be
                // streamed out of place (found by the fuzz campaign: `export` reordered rows while
                // `verify` failed the store).
                guard record.seq == expected else {
                    throw StoreError("\(path): run \(run)'s query-major chunk \(expected) is missing or renumbered (the next is \(record.seq)); the store is damaged (qkdb verify lists what)")
                }
                expected += 1
                let reader = try PairChunkReader(record: record, run: run, codec: map.codec, zstd: zstd, shape: cached.shape)
                let trails = try reader.trails(extent: cached.shape.dKey)
                let floats = try reader.floats(names: map.storedColumns(.query))
                for r in 0..<reader.rowLeads.count {
                    for n in Int(reader.offsets[r])..<Int(reader.offsets[r + 1]) {
                        streamed += 1
                        try body(floats.pair(n, head: record.head, queryFeature: Int(reader.rowLeads[r]), keyFeature: Int(trails[n]), extraColumns: map.extraColumns))
                    }
                }
            }
            // A chunk missing at the end leaves no gap to notice: count against the catalog.
            guard streamed == map.nnz else {
                throw StoreError("\(path): run \(run)'s chunks hold \(streamed) pairs but its pair map has \(map.nnz); the store is damaged (qkdb verify lists what)")
            }
        }
    }

    /// Writes a run's pairs, features or examples as CSV at `path` (atomically; `-` streams to
    /// standard output); returns the row count. An existing file other than an earlier export is
    /// refused unless `force`.
    @discardableResult
    public func exportCSV(run: Int64, what: ExportKind, to out: String, force: Bool = false) throws -> Int {
        let info = try self.run(run)
        let writer = try CSVWriter(path: out, force: force, recognisedHeaders: [Store.pairHeader, Store.featureHeader, Store.exampleHeader])
        var count = 0
        switch what {
        case .pairs:
            guard let map = info.pairMap else { throw StoreError("\(path): run \(run) has no pair map yet") }
            try writer.row(Store.pairHeader + map.extraColumns)
            try forEachPair(run: run) { p in
                try writer.numericRow(ints: [p.head, p.queryFeature, p.keyFeature],
                                      floats: [p.value, p.mask, p.importance, p.meanContribution, p.cooccurrence] + p.extra.map { Optional($0) })
                count += 1
            }
        case .features:
            try writer.row(Store.featureHeader)
            for f in try features(run: run) {
                try writer.row([f.side.rawValue, String(f.index), f.alive ? "1" : "0", NumberText.double(f.density), NumberText.double(f.meanActivation),
                                NumberText.double(f.maxActivation), NumberText.double(f.bosFraction), f.label ?? ""])
                count += 1
            }
        case .examples:
            try writer.row(Store.exampleHeader)
            try read { db in
                try checkStatisticsManifest(run: run, db)
                let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM examples WHERE run_id = ? ORDER BY side DESC, feature, rank", arguments: [run])
                while let row = try cursor.next() {
                    let e = try example(row)
                    try writer.row([e.side.rawValue, String(e.feature), String(e.rank), String(e.sequenceID), String(e.position), NumberText.float(e.activation)])
                    count += 1
                }
            }
        }
        try writer.finish()
        return count
    }
}
