import GRDB
import GRDBSQLite

/// The statements on the hot path of every pairs query, stepped through SQLite's C API:
/// GRDB's row decoding is general (and allocates per column), these read the chunk's ten
/// columns straight into a record. Everything here still goes through GRDB's connection and
/// statement cache; only the row read is hand-rolled.
extension Store {
    /// The first chunk of one ordering and head whose zone reaches `lead` (the `chunks` fast path).
    func firstChunk(run: Int64, side: FeatureSide, head: Int, lead: Int, _ db: Database) throws -> PairChunkRecord? {
        let statement = try hotStatement(.firstChunk, db)
        return try stepChunk(statement, run: run, [run, Int64(side.ordering), Int64(head), Int64(lead)], db)
    }

    /// The chunk stored in table row `rowid` (found earlier with `chunkLocation`).
    func chunk(rowid: Int64, run: Int64, _ db: Database) throws -> PairChunkRecord? {
        let statement = try hotStatement(.chunkByRowid, db)
        return try stepChunk(statement, run: run, [rowid], db)
    }

    /// Where the first chunk of one ordering and head whose zone reaches `lead` lives, read from the
    /// zone-map index alone (it covers these columns): no chunk is read, so a caller can locate all
    /// the chunks it needs, hint their pages to the OS, and only then read them.
    func chunkLocation(run: Int64, side: FeatureSide, head: Int, lead: Int, _ db: Database) throws -> (rowid: Int64, firstLead: Int, lastLead: Int)? {
        let statement = try hotStatement(.chunkLocation, db)
        let s = statement.sqliteStatement
        try bind(s, [run, Int64(side.ordering), Int64(head), Int64(lead)])
        defer { sqlite3_reset(s) }
        guard try step(s, db) else { return nil }
        for i in Int32(0)..<3 where sqlite3_column_type(s, i) != SQLITE_INTEGER {
            throw StoreError("\(path): a chunk zone of run \(run) is damaged")
        }
        return (sqlite3_column_int64(s, 0), Int(sqlite3_column_int64(s, 1)), Int(sqlite3_column_int64(s, 2)))
    }

    /// The statements every pairs query steps, prepared once per open store and kept: GRDB's
    /// statement cache would hash and compare each one's SQL text on every call (~20 per key query).
    enum HotStatement: Int, CaseIterable {
        case firstChunk, chunkByRowid, chunkLocation

        var sql: String {
            switch self {
            case .firstChunk:
                return """
                    SELECT \(Store.chunkColumns) FROM pair_chunks
                    WHERE run_id = ? AND ordering = ? AND head = ? AND last_lead >= ? ORDER BY last_lead, first_lead LIMIT 1
                    """
            case .chunkByRowid:
                return "SELECT \(Store.chunkColumns) FROM pair_chunks WHERE rowid = ?"
            case .chunkLocation:
                return """
                    SELECT rowid, first_lead, last_lead FROM pair_chunks
                    WHERE run_id = ? AND ordering = ? AND head = ? AND last_lead >= ? ORDER BY last_lead, first_lead LIMIT 1
                    """
            }
        }
    }

    func hotStatement(_ which: HotStatement, _ db: Database) throws -> Statement {
        if let s = hotStatements[which.rawValue] { return s }
        let s = try db.makeStatement(sql: which.sql)
        hotStatements[which.rawValue] = s
        return s
    }

    private func bind(_ s: OpaquePointer?, _ values: [Int64]) throws {
        sqlite3_reset(s)
        sqlite3_clear_bindings(s)
        for (i, v) in values.enumerated() { sqlite3_bind_int64(s, Int32(i + 1), v) }
    }

    /// Steps once: true on a row, false when there is none, throws (naming the file) on an error.
    private func step(_ s: OpaquePointer?, _ db: Database) throws -> Bool {
        let rc = sqlite3_step(s)
        if rc == SQLITE_DONE { return false }
        guard rc == SQLITE_ROW else {
            throw Store.wrap(DatabaseError(resultCode: ResultCode(rawValue: rc), message: String(cString: sqlite3_errmsg(db.sqliteConnection))), path: path)
        }
        return true
    }

    private func stepChunk(_ statement: Statement, run: Int64, _ arguments: [Int64], _ db: Database) throws -> PairChunkRecord? {
        let s = statement.sqliteStatement
        try bind(s, arguments)
        defer { sqlite3_reset(s) }
        guard try step(s, db) else { return nil }
        func int(_ i: Int32) throws -> Int64 {
            guard sqlite3_column_type(s, i) == SQLITE_INTEGER else { throw StoreError("\(path): a chunk row of run \(run): damaged column \(i)") }
            return sqlite3_column_int64(s, i)
        }
        func blob(_ i: Int32) throws -> [UInt8] {
            guard sqlite3_column_type(s, i) == SQLITE_BLOB else { throw StoreError("\(path): a chunk row of run \(run): damaged or missing blob \(i)") }
            let n = Int(sqlite3_column_bytes(s, i))
            guard n > 0, let p = sqlite3_column_blob(s, i) else { return [] }
            return [UInt8](UnsafeRawBufferPointer(start: p, count: n))
        }
        return PairChunkRecord(ordering: Int(try int(0)), seq: Int(try int(1)), head: Int(try int(2)), firstLead: Int(try int(3)),
                               lastLead: Int(try int(4)), nnz: Int(try int(5)), checksum: try int(6),
                               leads: try blob(7), trails: try blob(8), floats: try blob(9))
    }
}
