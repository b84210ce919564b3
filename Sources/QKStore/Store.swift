import Foundation
import GRDB
import QKTensor

/// A `.qkdb` store: one SQLite file holding runs, dense tensors, the chunked pair map
/// of each run in both orderings, feature statistics, examples, sequences and vocabulary.
///
/// Opening checks, before trusting anything inside, that the file is SQLite, is not truncated,
/// is a qkdb store, and is not of a newer format, and says which in one line naming the file.
/// Each write method is one transaction, so a crash or kill leaves every earlier state readable.
/// An instance is meant for one thread at a time (it reuses compression contexts).
///
/// Journal: a writer works in WAL mode (readers keep reading while a stage is written) and puts
/// the file back in rollback-journal mode when it closes, so a store at rest is one file that a
/// reader opens with `SQLITE_OPEN_READONLY` and no `-wal`/`-shm` beside it — on read-only media
/// or a read-only directory too. A store still in WAL mode with no `-wal` file (nobody is writing
/// it: SQLite removes the file when the last writer closes) is opened `immutable`, which needs no
/// `-shm` either; with a `-wal` present (a writer at work, or one that crashed) the reader goes
/// through SQLite's WAL index as usual, so it sees the writer's committed state.
public final class Store: @unchecked Sendable {
    public let path: String
    let dbQueue: DatabaseQueue
    let zstd = Zstd()
    /// Per-run facts that queries consult on every call (shape, columns, codec), read once.
    var runCache: [Int64: CachedRun] = [:]
    /// Read-ahead hints for cold chunk reads (read-only stores only; see `PagePrefetcher`).
    var prefetcher: PagePrefetcher?
    /// Prepared statements of the pairs query path (see `hotStatement`), finalized before the connection closes.
    var hotStatements = [Statement?](repeating: nil, count: HotStatement.allCases.count)
    /// The open transaction of `stage`, while one runs.
    var stageDatabase: Database?

    struct CachedRun {
        var shape: PairMapShape
        var pairMap: PairMapInfo?
    }

    public enum Mode: Sendable { case readOnly, readWrite, create }

    /// Opens an existing store (`.readOnly` / `.readWrite`), or opens-or-creates one (`.create`).
    public init(path: String, mode: Mode = .readOnly) throws {
        self.path = path
        let exists = FileManager.default.fileExists(atPath: path)
        if !exists && mode != .create { throw StoreError("\(path): no such store") }
        let walHeader = exists ? try Store.checkFileHeader(path) : false
        var config = Configuration()
        config.readonly = mode == .readOnly
        config.busyMode = .timeout(10)
        config.foreignKeysEnabled = mode != .readOnly   // a reader changes nothing to check
        // Readers get a 16 MiB page cache: room for the catalog, the zone index and a working set
        // of chunks. Measured at 10M pairs, a 64 MiB cache made warm key queries slower (0.28 vs
        // 0.24 ms p50): every page the cache grows by is fresh memory the kernel must fault in and
        // zero, which costs more than re-reading a page from the OS cache. Writers keep SQLite's
        // small default, so a long write spills into the WAL as it goes instead of holding
        // everything until commit.
        if mode == .readOnly {
            config.prepareDatabase { db in
                try db.execute(sql: "PRAGMA cache_size = -16384")
            }
        }
        let quiescentWAL = mode == .readOnly && walHeader && !FileManager.default.fileExists(atPath: path + "-wal")
        do {
            dbQueue = try DatabaseQueue(path: quiescentWAL ? Store.immutableURI(path) : path, configuration: config)
            if exists && mode != .readOnly {
                try dbQueue.writeWithoutTransaction { try $0.execute(sql: "PRAGMA journal_mode = WAL") }
            }
        } catch {
            throw Store.wrap(error, path: path)
        }
        writable = mode != .readOnly
        if exists {
            try checkFormat(readOnly: mode == .readOnly)
        } else {
            do {
                try dbQueue.writeWithoutTransaction { db in
                    // 32 KiB pages hold ~7 chunk rows of 4-6 KB each, so little space is lost to
                    // page fragmentation (~4% more bytes than 64 KiB pages at 10M pairs) and one
                    // read brings in a whole chunk; half the bytes of a 64 KiB page per read made
                    // cold key queries ~15% and warm ones ~8% faster (every fetch copies a page).
                    try db.execute(sql: "PRAGMA page_size = 32768")
                    try db.execute(sql: "PRAGMA journal_mode = WAL")
                    try db.inTransaction {
                        try db.execute(sql: StoreSchema.sql)
                        return .commit
                    }
                }
            } catch {
                try? FileManager.default.removeItem(atPath: path)
                throw Store.wrap(error, path: path)
            }
        }
    }

