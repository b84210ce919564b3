import Foundation
import GRDB
import XCTest
@testable import QKStore

/// The format-2 layout pieces: float planes kept raw or compressed, format-1 stores still read
/// exactly, and the page hints naming the right b-tree leaf for every chunk row.
final class StoreFormatTests: XCTestCase {
    /// Three columns of 256 values: noise (raw planes), a constant (compressed planes) and a
    /// few levels (compressed high bytes) — so one blob mixes both kinds of plane.
    private func mixedColumns() -> [[Float]] {
        var rng = StoreTestSupport.Rng(state: 9)
        let n = 256
        return [(0..<n).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0x3FFF_FFFF) },
                [Float](repeating: 1, count: n),
                (0..<n).map { _ in rng.coarse() }]
    }

    func testFloatPlanesRoundTripInBothLayoutsAndRejectDamage() throws {
        let zstd = Zstd()
        let columns = mixedColumns()
        let n = columns[0].count
        let blob = PairChunkEncoder(zstd: zstd, codec: .f32).encodeFloats(columns.map { $0[...] })
        XCTAssertEqual(blob.first, FloatPlanes.tag)
        let mask = UInt16(blob[1]) | UInt16(blob[2]) << 8
        XCTAssertNotEqual(mask & 0b1111, 0, "the noise column's low planes should be raw")
        XCTAssertEqual(mask & 0b1111_0000, 0, "the constant column's planes should be compressed")
        var shuffled: [UInt8] = []
        for c in columns { shuffled += c.withUnsafeBytes { ByteShuffle.shuffle($0, width: 4) } }
        let format1 = zstd.compress(shuffled)
        for stored in [blob, format1] {
            let planes = try FloatPlanes(stored, planeCount: 12, nnz: n, zstd: zstd, what: "test")
            XCTAssertEqual(planes.allPlanes(), shuffled)
            for e in [0, 1, 77, n - 1] {
                for c in 0..<3 {
                    XCTAssertEqual(Float(bitPattern: planes.element(e, planes: (4 * c)..<(4 * c + 4))).bitPattern, columns[c][e].bitPattern)
                }
            }
        }
        XCTAssertThrowsError(try FloatPlanes(Array(blob.dropLast()), planeCount: 12, nnz: n, zstd: zstd, what: "chunk 3")) {
            XCTAssertTrue("\($0)".hasPrefix("chunk 3: float column blob is damaged"), "\($0)")
        }
        XCTAssertThrowsError(try FloatPlanes(blob + [0], planeCount: 12, nnz: n, zstd: zstd, what: "chunk 3"))
        XCTAssertThrowsError(try FloatPlanes([FloatPlanes.tag], planeCount: 12, nnz: n, zstd: zstd, what: "chunk 3"))
        XCTAssertThrowsError(try FloatPlanes(Array(blob.prefix(8)), planeCount: 12, nnz: n, zstd: zstd, what: "chunk 3"))
    }

    /// A store rewritten into format 1 (the old zone index, one zstd frame of floats per chunk,
    /// meta saying 1) answers every query exactly as before and verifies clean.
    func testFormat1StoresAreStillReadExactly() throws {
        var rng = StoreTestSupport.Rng(state: 5)
        let shape = PairMapShape(nHead: 2, dQuery: 30, dKey: 25)
        let coo = StoreTestSupport.randomMap(&rng, shape: shape, n: 700, columns: PairColumn.allCases)
        let path = StoreTestSupport.temporaryStorePath(self)
        let store = try Store(path: path, mode: .create)
        let run = try store.createRun(RunSpec(name: "old", kind: .imported, nHead: shape.nHead, dQuery: shape.dQuery, dKey: shape.dKey))
        let info = try store.putPairMap(run: run, coo, options: PairMapOptions(chunkNNZ: 64, keyChunkNNZ: 40))
        let zstd = Zstd()
        try DatabaseQueue(path: path).write { db in
            try db.execute(sql: """
                DROP INDEX pair_chunks_zone;
                CREATE INDEX pair_chunks_zone ON pair_chunks (run_id, ordering, head, last_lead, first_lead);
                UPDATE meta SET value = '1' WHERE key = 'format_version';
                DELETE FROM meta WHERE key LIKE 'manifest.%';
                """)
            let rows = try Row.fetchAll(db, sql: "SELECT rowid, \(Store.chunkColumns) FROM pair_chunks")
            for row in rows {
                var record = PairChunkRecord(ordering: row[1], seq: row[2], head: row[3], firstLead: row[4], lastLead: row[5], nnz: row[6],
                                             checksum: row[7], leads: [UInt8](row[8] as Data), trails: [UInt8](row[9] as Data),
                                             floats: [UInt8](row[10] as Data))
                let codec = record.ordering == 0 ? info.codec : .bf16
                let planes = codec.byteWidth * info.storedColumns(record.ordering == 0 ? .query : .key).count
                record.floats = zstd.compress(try FloatPlanes(record.floats, planeCount: planes, nnz: record.nnz, zstd: zstd, what: "rewrite").allPlanes())
                XCTAssertNotEqual(record.floats.first, FloatPlanes.tag)
                record.checksum = record.computeChecksum()
                try db.execute(sql: "UPDATE pair_chunks SET floats = ?, checksum = ? WHERE rowid = ?",
                               arguments: [Data(record.floats), record.checksum, row[0] as Int64])
            }
        }
        let reader = try Store(path: path)
        for side in FeatureSide.allCases {
            for feature in 0..<shape.extent(side) {
                for (order, top, ascending) in [(PairColumn.importance, 10, false), (.value, 3, true), (.meanContribution, 0, false)] {
                    let q = PairQuery(side: side, feature: feature, head: feature % 3 == 0 ? nil : feature % 2, top: top, order: order, ascending: ascending)
                    XCTAssertEqual(try reader.pairs(run: run, q), StoreTestSupport.expectedPairs(coo, nHead: shape.nHead, q), "\(q)")
                }
            }
        }
        let report = try reader.verify()
        XCTAssertTrue(report.isClean, "\(report.problems)")
        // A new pair map written into it is in format 2, so the store now says so.
        let writer = try Store(path: path, mode: .readWrite)
        let run2 = try writer.createRun(RunSpec(name: "new", kind: .imported, nHead: shape.nHead, dQuery: shape.dQuery, dKey: shape.dKey))
        try writer.putPairMap(run: run2, coo)
        let version = try DatabaseQueue(path: path).read { try String.fetchOne($0, sql: "SELECT value FROM meta WHERE key = 'format_version'") }
        XCTAssertEqual(version, String(StoreSchema.formatVersion))
        let q = PairQuery(side: .key, feature: 3, head: 1, top: 5)
        XCTAssertEqual(try Store(path: path).pairs(run: run2, q), StoreTestSupport.expectedPairs(coo, nHead: shape.nHead, q))
        XCTAssertEqual(try Store(path: path).pairs(run: run, q), StoreTestSupport.expectedPairs(coo, nHead: shape.nHead, q))
    }

    /// The prefetcher's walk of the chunk table's b-tree lands, for every chunk row, on a table
    /// leaf page that holds that rowid (checked by reading the leaf's cells).
    func testPrefetcherFindsTheLeafOfEveryChunkRow() throws {
        var rng = StoreTestSupport.Rng(state: 6)
        let shape = PairMapShape(nHead: 3, dQuery: 200, dKey: 150)
        let coo = StoreTestSupport.randomMap(&rng, shape: shape, n: 12000, columns: [.value, .importance])
        let path = StoreTestSupport.temporaryStorePath(self)
        do {
            // Closing the writer checkpoints the WAL into the main file, where the prefetcher looks.
            let store = try Store(path: path, mode: .create)
            let run = try store.createRun(RunSpec(name: "p", kind: .imported, nHead: shape.nHead, dQuery: shape.dQuery, dKey: shape.dKey))
            _ = try store.putPairMap(run: run, coo, options: PairMapOptions(chunkNNZ: 8, keyChunkNNZ: 8))
        }
        let reader = try Store(path: path)
        let prefetcher = try XCTUnwrap(reader.prefetcher)
        let (rowids, pageSize) = try DatabaseQueue(path: path).read { db in
            (try Int64.fetchAll(db, sql: "SELECT rowid FROM pair_chunks ORDER BY rowid"), try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 0)
        }
        let leaves = prefetcher.leafPages(for: rowids)
        XCTAssertEqual(leaves.count, rowids.count)
        XCTAssertGreaterThan(Set(leaves).count, 3, "the test needs a tree with several leaves")
        let file = try XCTUnwrap(FileHandle(forReadingAtPath: path))
        defer { try? file.close() }
        func varint(_ b: [UInt8], _ i: inout Int) -> Int64 {
            var v: Int64 = 0
            for used in 1...9 {
                let x = b[i]; i += 1
                if used == 9 { return (v << 8) | Int64(x) }
                v = (v << 7) | Int64(x & 0x7F)
                if x & 0x80 == 0 { break }
            }
            return v
        }
        var pages: [Int: Set<Int64>] = [:]
        for (rowid, leaf) in zip(rowids, leaves) {
            if pages[leaf] == nil {
                try file.seek(toOffset: UInt64((leaf - 1) * pageSize))
                let page = [UInt8](try XCTUnwrap(try file.read(upToCount: pageSize)))
                XCTAssertEqual(page[0], 0x0D, "page \(leaf) is not a table leaf")
                let cells = Int(page[3]) << 8 | Int(page[4])
                pages[leaf] = Set((0..<cells).map { c in
                    var at = Int(page[8 + 2 * c]) << 8 | Int(page[9 + 2 * c])
                    _ = varint(page, &at)          // payload size
                    return varint(page, &at)       // rowid
                })
            }
            XCTAssertTrue(pages[leaf]?.contains(rowid) == true, "rowid \(rowid) is not on page \(leaf)")
        }
    }
}
