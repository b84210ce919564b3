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
    func willNeed<Pages: Sequence<Int>>(pages: Pages) {
        for p in Set(pages) where p >= 1 && p <= pageCount {
            _ = posix_fadvise(fd, off_t((p - 1) * pageSize), off_t(pageSize), POSIX_FADV_WILLNEED)
        }
    }

    /// Like `willNeed(pages:)`, but first asks whether each page is already in the OS cache
    /// (a one-byte `preadv2(RWF_NOWAIT)`, which fails instead of waiting for the disk) and hints
    /// only those that are not: on a warm file a hint costs a page-cache walk for nothing, about
    /// five times the price of the question.
    func willNeedUncached(pages: [Int]) {
        willNeed(pages: Set(pages).filter { $0 >= 1 && $0 <= pageCount && !isCached($0) })
    }

    /// Whether page `p` is in the OS cache (false when it cannot tell).
    func isCached(_ p: Int) -> Bool {
        guard let probe = Self.preadv2, p >= 1 && p <= pageCount else { return false }
        var byte: UInt8 = 0
        return withUnsafeMutableBytes(of: &byte) { b in
            var iov = iovec(iov_base: b.baseAddress, iov_len: 1)
            return probe(fd, &iov, 1, off_t((p - 1) * pageSize), Self.rwfNoWait) == 1
        }
    }

    /// glibc's preadv2, looked up at run time (Swift's Glibc module does not declare it); nil
    /// where the C library lacks it, and then every page is hinted.
    private typealias PReadV2 = @convention(c) (Int32, UnsafePointer<iovec>?, Int32, off_t, Int32) -> Int
    private static let preadv2: PReadV2? = dlsym(nil, "preadv2").map { unsafeBitCast($0, to: PReadV2.self) }
    /// RWF_NOWAIT (linux/fs.h): fail with EAGAIN rather than block on I/O.
    private static let rwfNoWait: Int32 = 0x0000_0008

    /// The zone index's root page (format 2 column order: run, head, ordering, last_lead, ...), if known.
    var zoneRoot: Int?

    /// Hints the zone-index pages below the root that hold the entries between (run, head,
    /// ordering, lead) keys `from` and `through`: a query calls this first, so the index page its
    /// lookups need loads while it does its CPU work (catalog, statements) instead of after.
    /// Only the root is read (it was hinted at open); its children are hinted, not read, so
    /// nothing here waits on the disk.
    func willNeedZone(from lo: [Int64], through hi: [Int64]) {
        guard let zoneRoot, zoneRoot <= pageCount else { return }
        if zoneRootPage == nil {
            var bytes = [UInt8](repeating: 0, count: pageSize)
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, pageSize, off_t((zoneRoot - 1) * pageSize)) }
            guard n == pageSize, let node = IndexInteriorPage(bytes: bytes, header: zoneRoot == 1 ? 100 : 0) else { return }
            zoneRootPage = node
        }
        guard let node = zoneRootPage else { return }
        willNeedUncached(pages: node.children(from: lo, through: hi))
    }
    /// The zone index's root page, read on first use.
    private var zoneRootPage: IndexInteriorPage?

    /// When the table's root is an interior page with only a few children that are interior
    /// pages themselves (a table of thousands of leaves), starts reading them all: every chunk
    /// lookup passes through one of them, so the first one need not wait its own turn on disk.
    func hintUpperLevel() {
        // Few children in a big file: they are interior pages (a root page alone points at
        // thousands of leaves), not a handful of leaves of a small table.
        guard pageCount > 1024, let root = interiorPage(rootPage), let root, root.count < 16 else { return }
        let children = (0..<root.count).compactMap { root.cell($0)?.child } + [root.rightmost]
        willNeed(pages: children)
    }

    /// Starts reading the leaf pages that hold these rowids of the table. With `wait` false it
    /// reads nothing that is not cached here already: it hints as deep as it knows the tree and
    /// returns (for a hint issued just before other work, which must not wait on the disk).
    func willNeed(rowids: [Int64], wait: Bool = true) {
        willNeedUncached(pages: leafPages(for: rowids, hint: true, wait: wait))
    }

    /// The leaf pages holding these rowids (those it can find). The descent goes one level at a
    /// time. With `hint`, each level's unread pages are hinted before any is read. While the
    /// tree's depth is unknown (the first call on an open store), only the first page of a level
    /// is read to tell leaf from interior: if it is a leaf, the whole level is leaves (all leaves
    /// of a b-tree sit at the same depth) and is returned unread.
    func leafPages(for rowids: [Int64], hint: Bool = false, wait: Bool = true) -> [Int] {
        var frontier = rowids.map { (rowid: $0, page: rootPage) }
        var level = 0
        while !frontier.isEmpty && level < 16 {
            if let depth = interiorDepth, level >= depth { return frontier.map(\.page) }
            let unread = frontier.filter { interior[$0.page] == nil }.map(\.page)
            if hint { willNeed(pages: unread) }
            if !wait && !unread.allSatisfy(isCached) { return [] }
            if interiorDepth == nil, let first = frontier.first {
                guard let node = interiorPage(first.page) else { return [] }
                if node == nil {
                    interiorDepth = level
                    return frontier.map(\.page)
                }
            }
            var next: [(rowid: Int64, page: Int)] = []
            for entry in frontier {
                guard let node = interiorPage(entry.page), let node, let child = node.child(for: entry.rowid) else { continue }
                next.append((entry.rowid, child))
            }
            frontier = next
            level += 1
        }
        return []
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

/// What table and index interior pages share: the page bytes, the b-tree header's cell count and
/// right-most child, and the cell pointer array right after the 12-byte header.
private struct InteriorPageLayout {
    let bytes: [UInt8]
    let header: Int
    let count: Int
    let rightmost: Int

    init?(bytes: [UInt8], header: Int) {
        guard header + 12 <= bytes.count else { return nil }
        self.bytes = bytes; self.header = header
        count = Int(bytes[header + 3]) << 8 | Int(bytes[header + 4])
        rightmost = Self.be32(bytes, header + 8)
        guard header + 12 + 2 * count <= bytes.count else { return nil }
    }

    static func be32(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }

    /// Where cell `i` starts in the page.
    func cellStart(_ i: Int) -> Int { Int(bytes[header + 12 + 2 * i]) << 8 | Int(bytes[header + 13 + 2 * i]) }
}

/// An interior page of a table b-tree: cells of (child page, largest rowid in that child) in rowid
/// order, plus the right-most child for larger rowids. Searched in place.
private struct InteriorPage {
    let page: InteriorPageLayout
    var count: Int { page.count }
    var rightmost: Int { page.rightmost }

    init?(bytes: [UInt8], header: Int) {
        guard let page = InteriorPageLayout(bytes: bytes, header: header) else { return nil }
        self.page = page
    }

    /// Cell `i` as (child, key), or nil when it points outside the page.
    func cell(_ i: Int) -> (child: Int, key: Int64)? {
        let at = page.cellStart(i), bytes = page.bytes
        guard at + 5 <= bytes.count else { return nil }
        var j = at + 4
        guard let key = sqliteVarint(bytes, &j) else { return nil }
        return (InteriorPageLayout.be32(bytes, at), key)
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
    /// after opening (the catalog tables, the chunk table and its indexes: `roots` maps each to
    /// its root page), so a cold open reads them together instead of one by one. nil when the file cannot be read that way: queries
    /// then read without hints.
    static func makePrefetcher(path: String, roots: [String: Int], zoneRoot: Int?, _ db: Database) -> PagePrefetcher? {
        guard let size = try? Int.fetchOne(db, sql: "PRAGMA page_size"), let table = roots["pair_chunks"],
              let prefetcher = PagePrefetcher(path: path, rootPage: table, pageSize: size) else { return nil }
        prefetcher.zoneRoot = zoneRoot
        prefetcher.willNeed(pages: roots.values.filter { $0 > 1 })
        prefetcher.hintUpperLevel()
        return prefetcher
    }
}

/// An interior page of an index b-tree (type 0x02): cells of (left child, key record) in key
/// order, plus the right-most child. Only the leading integer columns of each key are decoded.
private struct IndexInteriorPage {
    let page: InteriorPageLayout
    var count: Int { page.count }
    var rightmost: Int { page.rightmost }

    init?(bytes: [UInt8], header: Int) {
        guard header < bytes.count, bytes[header] == 0x02, let page = InteriorPageLayout(bytes: bytes, header: header) else { return nil }
        self.page = page
    }

    private func varint(_ i: inout Int) -> Int64? { sqliteVarint(page.bytes, &i) }

    /// Cell `i`: its left child and the first `columns` integer values of its key (nil if damaged
    /// or not integers).
    func cell(_ i: Int, columns: Int) -> (child: Int, key: [Int64])? {
        let bytes = page.bytes
        var at = page.cellStart(i)
        guard at + 4 < bytes.count else { return nil }
        let child = InteriorPageLayout.be32(bytes, at)
        at += 4
        guard varint(&at) != nil else { return nil }          // payload size
        let recordStart = at
        guard let headerSize = varint(&at) else { return nil }
        var types: [Int64] = []
        while types.count < columns && at < recordStart + Int(headerSize) {
            guard let t = varint(&at) else { return nil }
            types.append(t)
        }
        guard types.count == columns else { return nil }
        var value = recordStart + Int(headerSize)
        var key: [Int64] = []
        for t in types {
            let width: Int
            switch t {
            case 8: key.append(0); continue
            case 9: key.append(1); continue
            case 1, 2, 3, 4: width = Int(t)
            case 5: width = 6
            case 6: width = 8
            default: return nil
            }
            guard value + width <= bytes.count else { return nil }
            var v = Int64(Int8(bitPattern: bytes[value]))       // sign from the first byte
            for j in 1..<width { v = (v << 8) | Int64(bytes[value + j]) }
            key.append(v)
            value += width
        }
        return (child, key)
    }

    /// The children whose key ranges meet [lo, hi] (compared on lo.count leading columns).
    func children(from lo: [Int64], through hi: [Int64]) -> [Int] {
        var out: [Int] = []
        for i in 0..<count {
            guard let c = cell(i, columns: lo.count) else { return [] }
            // Child i holds keys below cell i's key: it meets the range unless the key is below lo.
            if c.key.lexicographicallyPrecedes(lo) { continue }
            out.append(c.child)
            if !c.key.lexicographicallyPrecedes(hi) && c.key != hi { return out }
        }
        out.append(rightmost)
        return out
    }
}

/// A SQLite varint at `i` (advanced past it): up to 8 bytes of 7 bits each, then a 9th of all 8.
/// nil when it runs off the page.
private func sqliteVarint(_ bytes: [UInt8], _ i: inout Int) -> Int64? {
    var v: Int64 = 0
    for used in 1...9 {
        guard i < bytes.count else { return nil }
        let b = bytes[i]; i += 1
        if used == 9 { return (v << 8) | Int64(b) }
        v = (v << 7) | Int64(b & 0x7F)
        if b & 0x80 == 0 { return v }
    }
    return v
}
