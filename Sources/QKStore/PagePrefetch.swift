import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// Read-ahead hints for SQLite pages a query is about to need, so that cold reads overlap.
///
/// SQLite reads one page at a time, waiting for each: a key-feature query that fetches ten
/// query-major chunks from disk pays ten disk round trips one after another (~0.1 ms each for a
/// 64 KiB page here). The disk itself serves several outstanding requests at once, so telling the
/// kernel about all ten pages first (`posix_fadvise(WILLNEED)`, which starts the reads and returns)
/// makes SQLite's own reads that follow find them in the OS cache: measured, ten cold 64 KiB reads
/// take ~1.0 ms one by one and ~0.6 ms after hints.
///
/// To name the page of a chunk row, this walks the `pair_chunks` table's b-tree by rowid through
/// its interior pages (SQLite's documented file format: an interior table page lists child page
/// numbers with the largest rowid each child holds). Interior pages are few (one 64 KiB root page
/// covers ~7,000 leaves) and are parsed once per open store. Everything here is advisory: a page
/// it cannot parse, a stale page (the WAL may hold a newer copy), or a failing call only means no
/// hint, never a wrong answer, because the rows are still read through SQLite.
final class PagePrefetcher {
    private let fd: Int32
    private let pageSize: Int
    private let rootPage: Int
    private let pageCount: Int
    /// Interior pages read so far (searched in place: a cold query cannot afford parsing thousands of cells).
    private var interior: [Int: InteriorPage] = [:]
    /// Interior levels above the leaves, learned from the first complete descent (all leaves of a
    /// b-tree sit at the same depth, so later descents stop one level short of reading the leaf).
    private var interiorDepth: Int?

    init?(path: String, rootPage: Int, pageSize: Int) {
        guard rootPage > 1, pageSize >= 512, pageSize <= 65536 else { return nil }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { close(fd); return nil }
        self.fd = fd
        self.pageSize = pageSize
        self.rootPage = rootPage
        self.pageCount = Int(st.st_size) / pageSize
    }

    deinit { close(fd) }

    /// Tells the kernel to start reading the given pages (1-based page numbers) now.
    func willNeed(pages: [Int]) {
        for p in Set(pages) where p >= 1 && p <= pageCount {
            _ = posix_fadvise(fd, off_t((p - 1) * pageSize), off_t(pageSize), POSIX_FADV_WILLNEED)
        }
    }

    /// Starts reading the leaf pages that hold these rowids of the table.
    func willNeed(rowids: [Int64]) {
        willNeed(pages: leafPages(for: rowids, hint: true))
    }

    /// The leaf pages holding these rowids (those it can find). The descent goes one level at a
    /// time; with `hint`, each level's unread pages are hinted before they are parsed, so even the
    /// first call (which has to read down to a leaf once to learn the tree's depth) waits on one
    /// overlapped batch per level.
    func leafPages(for rowids: [Int64], hint: Bool = false) -> [Int] {
        var frontier = rowids.map { (rowid: $0, page: rootPage) }
        var leaves: [Int] = []
        var level = 0
        while !frontier.isEmpty && level < 16 {
            if let depth = interiorDepth, level >= depth { return leaves + frontier.map(\.page) }
            if hint { willNeed(pages: frontier.filter { interior[$0.page] == nil }.map(\.page)) }
            var next: [(rowid: Int64, page: Int)] = []
            for entry in frontier {
                guard let node = interiorPage(entry.page) else { continue }
                guard let node else {
                    // A leaf: all leaves of a b-tree sit at the same depth, learned here once.
                    if interiorDepth == nil { interiorDepth = level }
                    leaves.append(entry.page)
                    continue
                }
                if let child = node.child(for: entry.rowid) { next.append((entry.rowid, child)) }
            }
            frontier = next
            level += 1
        }
        return leaves
    }

    /// nil: the page cannot be read or is not a table b-tree page; .some(nil): a table leaf;
    /// otherwise the interior page.
    private func interiorPage(_ page: Int) -> InteriorPage?? {
        if let node = interior[page] { return .some(node) }
        guard page >= 1, page <= pageCount else { return nil }
        var bytes = [UInt8](repeating: 0, count: pageSize)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, pageSize, off_t((page - 1) * pageSize)) }
        guard n == pageSize else { return nil }
        let header = page == 1 ? 100 : 0
        switch bytes[header] {
        case 0x0D: return .some(nil)
        case 0x05: break
        default: return nil
        }
        guard let node = InteriorPage(bytes: bytes, header: header) else { return nil }
        interior[page] = node
        return .some(node)
    }
}

/// An interior page of a table b-tree: cells of (child page, largest rowid in that child) in rowid
/// order, plus the right-most child for larger rowids. Searched in place.
private struct InteriorPage {
    let bytes: [UInt8]
    let header: Int
    let count: Int
    let rightmost: Int

    init?(bytes: [UInt8], header: Int) {
        self.bytes = bytes; self.header = header
        count = Int(bytes[header + 3]) << 8 | Int(bytes[header + 4])
        rightmost = Self.be32(bytes, header + 8)
        guard header + 12 + 2 * count <= bytes.count else { return nil }
    }

    static func be32(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }

    /// Cell `i` as (child, key), or nil when it points outside the page.
    func cell(_ i: Int) -> (child: Int, key: Int64)? {
        let at = Int(bytes[header + 12 + 2 * i]) << 8 | Int(bytes[header + 13 + 2 * i])
        guard at + 5 <= bytes.count else { return nil }
        // The key is a SQLite varint: up to 8 bytes of 7 bits, then a 9th of 8 bits.
        var key: Int64 = 0
        var j = at + 4
        for used in 1...9 {
            guard j < bytes.count else { return nil }
            let b = bytes[j]; j += 1
            if used == 9 { key = (key << 8) | Int64(b); break }
            key = (key << 7) | Int64(b & 0x7F)
            if b & 0x80 == 0 { break }
        }
        return (Self.be32(bytes, at), key)
    }

    /// The child page that holds `rowid` (the first cell whose key is at least it, else the right-most).
    func child(for rowid: Int64) -> Int? {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            guard let c = cell(mid) else { return nil }
            if c.key < rowid { lo = mid + 1 } else { hi = mid }
        }
        return lo < count ? cell(lo)?.child : rightmost
    }
}

extension Store {
    /// Builds the open store's prefetcher and hints the root pages every pairs query reads right
    /// after opening (the catalog tables, the chunk table and its zone index), so a cold open reads
    /// them together instead of one by one. nil when the file cannot be read that way: queries
    /// then read without hints.
    static func makePrefetcher(path: String, roots: [String: Int], _ db: Database) -> PagePrefetcher? {
        guard let size = try? Int.fetchOne(db, sql: "PRAGMA page_size"), let table = roots["pair_chunks"],
              let prefetcher = PagePrefetcher(path: path, rootPage: table, pageSize: size) else { return nil }
        prefetcher.willNeed(pages: roots.values.filter { $0 > 1 })
        return prefetcher
    }
}