    deinit {
        hotStatements = []   // statements go before the connection they belong to
        // Back to one file at rest (see the type's comment). Busy (a reader still holds the WAL
        // open) leaves WAL mode on, which readers handle too.
        if writable { try? dbQueue.writeWithoutTransaction { try $0.execute(sql: "PRAGMA journal_mode = DELETE") } }
    }

    /// Whether this instance may write (it then restores rollback-journal mode when it closes).
    private(set) var writable = false
    /// Set while `verify` runs.
    var verifying = false
    /// Runs whose statistics rows matched their manifest (checked once per instance).
    var statisticsChecked = Set<Int64>()

    /// An SQLite URI that opens `path` read-only as immutable: no locks, no `-shm`, no `-wal`.
    static func immutableURI(_ path: String) -> String {
        URL(fileURLWithPath: path).absoluteString + "?mode=ro&immutable=1"
    }

    /// Rejects files that are not SQLite or are shorter than their own header says; returns
    /// whether the header says WAL mode (file format bytes 18–19 = 2).
    @discardableResult
    static func checkFileHeader(_ path: String) throws -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError("\(path): cannot be read") }
        defer { close(fd) }
        // The OS would answer a first read at offset 0 with a large read-ahead (here up to 8 MiB),
        // which a cold query then waits behind. Ask for exactly the first page (up to 64 KiB,
        // SQLite's largest) instead: SQLite's own read of it next finds it cached.
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM)
        _ = posix_fadvise(fd, 0, 65536, POSIX_FADV_WILLNEED)
        var header = [UInt8](repeating: 0, count: 100)
        let got = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 100, 0) }
        if got != 100 { header = [] }
        guard header.count == 100, header.starts(with: Array("SQLite format 3\0".utf8)) else {
            throw StoreError("\(path): not a qkdb store (not an SQLite database file)")
        }
        let rawPageSize = Int(header[16]) << 8 | Int(header[17])
        let pageSize = rawPageSize == 1 ? 65536 : rawPageSize
        let pages = header[28..<32].reduce(0) { $0 << 8 | Int($1) }
        // stat(2), not FileManager's attributes: those also look up the owner's user and group names.
        func fileSize(_ p: String) -> Int {
            var st = stat()
            return stat(p, &st) == 0 ? Int(st.st_size) : 0
        }
        let size = fileSize(path)
        let walSize = fileSize(path + "-wal")
        guard pageSize >= 512, pageSize.nonzeroBitCount == 1 else { throw StoreError("\(path): damaged SQLite header (page size \(rawPageSize))") }
        if walSize == 0 && (size % pageSize != 0 || size < pages * pageSize) {
            throw StoreError("\(path): truncated (\(size) bytes, its header describes \(pages * pageSize))")
        }
        return header[18] == 2 && header[19] == 2
    }

    /// Checks the meta table (a qkdb store, of a format this build reads) in one read, and on a
    /// read-only store sets up the page prefetcher from the same look at `sqlite_schema`.
    private func checkFormat(readOnly: Bool) throws {
        let version: String?
        let application: String?
        do {
            (version, application, prefetcher) = try dbQueue.read { db in
                var roots: [String: Int] = [:]
                var zoneSQL = ""
                let schema = try Row.fetchCursor(db, sql: """
                    SELECT name, rootpage, sql FROM sqlite_schema
                    WHERE tbl_name IN ('meta', 'runs', 'pair_maps', 'pair_chunks')
                    """)
                while let row = try schema.next() {
                    if let name = String.fromDatabaseValue(row[0]), let root = Int.fromDatabaseValue(row[1]) { roots[name] = root }
                    if String.fromDatabaseValue(row[0]) == "pair_chunks_zone" { zoneSQL = String.fromDatabaseValue(row[2]) ?? "" }
                }
                guard roots["meta"] != nil else { return (nil, nil, nil) }
                // The zone-index hints assume format 2's column order; a format-1 store gets none.
                let zoneRoot = zoneSQL.contains("(run_id, head, ordering, last_lead, first_lead)") ? roots["pair_chunks_zone"] : nil
                let prefetcher = readOnly ? Store.makePrefetcher(path: path, roots: roots, zoneRoot: zoneRoot, db) : nil
                var meta: [String: String] = [:]
                let rows = try Row.fetchCursor(db, sql: "SELECT key, value FROM meta WHERE key IN ('format_version', 'application')")
                while let row = try rows.next() {
                    if let key = String.fromDatabaseValue(row[0]), let value = String.fromDatabaseValue(row[1]) { meta[key] = value }
                }
                return (meta["format_version"], meta["application"], prefetcher)
            }
        } catch {
            throw Store.wrap(error, path: path)
        }
        guard application == "qkdb", let version else { throw StoreError("\(path): not a qkdb store (an SQLite database without qkdb's meta table)") }
        guard let v = Int(version) else { throw StoreError("\(path): damaged store (format version \(JSONNumber.quoted(version)))") }
        if v > StoreSchema.formatVersion {
            throw StoreError("\(path): store format version \(v) is newer than this qkdb reads (\(StoreSchema.formatVersion)); upgrade qkdb")
        }
        if v < 1 { throw StoreError("\(path): damaged store (format version \(v))") }
    }

    /// One line naming the file for any SQLite or GRDB failure (`verifying`: from `verify` itself,
    /// which must not tell the user to run `qkdb verify`).
    static func wrap(_ error: Error, path: String, verifying: Bool = false) -> Error {
        if error is StoreError { return error }
        if let e = error as? DatabaseError {
            let message = (e.message ?? "SQLite error \(e.resultCode.rawValue)").split(whereSeparator: \.isNewline).joined(separator: " ")
            switch e.resultCode {
            case .SQLITE_NOTADB: return StoreError("\(path): not a qkdb store (\(message))")
            case .SQLITE_CORRUPT: return StoreError("\(path): the SQLite file is corrupt (\(message))" + (verifying ? "" : "; run `qkdb verify`"))
            case .SQLITE_READONLY: return StoreError("\(path): cannot write (\(message))")
            default: return StoreError("\(path): \(message)")
            }
        }
        return StoreError("\(path): \(error)")
    }

    /// Runs `body` in a read transaction (one consistent snapshot), with errors naming the file.
    /// Inside `stage` it reads through the stage's transaction (and so sees its writes).
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        if let db = stageDatabase { return try body(db) }
        do { return try dbQueue.read(body) } catch { throw Store.wrap(error, path: path) }
    }

    /// Runs `body` in one write transaction: all of it lands, or none of it.
    /// Inside `stage` it joins the stage's transaction instead.
    func write<T>(_ body: (Database) throws -> T) throws -> T {
        if let db = stageDatabase { return try body(db) }
        do {
            return try dbQueue.write { db in
                let result = try body(db)
                try Store.writeManifests(db)   // in the same transaction (see StoreManifest)
                return result
            }
        } catch { throw Store.wrap(error, path: path) }
    }

    /// Runs every store call made inside `body` as ONE write transaction, so a pipeline stage
    /// (a run's tensors, or its pair map with statistics, examples, sequences and metrics) lands
    /// whole or not at all: a crash or kill mid-stage leaves the store exactly as before it.
    /// Calls must come from the calling thread; stages do not nest.
    public func stage<T>(_ body: () throws -> T) throws -> T {
        precondition(stageDatabase == nil, "Store.stage does not nest")
        let savedCache = runCache
        do {
            return try dbQueue.write { db in
                stageDatabase = db
                defer { stageDatabase = nil }
                let result = try body()
                try Store.writeManifests(db)
                return result
            }
        } catch {
            runCache = savedCache   // a rolled-back stage must not leave cached facts behind
            throw Store.wrap(error, path: path)
        }
    }

    static func now() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }
}
