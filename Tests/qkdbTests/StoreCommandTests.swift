import Foundation
import XCTest
import QKStore
import QKTensor

/// The store's commands, run as a user runs them: import a COO file, query it in every format,
/// export, verify, and fail cleanly on every kind of bad input.
final class StoreCommandTests: XCTestCase {
    /// A small map with ties and an inhibitory tail, written as a COO .safetensors file.
    struct Map {
        var head: [Int32] = [], query: [Int32] = [], key: [Int32] = []
        var value: [Float] = [], importance: [Float] = []
    }

    static func makeMap(nHead: Int, dQuery: Int, dKey: Int, every: Int) -> Map {
        var m = Map()
        var n = 0
        for h in 0..<nHead { for q in 0..<dQuery { for k in 0..<dKey where (h * 31 + q * 7 + k * 3) % every == 0 {
            m.head.append(Int32(h)); m.query.append(Int32(q)); m.key.append(Int32(k))
            m.value.append(Float((n * 37) % 11) - 5); m.importance.append(Float((n * 13) % 7) / 4)
            n += 1
        } } }
        return m
    }

    static func write(_ m: Map, to path: String, int64: Bool = false) throws {
        var w = SafeTensorsWriter()
        if int64 {
            w.add("head", shape: [m.head.count], int64: m.head.map(Int64.init))
        } else {
            w.add("head", shape: [m.head.count], int32: m.head)
        }
        w.add("query_feature", shape: [m.query.count], int32: m.query)
        w.add("key_feature", shape: [m.key.count], int32: m.key)
        w.add("value", shape: [m.value.count], float32: m.value)
        w.add("importance", shape: [m.importance.count], float32: m.importance)
        try w.write(to: path)
    }

    /// Brute force: the pairs of `feature` on `head`, by importance descending, ties to the lower partner.
    static func expected(_ m: Map, side: String, feature: Int, head: Int, top: Int) -> [[Double]] {
        var rows: [(Int, Int, Float, Float)] = []
        for n in m.head.indices where Int(m.head[n]) == head && Int(side == "query" ? m.query[n] : m.key[n]) == feature {
            rows.append((Int(m.query[n]), Int(m.key[n]), m.value[n], m.importance[n]))
        }
        rows.sort { a, b in a.3 != b.3 ? a.3 > b.3 : (side == "query" ? a.1 < b.1 : a.0 < b.0) }
        return rows.prefix(top).map { [Double(head), Double($0.0), Double($0.1), Double($0.2), Double($0.3)] }
    }

