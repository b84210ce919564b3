import Foundation
import XCTest
import GRDB
@testable import QKStore

/// Damaged, foreign and future files get one clear error naming the file (and chunk);
/// no damage ever turns into a wrong answer.
final class StoreRobustnessTests: XCTestCase {
    private func makeStore(_ path: String) throws -> (run: Int64, coo: PairCOO) {
        var rng = StoreTestSupport.Rng(state: 11)
        let shape = PairMapShape(nHead: 2, dQuery: 40, dKey: 40)
        let coo = StoreTestSupport.randomMap(&rng, shape: shape, n: 1500, columns: [.value, .importance])
        let store = try Store(path: path, mode: .create)
        let run = try store.createRun(RunSpec(name: "r", kind: .imported, nHead: 2, dQuery: 40, dKey: 40))
        try store.putPairMap(run: run, coo, options: PairMapOptions(chunkNNZ: 64, keyChunkNNZ: 64))
        try store.putTensor(run: run, name: "w", shape: [300], values: (0..<300).map { Float($0) })
        return (run, coo)
    }

    private func checkpoint(_ path: String) throws {
        try DatabaseQueue(path: path).writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
    }

    func testCorruptChunkIsNamedByQueriesAndVerify() throws {
        let path = StoreTestSupport.temporaryStorePath(self)
        let (run, _) = try makeStore(path)
        try DatabaseQueue(path: path).write { db in
            var blob = try Data.fetchOne(db, sql: "SELECT floats FROM pair_chunks WHERE run_id = ? AND ordering = 1 AND seq = 2", arguments: [run])!
            blob[blob.count / 2] ^= 0x40
            try db.execute(sql: "UPDATE pair_chunks SET floats = ? WHERE run_id = ? AND ordering = 1 AND seq = 2", arguments: [blob, run])
        }
        let store = try Store(path: path)
        let report = try store.verify()
        XCTAssertEqual(report.problems, ["chunk 2 of run \(run) (key-major): checksum mismatch (the chunk is corrupt)"])
        // A key-feature query that touches chunk 2 fails, naming it.
        var failed = 0
        for f in 0..<40 {
            do { _ = try store.pairs(run: run, PairQuery(side: .key, feature: f, head: 0)) } catch {
                XCTAssertEqual("\(error)", "chunk 2 of run \(run) (key-major): checksum mismatch (the chunk is corrupt)")
                failed += 1
            }
        }
        XCTAssertGreaterThan(failed, 0)
    }

    func testRandomByteDamageNeverGivesAWrongAnswer() throws {
        let path = StoreTestSupport.temporaryStorePath(self)
        let (run, coo) = try makeStore(path)
        try checkpoint(path)
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        var rng = StoreTestSupport.Rng(state: 12)
        let blobs = try DatabaseQueue(path: path).read { try Data.fetchAll($0, sql: "SELECT floats FROM pair_chunks WHERE length(floats) > 64") }
        var detected = 0, aimed = 0
        for trial in 0..<24 {
            var damaged = original
            // Odd trials hit a byte inside a stored chunk blob; even ones anywhere past the first page.
            var at = 16384 + rng.int(original.count - 16384)
            var inBlob = false
            if trial % 2 == 1, let r = original.range(of: blobs[rng.int(blobs.count)]) {
                at = r.lowerBound + rng.int(r.count)
                aimed += 1
                inBlob = true
            }
            damaged[at] ^= UInt8(1 << rng.int(8))
            let copy = path + ".damaged\(trial)"
            try damaged.write(to: URL(fileURLWithPath: copy))
            let store: Store
            do { store = try Store(path: copy) } catch { detected += 1; continue }
            var wrong = 0, errors = 0
            for side in FeatureSide.allCases {
                for f in 0..<40 {
                    let q = PairQuery(side: side, feature: f, top: 5)
                    do {
                        if try store.pairs(run: run, q) != StoreTestSupport.expectedPairs(coo, nHead: 2, q) { wrong += 1 }
                    } catch { errors += 1 }
                }
            }
            XCTAssertEqual(wrong, 0, "byte \(at) damaged: \(wrong) wrong answers")
            let clean = (try? store.verify().isClean) ?? false
            if errors > 0 { XCTAssertFalse(clean, "queries failed at byte \(at) but verify is clean") }
            if !clean { detected += 1 }
            if inBlob { XCTAssertFalse(clean, "damage inside a chunk blob at byte \(at) went unnoticed by verify") }
        }
        XCTAssertGreaterThanOrEqual(detected, aimed)
        XCTAssertGreaterThan(aimed, 6)
    }

