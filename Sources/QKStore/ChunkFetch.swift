import GRDB
import GRDBSQLite

/// The one statement on the hot path of every pairs query, stepped through SQLite's C API:
/// GRDB's row decoding is general (and allocates per column), this reads the chunk's ten
/// columns straight into a record. Everything here still goes through GRDB's connection and
/// statement cache; only the row read is hand-rolled.
extension Store {
    /// The first chunk of one ordering and head whose zone reaches `lead` (the `chunks` fast path).
    func firstChunk(run: Int64, side: FeatureSide, head: Int, lead: Int, _ db: Database) throws -> PairChunkRecord? {
        let statement = try db.cachedStatement(sql: """
            SELECT \(Store.chunkColumns) FROM pair_chunks
            WHERE run_id = ? AND ordering = ? AND head = ? AND last_lead >= ? ORDER BY last_lead, first_lead LIMIT 1
            """)
        let s = statement.sqliteStatement
        sqlite3_reset(s)
        sqlite3_clear_bindings(s)
        sqlite3_bind_int64(s, 1, run)
        sqlite3_bind_int64(s, 2, Int64(side.ordering))
        sqlite3_bind_int64(s, 3, Int64(head))
        sqlite3_bind_int64(s, 4, Int64(lead))
        defer { sqlite3_reset(s) }
        let rc = sqlite3_step(s)
        if rc == SQLITE_DONE { return nil }
        guard rc == SQLITE_ROW else {
            throw Store.wrap(DatabaseError(resultCode: ResultCode(rawValue: rc), message: String(cString: sqlite3_errmsg(db.sqliteConnection))), path: path)
        }
        let what = "\(path): a chunk row of run \(run)"
        func int(_ i: Int32) throws -> Int64 {
            guard sqlite3_column_type(s, i) == SQLITE_INTEGER else { throw StoreError("\(what): damaged column \(i)") }
            return sqlite3_column_int64(s, i)
        }
        func blob(_ i: Int32) throws -> [UInt8] {
            guard sqlite3_column_type(s, i) == SQLITE_BLOB else { throw StoreError("\(what): damaged or missing blob \(i)") }
            let n = Int(sqlite3_column_bytes(s, i))
            guard n > 0, let p = sqlite3_column_blob(s, i) else { return [] }
            return [UInt8](UnsafeRawBufferPointer(start: p, count: n))
        }
        return PairChunkRecord(ordering: Int(try int(0)), seq: Int(try int(1)), head: Int(try int(2)), firstLead: Int(try int(3)),
                               lastLead: Int(try int(4)), nnz: Int(try int(5)), checksum: try int(6),
                               leads: try blob(7), trails: try blob(8), floats: try blob(9))
    }
}