    private func importFixture(_ dir: URL) throws -> (store: String, map: Map) {
        let map = Self.makeMap(nHead: 3, dQuery: 20, dKey: 20, every: 4)
        let coo = dir.appendingPathComponent("coo.safetensors").path
        try Self.write(map, to: coo, int64: true)
        let store = dir.appendingPathComponent("s.qkdb").path
        let r = try CLI.run(["import-pairs", "--store", store, "--name", "fixture", "--coo", coo, "--chunk-nnz", "8", "--key-chunk-nnz", "5"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "run 1: imported \(map.head.count) pairs [d_query 20, d_key 20, n_head 3] (lossless)\n")
        return (store, map)
    }

    func testPairsInEveryFormatMatchBruteForce() throws {
        let dir = CLI.temporaryDirectory(self)
        let (store, map) = try importFixture(dir)
        for side in ["query", "key"] {
            for feature in [0, 7, 19] {
                let r = try CLI.run(["pairs", "--store", store, "--run", "1", "--\(side)-feature", String(feature), "--top", "3", "--format", "json"])
                XCTAssertEqual(r.status, 0, r.stderr)
                let rows = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [[String: Any]]
                let got = rows.map { o in ["head", "query_feature", "key_feature", "value", "importance"].map { (o[$0] as! NSNumber).doubleValue } }
                let want = (0..<3).flatMap { Self.expected(map, side: side, feature: feature, head: $0, top: 3) }
                XCTAssertEqual(got, want, "\(side) feature \(feature)")
                XCTAssertTrue(rows.allSatisfy { $0["mask"] is NSNull })
            }
        }
        // A head's own top pairs (no feature): brute force over the whole head, ties to the lower query then key feature;
        // the map's 8-pair chunks make the head span several.
        for head in 0..<3 {
            for top in [1, 5, 0] {
                let r = try CLI.run(["pairs", "--store", store, "--run", "1", "--head", String(head), "--top", String(top), "--format", "json"])
                XCTAssertEqual(r.status, 0, r.stderr)
                let rows = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [[String: Any]]
                let got = rows.map { o in ["head", "query_feature", "key_feature", "value", "importance"].map { (o[$0] as! NSNumber).doubleValue } }
                var all = map.head.indices.filter { Int(map.head[$0]) == head }
                all.sort { a, b in map.importance[a] != map.importance[b] ? map.importance[a] > map.importance[b] : (map.query[a], map.key[a]) < (map.query[b], map.key[b]) }
                let want = (top == 0 ? all : Array(all.prefix(top))).map { [Double(head), Double(map.query[$0]), Double(map.key[$0]), Double(map.value[$0]), Double(map.importance[$0])] }
                XCTAssertEqual(got, want, "head \(head) top \(top)")
            }
        }
        let csv = try CLI.run(["pairs", "--store", store, "--run", "1", "--head", "2", "--query-feature", "7", "--top", "2", "--format", "csv"])
        let want = Self.expected(map, side: "query", feature: 7, head: 2, top: 2)
        XCTAssertEqual(csv.stdout.split(separator: "\n").first, "head,query_feature,key_feature,value,mask,importance,mean_contribution,cooccurrence,query_label,key_label")
        XCTAssertEqual(csv.stdout.split(separator: "\n").count, 1 + want.count)
        let table = try CLI.run(["pairs", "--store", store, "--run", "1", "--head", "2", "--query-feature", "7"])
        XCTAssertEqual(table.status, 0)
        XCTAssertTrue(table.stdout.hasPrefix("head  query_feature  key_feature"), table.stdout)
        // Ascending by value lists the most inhibitory pair first.
        let asc = try CLI.run(["pairs", "--store", store, "--run", "1", "--head", "0", "--key-feature", "3", "--order", "value", "--ascending", "--top", "1", "--format", "csv"])
        let minValue = map.head.indices.filter { map.head[$0] == 0 && map.key[$0] == 3 }.map { map.value[$0] }.min()!
        XCTAssertEqual(Float(asc.stdout.split(separator: "\n")[1].split(separator: ",")[3]), minValue)
    }

    func testRunsExportVerifyAndFeature() throws {
        let dir = CLI.temporaryDirectory(self)
        let (store, map) = try importFixture(dir)
        let runs = try CLI.run(["runs", "--store", store, "--format", "json"])
        let list = try JSONSerialization.jsonObject(with: Data(runs.stdout.utf8)) as! [[String: Any]]
        XCTAssertEqual(list.count, 1)
        XCTAssertEqual(list[0]["kind"] as? String, "imported")
        XCTAssertEqual((list[0]["pairs"] as? NSNumber)?.intValue, map.head.count)
        XCTAssertNotNil(list[0]["config"] as? [String: Any])
        let out = dir.appendingPathComponent("pairs.csv").path
        let e = try CLI.run(["export", "--store", store, "--run", "1", "--what", "pairs", "--out", out])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").count, map.head.count + 1)
        let v = try CLI.run(["verify", "--store", store])
        XCTAssertEqual(v.status, 0, v.stderr)
        XCTAssertTrue(v.stdout.hasPrefix("ok: "), v.stdout)
        // Feature statistics written through the library show up in `feature` and `sinks`.
        let s = try Store(path: store, mode: .readWrite)
        try s.putFeatures(run: 1, [FeatureStats(side: .key, index: 3, alive: true, density: 0.2, bosFraction: 0.97, label: "[CLS], \"sink\""),
                                   FeatureStats(side: .query, index: 0, alive: true, density: 0.05)])
        let f = try CLI.run(["feature", "--store", store, "--run", "1", "--side", "key", "--index", "3", "--top", "2", "--format", "json"])
        XCTAssertEqual(f.status, 0, f.stderr)
        let fj = try JSONSerialization.jsonObject(with: Data(f.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((fj["feature"] as! [String: Any])["label"] as? String, "[CLS], \"sink\"")
        XCTAssertEqual((fj["pairs"] as! [Any]).count, (0..<3).map { Self.expected(map, side: "key", feature: 3, head: $0, top: 2).count }.reduce(0, +))
        let sinks = try CLI.run(["sinks", "--store", store, "--run", "1", "--top", "1", "--format", "csv"])
        XCTAssertEqual(sinks.status, 0, sinks.stderr)
        let lines = sinks.stdout.split(separator: "\n")
        XCTAssertEqual(lines[0], "key_feature,bos_fraction,key_density,total_importance,key_bias_importance,head,head_importance,head_key_bias_importance,query_feature,importance,query_density,key_label,query_label")
        for h in 0..<3 {
            guard let top = Self.expected(map, side: "key", feature: 3, head: h, top: 1).first else { continue }
            XCTAssertTrue(lines.contains { $0.hasPrefix("3,0.97,0.2,") && $0.contains(",\(h),") && $0.split(separator: ",")[8] == "\(Int(top[1]))" })
        }
        let fe = dir.appendingPathComponent("features.csv").path
        XCTAssertEqual(try CLI.run(["export", "--store", store, "--run", "1", "--what", "features", "--out", fe]).status, 0)
        XCTAssertTrue(try String(contentsOfFile: fe, encoding: .utf8).contains("key,3,1,0.2,,,0.97,\"[CLS], \"\"sink\"\"\""))
    }

    func testBadInputsFailWithOneClearLine() throws {
        let dir = CLI.temporaryDirectory(self)
        let (store, map) = try importFixture(dir)
        let text = dir.appendingPathComponent("text.qkdb").path
        try "hello".write(toFile: text, atomically: true, encoding: .utf8)
        try CLI.assertFails(["runs", "--store", dir.appendingPathComponent("none.qkdb").path], mentioning: "none.qkdb: no such store")
        try CLI.assertFails(["runs", "--store", text], mentioning: "text.qkdb: not a qkdb store")
        try CLI.assertFails(["pairs", "--store", store, "--run", "9", "--query-feature", "1"], mentioning: "no run 9")
        try CLI.assertFails(["pairs", "--store", store, "--run", "1", "--query-feature", "20"], mentioning: "query feature 20 is out of range for run 1 (d_query 20)")
        try CLI.assertFails(["pairs", "--store", store, "--run", "1", "--head", "3", "--key-feature", "1"], mentioning: "head 3 is out of range for run 1 (n_head 3)")
        try CLI.assertFails(["pairs", "--store", store, "--run", "1"], mentioning: "give --query-feature, --key-feature or --head")
        try CLI.assertFails(["pairs", "--store", store, "--run", "1", "--query-feature", "1", "--key-feature", "2"], mentioning: "at most one of --query-feature and --key-feature")
        try CLI.assertFails(["pairs", "--store", store, "--run", "1", "--head", "5"], mentioning: "head 5 is out of range for run 1 (n_head 3)")
        try CLI.assertFails(["label", "--store", store, "--run", "1", "--side", "query", "--index", "3", "--text", "x"], mentioning: "stores no statistics for query feature 3")
        try CLI.assertFails(["label", "--store", store, "--run", "1", "--side", "query", "--index", "30", "--text", "x"], mentioning: "query feature 30 is out of range")
        try CLI.assertFails(["heads", "--store", store, "--run", "2"], mentioning: "no run 2")
        try CLI.assertFails(["features", "--store", store, "--run", "1", "--text", "x"], mentioning: "run 1 is imported")
        try CLI.assertFails(["feature", "--store", store, "--run", "1", "--side", "key", "--index=-4"], mentioning: "key feature -4 is out of range")
        try CLI.assertFails(["sinks", "--store", store, "--run", "1"], mentioning: "no key-feature statistics")
        try CLI.assertFails(["verify", "--store", text], mentioning: "not a qkdb store")
        // A COO with a duplicate coordinate is rejected before any store file is created.
        var dup = map
        dup.head.append(map.head[5]); dup.query.append(map.query[5]); dup.key.append(map.key[5]); dup.value.append(1); dup.importance.append(1)
        let dupPath = dir.appendingPathComponent("dup.safetensors").path
        try Self.write(dup, to: dupPath)
        let fresh = dir.appendingPathComponent("fresh.qkdb").path
        try CLI.assertFails(["import-pairs", "--store", fresh, "--name", "d", "--coo", dupPath], mentioning: "dup.safetensors: pair map has a duplicate coordinate")
        XCTAssertFalse(FileManager.default.fileExists(atPath: fresh))
        try CLI.assertFails(["import-pairs", "--store", fresh, "--name", "d", "--coo", dupPath, "--n-head", "2"], mentioning: "head 2 is out of range")
        try CLI.assertFails(["import-pairs", "--store", text, "--name", "d", "--coo", dir.appendingPathComponent("coo.safetensors").path], mentioning: "text.qkdb: not a qkdb store")
        try CLI.assertFails(["import-pairs", "--store", fresh, "--name", "d", "--coo", text], mentioning: "text.qkdb")
        let out = dir.appendingPathComponent("nope.csv").path
        try CLI.assertFails(["export", "--store", store, "--run", "5", "--what", "pairs", "--out", out], mentioning: "no run 5")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testLossyImportReportsItsError() throws {
        let dir = CLI.temporaryDirectory(self)
        let map = Self.makeMap(nHead: 1, dQuery: 10, dKey: 10, every: 3)
        var m = map
        m.value = m.value.map { $0 + 0.1234567 }
        let coo = dir.appendingPathComponent("coo.safetensors").path
        try Self.write(m, to: coo)
        let store = dir.appendingPathComponent("s.qkdb").path
        let r = try CLI.run(["import-pairs", "--store", store, "--name", "lossy", "--coo", coo, "--values", "bf16"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("(bf16, max abs error 0.0"), r.stdout)
        let runs = try CLI.run(["runs", "--store", store, "--format", "csv"])
        XCTAssertTrue(runs.stdout.contains(",bf16,0.0"), runs.stdout)
    }

    /// A writer killed mid-import leaves the earlier run readable and `verify` clean.
    func testKilledImportLeavesEarlierRunsIntact() throws {
        let dir = CLI.temporaryDirectory(self)
        let (store, map) = try importFixture(dir)
        // A big map (2.5M pairs, incompressible values) so the import is still writing when it is killed.
        var big = Map()
        let n = 2_500_000
        big.head.reserveCapacity(n); big.query.reserveCapacity(n); big.key.reserveCapacity(n)
        for i in 0..<n {
            big.head.append(Int32(i % 8)); big.query.append(Int32((i / 8) % 4096)); big.key.append(Int32(i / 32768))
            big.value.append(Float(bitPattern: 0x3F00_0000 | UInt32(truncatingIfNeeded: i &* 2_654_435_761) >> 9)); big.importance.append(Float(bitPattern: 0x3E00_0000 | UInt32(truncatingIfNeeded: i &* 40_503) >> 9))
        }
        let coo = dir.appendingPathComponent("big.safetensors").path
        try Self.write(big, to: coo)
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = ["import-pairs", "--store", store, "--name", "big", "--coo", coo]
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        // Kill once the write transaction has begun spilling into the WAL.
        let wal = store + "-wal"
        let deadline = Date().addingTimeInterval(60)
        while p.isRunning && Date() < deadline {
            let size = (try? FileManager.default.attributesOfItem(atPath: wal)[.size] as? Int) ?? 0
            if size > 1 << 19 { break }
            usleep(2000)
        }
        // Readers keep working while the write transaction is open (WAL).
        let during = try CLI.run(["pairs", "--store", store, "--run", "1", "--head", "1", "--query-feature", "7", "--top", "50", "--format", "json"])
        XCTAssertEqual(during.status, 0, during.stderr)
        let duringRows = (try? JSONSerialization.jsonObject(with: Data(during.stdout.utf8)) as? [[String: Any]]) ?? []
        XCTAssertEqual(duringRows.count, Self.expected(map, side: "query", feature: 7, head: 1, top: 50).count)
        let killedMidWrite = p.isRunning
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertTrue(killedMidWrite, "the import finished before it could be killed; make the map bigger")
        let v = try CLI.run(["verify", "--store", store])
        XCTAssertEqual(v.status, 0, v.stderr)
        let runs = try CLI.run(["runs", "--store", store, "--format", "csv"])
        XCTAssertEqual(runs.stdout.split(separator: "\n").count, 2, "only the earlier run remains: \(runs.stdout)")
        let r = try CLI.run(["pairs", "--store", store, "--run", "1", "--head", "1", "--query-feature", "7", "--top", "50", "--format", "json"])
        let rows = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [[String: Any]]
        XCTAssertEqual(rows.count, Self.expected(map, side: "query", feature: 7, head: 1, top: 50).count)
    }
}
