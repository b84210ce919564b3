import Foundation
import GRDB
import GRDBSQLite

/// Integrity beyond the chunk blobs: every write transaction records, per run, a manifest in
/// `meta` (key `manifest.run.<id>`) of three checksums over the rows queries trust —
/// - `catalog`: the run's `runs` and `pair_maps` rows and every chunk's zone map (head, ordering,
///   lead range, straight from the zone index), which a read-only store checks the first time a
///   query touches the run, so an edited shape, codec, column list or zone field, or a deleted
///   chunk row, is one error line, not another answer;
/// - `statistics`: its features, examples and vocabulary rows, checked the first time a query
///   reads any of them (sinks, feature, export, report: one pass over the run's rows);
/// - `rows`: its tensor rows (names, dtypes, shapes, checksums), sequence rows and chunk rows
///   (zone maps, counts, checksums), which `verify` checks (each blob has its own checksum too).
/// The blobs themselves are covered by their own checksums. Stores written before manifests
/// existed have none and are read as before.
extension Store {
    static func manifestKey(_ run: Int64) -> String { "manifest.run.\(run)" }

    static let catalogQueries = [
        "SELECT * FROM runs WHERE id = ?1",
        "SELECT * FROM pair_maps WHERE run_id = ?1",
        // The zone map of every chunk, read from the zone index alone (a covering scan in index
        // order, ~1 ms per 10k chunks): an edited head, ordering or lead range, or a deleted row,
        // would otherwise make a query skip a chunk without noticing.
        "SELECT head, ordering, last_lead, first_lead FROM pair_chunks WHERE run_id = ?1 ORDER BY head, ordering, last_lead, first_lead",
    ]
    static let statisticsQueries = [
        "SELECT * FROM features WHERE run_id = ?1 ORDER BY side, idx",
        "SELECT * FROM examples WHERE run_id = ?1 ORDER BY side, feature, rank",
        "SELECT * FROM vocabulary WHERE run_id = ?1 ORDER BY id",
    ]
    static let rowQueries = [
        "SELECT name, dtype, shape, checksum FROM tensors WHERE run_id = ?1 ORDER BY name",
        "SELECT id, n_tokens, checksum FROM sequences WHERE run_id = ?1 ORDER BY id",
        "SELECT ordering, seq, head, first_lead, last_lead, nnz, checksum FROM pair_chunks WHERE run_id = ?1 ORDER BY ordering, seq",
    ]

    /// A checksum over every value of every row the queries return: per value a type tag, then
    /// 8 little-endian bytes (integers, doubles) or a length and the bytes (text, blobs), all
    /// gathered into one buffer. Read with the SQLite C API: it runs on every first query of a
    /// run, where going through `Row` values would cost several times more.
    static func rowsChecksum(_ queries: [String], run: Int64, _ db: Database) throws -> Int64 {
        var bytes: [UInt8] = []
        func put(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        for (q, sql) in queries.enumerated() {
            put(UInt64(q))
            let statement = try db.makeStatement(sql: sql)
            let s = statement.sqliteStatement
            sqlite3_bind_int64(s, 1, run)
            defer { sqlite3_reset(s) }
            let columns = sqlite3_column_count(s)
            while true {
                let rc = sqlite3_step(s)
                if rc == SQLITE_DONE { break }
                guard rc == SQLITE_ROW else {
                    throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
                }
                bytes.append(0xFF)
                for i in 0..<columns {
                    switch sqlite3_column_type(s, i) {
                    case SQLITE_INTEGER: bytes.append(1); put(UInt64(bitPattern: sqlite3_column_int64(s, i)))
                    case SQLITE_FLOAT: bytes.append(2); put(sqlite3_column_double(s, i).bitPattern)
                    case SQLITE_NULL: bytes.append(0)
                    default:   // text or blob: its bytes as stored
                        bytes.append(3)
                        let n = Int(sqlite3_column_bytes(s, i))
                        put(UInt64(n))
                        if n > 0, let p = sqlite3_column_blob(s, i) { bytes.append(contentsOf: UnsafeRawBufferPointer(start: p, count: n)) }
                    }
                }
            }
        }
        return Checksum.of(bytes)
    }

    struct Manifest: Equatable { var catalog: Int64; var statistics: Int64; var rows: Int64 }

    static func computeManifest(run: Int64, _ db: Database) throws -> Manifest {
        Manifest(catalog: try rowsChecksum(catalogQueries, run: run, db), statistics: try rowsChecksum(statisticsQueries, run: run, db),
                 rows: try rowsChecksum(rowQueries, run: run, db))
    }

    static func storedManifest(run: Int64, _ db: Database) throws -> Manifest? {
        guard let text = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [manifestKey(run)]) else { return nil }
        let parts = text.split(separator: " ").map { Int64($0) }
        guard parts.count == 3, let catalog = parts[0], let statistics = parts[1], let rows = parts[2] else { return Manifest(catalog: 0, statistics: 0, rows: 0) }
        return Manifest(catalog: catalog, statistics: statistics, rows: rows)
    }