    func testTruncatedFileIsRejectedOnOpen() throws {
        let path = StoreTestSupport.temporaryStorePath(self)
        _ = try makeStore(path)
        try checkpoint(path)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Store(path: path)) { XCTAssertTrue("\($0)".hasPrefix("\(path): truncated"), "\($0)") }
    }

    func testForeignNewerAndMissingFilesAreRejected() throws {
        let dir = URL(fileURLWithPath: StoreTestSupport.temporaryStorePath(self)).deletingLastPathComponent().path
        let text = dir + "/notes.qkdb"
        try "not a database at all, just some text that is long enough to fill a header ....................................".write(toFile: text, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Store(path: text)) { XCTAssertEqual("\($0)", "\(text): not a qkdb store (not an SQLite database file)") }
        let empty = dir + "/empty.qkdb"
        FileManager.default.createFile(atPath: empty, contents: Data())
        XCTAssertThrowsError(try Store(path: empty)) { XCTAssertTrue("\($0)".contains("not a qkdb store")) }
        let foreign = dir + "/foreign.qkdb"
        try DatabaseQueue(path: foreign).write { try $0.execute(sql: "CREATE TABLE t (x); INSERT INTO t VALUES (1)") }
        XCTAssertThrowsError(try Store(path: foreign)) { XCTAssertTrue("\($0)".hasPrefix("\(foreign): not a qkdb store"), "\($0)") }
        let newer = dir + "/newer.qkdb"
        _ = try Store(path: newer, mode: .create)
        try DatabaseQueue(path: newer).write { try $0.execute(sql: "UPDATE meta SET value = '\(StoreSchema.formatVersion + 1)' WHERE key = 'format_version'") }
        XCTAssertThrowsError(try Store(path: newer)) { XCTAssertEqual("\($0)", "\(newer): store format version \(StoreSchema.formatVersion + 1) is newer than this qkdb reads (\(StoreSchema.formatVersion)); upgrade qkdb") }
        XCTAssertThrowsError(try Store(path: dir + "/missing.qkdb")) { XCTAssertEqual("\($0)", "\(dir)/missing.qkdb: no such store") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/missing.qkdb"))
    }

    func testOutOfRangeQueriesAndUnknownRunsAreClearErrors() throws {
        let path = StoreTestSupport.temporaryStorePath(self)
        let (run, _) = try makeStore(path)
        let store = try Store(path: path)
        let cases: [(PairQuery, Int64, String)] = [
            (PairQuery(side: .query, feature: 40), run, "query feature 40 is out of range for run \(run) (d_query 40)"),
            (PairQuery(side: .key, feature: -1), run, "key feature -1 is out of range for run \(run) (d_key 40)"),
            (PairQuery(side: .key, feature: 0, head: 2), run, "head 2 is out of range for run \(run) (n_head 2)"),
            (PairQuery(side: .key, feature: 0, order: .meanContribution), run, "run \(run) has no mean_contribution column to order by (it has value, importance)"),
            (PairQuery(side: .key, feature: 0), 42, "\(path): no run 42 (see `qkdb runs`)"),
        ]
        for (q, r, message) in cases {
            XCTAssertThrowsError(try store.pairs(run: r, q)) { XCTAssertEqual("\($0)", message) }
        }
    }
}

/// `verify` notices when the two orderings disagree even though every chunk is intact.
final class StoreOrderingConsistencyTests: XCTestCase {
    func testVerifyCatchesOrderingsThatHoldDifferentPairs() throws {
        let a = StoreTestSupport.temporaryStorePath(self, "a.qkdb"), b = StoreTestSupport.temporaryStorePath(self, "b.qkdb")
        let shape = PairMapShape(nHead: 1, dQuery: 10, dKey: 10)
        func make(_ path: String, lastKey: Int32) throws {
            let store = try Store(path: path, mode: .create)
            let run = try store.createRun(RunSpec(name: "x", kind: .imported, nHead: 1, dQuery: 10, dKey: 10))
            try store.putPairMap(run: run, PairCOO(head: [0, 0, 0], queryFeature: [1, 2, 3], keyFeature: [4, 5, lastKey],
                                                   columns: [.value: [1, 2, 3], .importance: [3, 2, 1]]), options: PairMapOptions(chunkNNZ: 2, keyChunkNNZ: 2))
            XCTAssertTrue(try store.verify().isClean)
        }
        try make(a, lastKey: 6)
        try make(b, lastKey: 7)
        _ = shape
        // Give store a the key-major chunks of store b: every chunk is intact, the pairs differ.
        try DatabaseQueue(path: a).writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ? AS other", arguments: [b])
            try db.execute(sql: "DELETE FROM pair_chunks WHERE ordering = 1")
            try db.execute(sql: "INSERT INTO pair_chunks SELECT * FROM other.pair_chunks WHERE ordering = 1")
            // Without a manifest (a store from before them), so this check alone is what notices.
            try db.execute(sql: "DELETE FROM meta WHERE key LIKE 'manifest.%'")
        }
        let report = try Store(path: a).verify()
        XCTAssertEqual(report.problems, ["\(a): run 1: the query-major and key-major orderings do not hold the same pairs"])
    }
}
