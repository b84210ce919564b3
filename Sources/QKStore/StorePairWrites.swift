import Foundation
import GRDB

extension Store {
    /// Writes (or replaces) a run's pair map from COO arrays in any order, in one transaction.
    /// Indices must lie inside the run's [d_query, d_key, n_head]; duplicates are rejected.
    /// Returns what the catalog now says (including any lossy codec's maximum error).
    @discardableResult
    public func putPairMap(run: Int64, _ coo: PairCOO, options: PairMapOptions = PairMapOptions()) throws -> PairMapInfo {
        let info = try self.run(run)
        let prepared = try PreparedPairMap(coo: coo, shape: info.shape, options: options)
        return try write { db in try insertPairMap(run: run, prepared, db) }
    }

    /// Creates a run and its pair map together in one transaction (what `qkdb import-pairs` does),
    /// so an interrupted import leaves no trace. The map is validated before the file is touched.
    public func importPairMap(_ spec: RunSpec, _ coo: PairCOO, options: PairMapOptions = PairMapOptions()) throws -> (run: Int64, info: PairMapInfo) {
        let shape = PairMapShape(nHead: spec.nHead, dQuery: spec.dQuery, dKey: spec.dKey)
        let prepared = try PreparedPairMap(coo: coo, shape: shape, options: options)
        return try importPrepared(spec, prepared)
    }

    /// Like `importPairMap`, for a map validated earlier (so a caller can validate before creating a file).
    public func importPrepared(_ spec: RunSpec, _ prepared: PreparedPairMap) throws -> (run: Int64, info: PairMapInfo) {
        try write { db in
            let id = try insertRun(spec, db)
            return (id, try insertPairMap(run: id, prepared, db))
        }
    }

    func insertPairMap(run: Int64, _ prepared: PreparedPairMap, _ db: Database) throws -> PairMapInfo {
        runCache[run] = nil
        let b = prepared.builder
        // Chunks are written in this build's format: a format-1 store that receives one becomes a
        // format-2 store, which an older qkdb then refuses in one line instead of misreading it.
        try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'format_version' AND CAST(value AS INTEGER) < ?",
                       arguments: [String(StoreSchema.formatVersion), StoreSchema.formatVersion])
        try db.execute(sql: "DELETE FROM pair_chunks WHERE run_id = ?", arguments: [run])
        try db.execute(sql: "DELETE FROM pair_maps WHERE run_id = ?", arguments: [run])
        let present = PairColumn.allCases.enumerated().filter { b.columns[$0.offset] != nil }.map(\.element)
        let info = PairMapInfo(nnz: b.coo.count, codec: b.options.codec, maxAbsError: b.maxAbsError, columns: present,
                               keyColumns: PairMapInfo.keyColumns(for: present), extraColumns: b.coo.extra.map(\.name),
                               chunkNNZ: b.options.chunkNNZ, keyChunkNNZ: b.options.keyChunkNNZ)
        func json(_ object: Any) -> String {
            String(decoding: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
        }
        try db.execute(sql: """
            INSERT INTO pair_maps (run_id, nnz, value_codec, max_abs_error, columns, key_columns, extra_columns, chunk_nnz, key_chunk_nnz)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [run, info.nnz, info.codec.rawValue, json(info.maxAbsError), json(present.map(\.rawValue)),
                             json(info.keyColumns.map(\.rawValue)), json(info.extraColumns), info.chunkNNZ, info.keyChunkNNZ])
        let insert = try db.makeStatement(sql: """
            INSERT INTO pair_chunks (run_id, ordering, seq, head, first_lead, last_lead, nnz, checksum, leads, trails, floats)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for (side, perm) in [(FeatureSide.query, prepared.queryMajor), (.key, prepared.keyMajor)] {
            try b.chunks(side, perm: perm, zstd: zstd) { r in
                try insert.execute(arguments: [run, r.ordering, r.seq, r.head, r.firstLead, r.lastLead, r.nnz, r.checksum,
                                               Data(r.leads), Data(r.trails), Data(r.floats)])
            }
        }
        try db.execute(sql: "UPDATE runs SET updated_at = ? WHERE id = ?", arguments: [Store.now(), run])
        return info
    }
}

/// A pair map validated and sorted in both orderings, ready to be written. Building one touches no
/// file, so a bad map is rejected before a store is created or opened for writing.
public struct PreparedPairMap: @unchecked Sendable {
    let builder: PairMapBuilder
    let queryMajor: [Int32]
    let keyMajor: [Int32]

    public var count: Int { builder.coo.count }

    public init(coo: PairCOO, shape: PairMapShape, options: PairMapOptions = PairMapOptions()) throws {
        builder = try PairMapBuilder(coo: coo, shape: shape, options: options)
        queryMajor = builder.permutation(.query)
        try builder.checkNoDuplicates(queryMajor: queryMajor)
        keyMajor = builder.permutation(.key)
    }
}
