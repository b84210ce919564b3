import Foundation
import GRDB

/// Integrity beyond the chunk blobs: every write transaction records, per run, a manifest in
/// `meta` (key `manifest.run.<id>`) of three checksums over the rows queries trust —
/// - `catalog`: the run's `runs` and `pair_maps` rows and its chunk count per ordering, which a
///   read-only store checks the first time a query touches the run (three indexed reads), so an
///   edited shape, codec, column list or a deleted chunk row is one error line, not another answer;
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
        "SELECT ordering, count(*) FROM pair_chunks WHERE run_id = ?1 GROUP BY ordering ORDER BY ordering",
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

    /// A checksum over every value (type-tagged) of every row the queries return.
    static func rowsChecksum(_ queries: [String], run: Int64, _ db: Database) throws -> Int64 {
        var c = Checksum()
        for (q, sql) in queries.enumerated() {
            c.add(UInt64(q))
            let cursor = try Row.fetchCursor(db, sql: sql, arguments: [run])
            while let row = try cursor.next() {
                c.add(UInt8(0xFF))
                for v in row.databaseValues {
                    switch v.storage {
                    case .null: c.add(UInt8(0))
                    case .int64(let i): c.add(UInt8(1)); c.add(i)
                    case .double(let d): c.add(UInt8(2)); c.add(d.bitPattern)
                    case .string(let s): c.add(UInt8(3)); c.add(Array(s.utf8))
                    case .blob(let b): c.add(UInt8(4)); c.add([UInt8](b))
                    }
                }
            }
        }
        return c.value
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
