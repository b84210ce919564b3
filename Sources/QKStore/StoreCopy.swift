import Foundation
import GRDB

extension Store {
    /// The tables that hold one run's rows (besides `runs` itself), each with the columns copied
    /// as stored. A run's chunks, tensors and sequences keep their blobs byte for byte.
    static let runTables: [(table: String, columns: String)] = [
        ("tensors", "name, dtype, shape, checksum, data"),
        ("pair_maps", "nnz, value_codec, max_abs_error, columns, key_columns, extra_columns, chunk_nnz, key_chunk_nnz"),
        ("pair_chunks", "ordering, seq, head, first_lead, last_lead, nnz, checksum, leads, trails, floats"),
        ("features", "side, idx, alive, density, mean_activation, max_activation, bos_fraction, label"),
        ("examples", "side, feature, rank, sequence_id, position, activation"),
        ("sequences", "id, n_tokens, checksum, tokens"),
        ("vocabulary", "id, token"),
    ]

    /// What tells one run from another across stores: its name, creation time, config, metrics
    /// and status. A run copied by `copyRuns` keeps all of them (only its id changes), so a second
    /// copy of the same run is recognised and skipped.
    public struct RunIdentity: Hashable, Sendable {
        public var name: String, createdAt: String, config: String, metrics: String, status: String
    }

    public func identities() throws -> [Int64: RunIdentity] {
        try read { db in
            var out: [Int64: RunIdentity] = [:]
            let cursor = try Row.fetchCursor(db, sql: "SELECT id, name, created_at, config, metrics, status FROM runs")
            let what = "\(path): a runs row"
            while let r = try cursor.next() {
                out[try r.required(at: 0, what)] = RunIdentity(name: try r.required(at: 1, what), createdAt: try r.required(at: 2, what),
                                                               config: try r.required(at: 3, what), metrics: try r.required(at: 4, what),
                                                               status: try r.required(at: 5, what))
            }
            return out
        }
    }

    /// Copies runs `ids` of the store at `source` into this one, in one transaction, as stored
    /// (no blob is decoded or re-encoded), each under the next free run id; returns old → new id.
    /// The caller checks the source first (`verify`); this store's manifests cover the copies.
    ///
    ///     let shard = try Store(path: "shard-3.qkdb")
    ///     guard try shard.verify().isClean else { … }
    ///     let ids = try merged.copyRuns(from: "shard-3.qkdb", ids: try shard.runs().map(\.id))
    public func copyRuns(from source: String, ids: [Int64]) throws -> [Int64: Int64] {
        guard writable else { throw StoreError("\(path): opened read-only") }
        guard !ids.isEmpty else { return [:] }
        do {
            return try dbQueue.writeWithoutTransaction { db in
                // ATTACH cannot run inside a transaction; the copy itself is one.
                try db.execute(sql: "ATTACH DATABASE ? AS shard", arguments: [source])
                defer { try? db.execute(sql: "DETACH DATABASE shard") }
                var mapping: [Int64: Int64] = [:]
                try db.inTransaction {
                    var next = (try Int64.fetchOne(db, sql: "SELECT max(id) FROM main.runs") ?? 0) + 1
                    let runColumns = "name, kind, model, architecture, layer, n_head, n_kv_head, d_head, d_model, d_query, d_key, config, metrics, status, created_at, updated_at"
                    for id in ids {
                        try db.execute(sql: "INSERT INTO main.runs (id, \(runColumns)) SELECT ?, \(runColumns) FROM shard.runs WHERE id = ?", arguments: [next, id])
                        guard db.changesCount == 1 else { throw StoreError("\(source): has no run \(id)") }
                        for t in Store.runTables {
                            try db.execute(sql: "INSERT INTO main.\(t.table) (run_id, \(t.columns)) SELECT ?, \(t.columns) FROM shard.\(t.table) WHERE run_id = ?",
                                           arguments: [next, id])
                        }
                        mapping[id] = next
                        next += 1
                    }
                    try Store.writeManifests(db)
                    return .commit
                }
                runCache = [:]
                return mapping
            }
        } catch {
            throw Store.wrap(error, path: path)
        }
    }
}