    /// Rewrites every run's manifest (and drops those of deleted runs): the last step of each
    /// write transaction, so the manifest always describes the committed state.
    static func writeManifests(_ db: Database) throws {
        let runs = try Int64.fetchAll(db, sql: "SELECT id FROM runs")
        try db.execute(sql: "DELETE FROM meta WHERE key LIKE 'manifest.run.%'")
        for run in runs {
            let m = try computeManifest(run: run, db)
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, ?)", arguments: [manifestKey(run), "\(m.catalog) \(m.statistics) \(m.rows)"])
        }
    }

    /// The runs the manifests describe (empty for a store from before manifests).
    static func manifestRuns(_ db: Database) throws -> Set<Int64> {
        let prefix = "manifest.run."
        return Set(try String.fetchAll(db, sql: "SELECT key FROM meta WHERE key LIKE 'manifest.run.%'").compactMap { Int64($0.dropFirst(prefix.count)) })
    }

    /// The cheap check of a read-only store: the run's catalog rows against its manifest (a run
    /// without one, in a store that has manifests, is a renumbered or foreign row).
    func checkCatalogManifest(run: Int64, _ db: Database) throws {
        guard !writable, !verifying else { return }
        guard let stored = try Store.storedManifest(run: run, db) else {
            if try !Store.manifestRuns(db).isEmpty { throw StoreError("\(path): damaged store: run \(run) is not in the store's manifest (changed outside qkdb); run `qkdb verify`") }
            return
        }
        guard try Store.rowsChecksum(Store.catalogQueries, run: run, db) == stored.catalog else {
            throw StoreError("\(path): damaged store: run \(run)'s catalog rows do not match its manifest (changed outside qkdb); run `qkdb verify`")
        }
    }

    /// The check before a query trusts a run's features, examples or vocabulary (once per run).
    func checkStatisticsManifest(run: Int64, _ db: Database) throws {
        guard !writable, !verifying, !statisticsChecked.contains(run), let stored = try Store.storedManifest(run: run, db) else { return }
        guard try Store.rowsChecksum(Store.statisticsQueries, run: run, db) == stored.statistics else {
            throw StoreError("\(path): damaged store: run \(run)'s features, examples or vocabulary do not match its manifest (changed outside qkdb); run `qkdb verify`")
        }
        statisticsChecked.insert(run)
    }

    /// The listing check: every run the manifests name is there (a deleted run row is noticed).
    func checkManifestCoverage(runs: [Int64], _ db: Database) throws {
        guard !writable, !verifying else { return }
        let described = try Store.manifestRuns(db)
        if !described.isEmpty, let gone = described.subtracting(runs).min() {
            throw StoreError("\(path): damaged store: run \(gone) is in the store's manifest but has no runs row (changed outside qkdb); run `qkdb verify`")
        }
    }

    /// The full check `verify` makes: one problem line per run whose rows disagree.
    func manifestProblems(run: Int64, _ db: Database) throws -> [String] {
        guard let stored = try Store.storedManifest(run: run, db) else {
            return try Store.manifestRuns(db).isEmpty ? [] : ["\(path): run \(run) is not in the store's manifest (changed outside qkdb)"]
        }
        let actual = try Store.computeManifest(run: run, db)
        var problems: [String] = []
        if actual.catalog != stored.catalog { problems.append("\(path): run \(run): its runs / pair_maps rows or chunk count do not match its manifest (changed outside qkdb)") }
        if actual.statistics != stored.statistics { problems.append("\(path): run \(run): its features, examples or vocabulary rows do not match its manifest (changed outside qkdb)") }
        if actual.rows != stored.rows { problems.append("\(path): run \(run): its tensor, sequence or chunk rows do not match its manifest (changed outside qkdb)") }
        return problems
    }
}
