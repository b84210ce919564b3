import XCTest
import Foundation

/// Damaged stores and hostile imports (issue 15's fuzzing cases), through the real binary: one
/// error line, never a crash or an answer that differs from the pristine store's.
final class DamagedStoreTests: XCTestCase {

    func testSinksOnAFeatureBeyondDKeyIsAnErrorAndVerifyFindsIt() throws {
        let dir = CLI.temporaryDirectory(self)
        let store = try CLI.importedStore(in: dir)
        try CLI.sql("INSERT INTO features (run_id, side, idx, alive, bos_fraction) VALUES (1, 'key', 3, 1, 0.95), (1, 'key', 99, 1, 1.0);", on: store)
        try CLI.assertFails(["sinks", "--store", store, "--run", "1"], mentioning: "do not match its manifest")
        // Without the manifest (a store from before them) the bound itself still holds.
        try CLI.sql("DELETE FROM meta WHERE key LIKE 'manifest.%';", on: store)
        try CLI.assertFails(["sinks", "--store", store, "--run", "1"], mentioning: "key feature 99, beyond its d_key 10")
        try CLI.assertFails(["verify", "--store", store], mentioning: "feature statistics for indices beyond the dictionaries")
    }

    func testVerifyNoticesADroppedTable() throws {
        let dir = CLI.temporaryDirectory(self)
        let store = try CLI.importedStore(in: dir)
        try CLI.sql("DROP TABLE examples;", on: store)
        try CLI.assertFails(["verify", "--store", store], mentioning: "missing examples")
    }

    /// Row-level damage the chunk checksums do not cover: queries refuse (one line) instead of
    /// answering differently, and verify names the run.
    func testCatalogEditsAreCaughtByTheManifest() throws {
        let pairs = ["pairs", "--run", "1", "--query-feature", "3", "--format", "csv"]
        for (name, sql) in [
            ("permuted columns", "UPDATE pair_maps SET columns = '[\"importance\",\"value\"]';"),
            ("more heads", "UPDATE runs SET n_head = 13;"),
            ("deleted chunk", "DELETE FROM pair_chunks WHERE ordering = 0 AND seq = 0;"),
        ] {
            let dir = CLI.temporaryDirectory(self)
            let store = try CLI.importedStore(in: dir)
            let pristine = try CLI.run(["pairs", "--store", store] + pairs.dropFirst())
            XCTAssertEqual(pristine.status, 0, pristine.stderr)
            try CLI.sql(sql, on: store)
            try CLI.assertFails(["pairs", "--store", store] + pairs.dropFirst(), mentioning: "do not match its manifest")
            try CLI.assertFails(["runs", "--store", store], mentioning: "do not match its manifest")
            try CLI.assertFails(["verify", "--store", store], mentioning: "run 1")
            XCTAssertFalse(name.isEmpty)
        }
    }

    /// A renumbered query-major chunk (found by the fuzz campaign, seed 22): `export` streamed its
    /// rows out of place and exited 0; now it refuses in one line, and the pristine export is unchanged.
    func testExportRefusesARenumberedChunk() throws {
        let dir = CLI.temporaryDirectory(self)
        let store = try CLI.importedStore(in: dir)
        let pristine = try CLI.run(["export", "--store", store, "--run", "1", "--what", "pairs", "--out", "-"])
        XCTAssertEqual(pristine.status, 0, pristine.stderr)
        try CLI.sql("UPDATE pair_chunks SET seq = 1000 WHERE run_id = 1 AND ordering = 0 AND seq = 0;", on: store)
        try CLI.assertFails(["export", "--store", store, "--run", "1", "--what", "pairs", "--out", "-"], mentioning: "chunk 0 is missing or renumbered")
        try CLI.assertFails(["verify", "--store", store], mentioning: "run 1")
        // The last chunk renumbered past the end leaves no gap: the pair count catches it (seed 22 again).
        let other = try CLI.importedStore(in: CLI.temporaryDirectory(self))
        try CLI.sql("UPDATE pair_chunks SET seq = seq + 1000 WHERE run_id = 1 AND ordering = 0 AND seq = (SELECT max(seq) FROM pair_chunks WHERE run_id = 1 AND ordering = 0);", on: other)
        try CLI.sql("DELETE FROM pair_chunks WHERE run_id = 1 AND ordering = 0 AND seq >= 1000;", on: other)
        try CLI.assertFails(["export", "--store", other, "--run", "1", "--what", "pairs", "--out", "-"], mentioning: "damaged")
    }

    func testFP16ImportOfAValueBeyondItsRangeIsRefused() throws {
        let dir = CLI.temporaryDirectory(self)
        var map = StoreCommandTests.makeMap(nHead: 1, dQuery: 4, dKey: 4, every: 1)
        map.value[2] = 1e6
        let coo = dir.appendingPathComponent("coo.safetensors").path
        try StoreCommandTests.write(map, to: coo)
        let store = dir.appendingPathComponent("s.qkdb").path
        try CLI.assertFails(["import-pairs", "--store", store, "--name", "m", "--coo", coo, "--values", "fp16"], mentioning: "beyond the range of fp16")
        XCTAssertEqual(try CLI.run(["import-pairs", "--store", store, "--name", "m", "--coo", coo, "--values", "bf16"]).status, 0)
    }
}
