import Foundation
import GRDB

/// What `qkdb export` can write.
public enum ExportKind: String, Sendable, CaseIterable { case pairs, features, examples }

extension Store {
    /// The CSV header of a run's pairs: the fixed columns, then its extra columns, then both labels.
    /// Every export starts with the run's id and names a feature id `feature` (or
    /// `query_feature`/`key_feature`), never `index` (DuckDB's reserved word, pandas' own attribute).
    public static let pairHeader = ["run", "head", "query_feature", "key_feature"] + PairColumn.allCases.map(\.rawValue)
    static let pairLabelHeader = ["query_label", "key_label"]
    static let featureHeader = ["run", "side", "feature", "alive", "density", "mean_activation", "max_activation", "bos_fraction", "label"]
    static let exampleHeader = ["run", "side", "feature", "rank", "sequence_id", "position", "token", "activation", "label"]
    /// Headers of exports written before the `run` column (still replaced without `--force`).
    static let olderHeaders = [["head", "query_feature", "key_feature"], ["side", "index", "alive"], ["side", "feature", "rank", "sequence_id"]]

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
        let writer = try CSVWriter(path: out, force: force, recognisedHeaders: [Store.pairHeader, Store.featureHeader, Store.exampleHeader] + Store.olderHeaders)
        let labels = try self.labels(run: run)
        var count = 0
        switch what {
        case .pairs:
            guard let map = info.pairMap else { throw StoreError("\(path): run \(run) has no pair map yet") }
            try writer.row(Store.pairHeader + map.extraColumns + Store.pairLabelHeader)
            // Each label escaped once, not once per pair.
            let queryLabels = labels.query.mapValues(CSVWriter.escape), keyLabels = labels.key.mapValues(CSVWriter.escape)
            try forEachPair(run: run) { p in
                try writer.numericRow(ints: [Int(run), p.head, p.queryFeature, p.keyFeature],
                                      floats: [p.value, p.mask, p.importance, p.meanContribution, p.cooccurrence] + p.extra.map { Optional($0) },
                                      escapedTexts: [queryLabels[p.queryFeature] ?? "", keyLabels[p.keyFeature] ?? ""])
                count += 1
            }
        case .features:
            try writer.row(Store.featureHeader)
            for f in try features(run: run) {
                try writer.row([String(run), f.side.rawValue, String(f.index), f.alive ? "1" : "0", NumberText.double(f.density), NumberText.double(f.meanActivation),
                                NumberText.double(f.maxActivation), NumberText.double(f.bosFraction), f.label ?? ""])
                count += 1
            }
        case .examples:
            try writer.row(Store.exampleHeader)
            let all = try examples(run: run)
            for (e, token) in zip(all, try firingTokens(run: run, of: all)) {
                try writer.row([String(run), e.side.rawValue, String(e.feature), String(e.rank), String(e.sequenceID), String(e.position), token ?? "",
                                NumberText.float(e.activation), labels[e.side, e.feature] ?? ""])
                count += 1
            }
        }
        try writer.finish()
        return count
    }
}
