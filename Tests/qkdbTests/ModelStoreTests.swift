import XCTest
import Foundation

/// Issue 19 through the real binary: a whole model in one store (`qkdb run --layer all`, resumable
/// after a SIGKILL), shards from separate processes merged, and the cross-run questions
/// (`heads` over every run, `pairs --shared`, `feature --across-layers`).
final class ModelStoreTests: XCTestCase {
    static let minilm = CLI.root.appendingPathComponent("models/all-MiniLM-L6-v2").path
    static let corpus = CLI.root.appendingPathComponent("data/corpus/fortunes.jsonl").path

    /// Small settings that still go through every stage (sparsity and μ pinned: no sweep, no search).
    static func small(layer: String, store: String) -> [String] {
        ["run", "--model", minilm, "--corpus", corpus, "--layer", layer, "--max-sequences", "60", "--context", "32", "--d-hidden", "32",
         "--train-tokens", "1500", "--batch", "4", "--top-k", "4", "--penalty", "1e-5", "--mask-epochs", "1", "--mask-sequences", "8",
         "--eval-sequences", "1", "--decoder-fit", "0", "--store", store]
    }

    func requireModel() throws {
        guard FileManager.default.fileExists(atPath: Self.minilm + "/model.safetensors"), FileManager.default.fileExists(atPath: Self.corpus) else {
            throw XCTSkip("MiniLM or the fortunes corpus is not set up (tools/test.sh runs tools/setup.sh)")
        }
    }

    func runs(_ store: String) throws -> [[String: Any]] {
        let r = try CLI.run(["runs", "--store", store, "--format", "json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try PlantedScorer.jsonRows(r.stdout)
    }

    /// Every query a user would run on a run, as text (to compare a run's answers across stores).
    func answers(_ store: String, run: Int, nHead: Int = 12) throws -> [String] {
        var out: [String] = []
        let base = ["--store", store, "--run", String(run)]
        var commands: [[String]] = [["heads"] + base + ["--top", "3"], ["sinks"] + base + ["--top", "3"],
                                    ["feature"] + base + ["--side", "key", "--index", "0", "--no-histogram", "--format", "json"],
                                    ["pairs"] + base + ["--key-feature", "0", "--top", "5"]]
        commands += (0..<nHead).map { ["pairs"] + base + ["--head", String($0), "--top", "5", "--format", "csv"] }
        for args in commands {
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            out.append(r.stdout)
        }
        return out
    }

    func testAllLayersResumeAfterAKillDuringLayer4() throws {
        try requireModel()
        let dir = CLI.temporaryDirectory(self)
        let store = dir.appendingPathComponent("minilm.qkdb").path
        let args = Self.small(layer: "all", store: store)
        // Start, wait until layers 0–3 are complete, and kill it hard (layer 4 is then in progress).
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(600)
        var done = 0
        while Date() < deadline, p.isRunning {
            if FileManager.default.fileExists(atPath: store) {
                done = (try? runs(store).filter { $0["status"] as? String == "complete" }.count) ?? 0
                if done >= 4 { break }
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTAssertTrue(p.isRunning, "qkdb run ended before layer 4")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(done, 4)
        XCTAssertEqual(try CLI.run(["verify", "--store", store]).status, 0)
        let killed = try runs(store)
        XCTAssertEqual(killed.compactMap { $0["layer"] as? Int }, [0, 1, 2, 3], "runs after the kill: \(killed.map { $0["status"] ?? "?" })")
        let before = try (1...4).map { try answers(store, run: $0) }

        // The same command again: layers 0–3 kept as they were, 4 and 5 completed.
        let again = try CLI.run(args)
        XCTAssertEqual(again.status, 0, again.stderr)
        for l in 0...3 { XCTAssertTrue(again.stderr.contains("layer \(l): run \(l + 1) in \(store) is complete; kept"), again.stderr) }
        XCTAssertTrue(again.stdout.contains("layers of \(store):"), again.stdout)
        let after = try runs(store)
        XCTAssertEqual(after.compactMap { $0["layer"] as? Int }, [0, 1, 2, 3, 4, 5])
        XCTAssertTrue(after.allSatisfy { $0["status"] as? String == "complete" })
        XCTAssertEqual(try (1...4).map { try answers(store, run: $0) }, before)
        let verify = try CLI.run(["verify", "--store", store])
        XCTAssertEqual(verify.status, 0, verify.stderr)

        // The model-level table and heads across every run (one row per layer × head).
        let table = try CLI.run(["runs", "--store", store, "--layers", "--format", "json"])
        let rows = try PlantedScorer.jsonRows(table.stdout)
        XCTAssertEqual(rows.compactMap { $0["layer"] as? Int }, [0, 1, 2, 3, 4, 5])
        XCTAssertTrue(rows.allSatisfy { ($0["first_position_share"] as? Double).map { $0 > 0 && $0 < 1 } ?? false })
        let heads = try PlantedScorer.jsonRows(try CLI.run(["heads", "--store", store, "--top", "0", "--format", "json"]).stdout)
        XCTAssertEqual(heads.count, 6 * 12)
        XCTAssertEqual(Set(heads.compactMap { h in (h["layer"] as? Int).flatMap { l in (h["head"] as? Int).map { "\(l).\($0)" } } }).count, 72)

        // Following a feature through depth: layer 2's query feature 5 against layers 1 and 3, the
        // cosines as the exported dictionaries give them.
        let across = try PlantedScorer.jsonRows(try CLI.run(["feature", "--store", store, "--run", "3", "--side", "query", "--index", "5",
                                                            "--across-layers", "--top", "2", "--format", "json"]).stdout)
        XCTAssertEqual(across.compactMap { $0["layer"] as? Int }, [1, 1, 3, 3])
        let mine = try dictionary(store, run: 3, in: dir)
        for m in across {
            let other = try dictionary(store, run: try XCTUnwrap(m["run"] as? Int), in: dir)
            let f = try XCTUnwrap(m["feature"] as? Int)
            let cosine = Stats.cosine(column(mine, 5), column(other, f))
            XCTAssertEqual(m["encoder_cosine"] as? Double ?? .nan, cosine, accuracy: 1e-4)
            let best = (0..<other.dHidden).map { Stats.cosine(column(mine, 5), column(other, $0)) }.max() ?? .nan
            if across.first(where: { $0["layer"] as? Int == m["layer"] as? Int })?["feature"] as? Int == f {
                XCTAssertEqual(cosine, best, accuracy: 1e-6)
            }
        }
    }

    func dictionary(_ store: String, run: Int, in dir: URL) throws -> ExportedDictionary {
        let out = dir.appendingPathComponent("dict-\(run)")
        let r = try CLI.run(["export-dictionaries", "--store", store, "--run", String(run), "--out", out.path, "--force"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try ExportedDictionary(directory: out.appendingPathComponent("query"))
    }

    func column(_ d: ExportedDictionary, _ f: Int) -> [Float] { (0..<d.dIn).map { d.wEnc[$0 * d.dHidden + f] } }

    func testShardsFromSeparateProcessesMergeIdempotently() throws {
        try requireModel()
        let dir = CLI.temporaryDirectory(self)
        let shards = (0..<2).map { dir.appendingPathComponent("shard-\($0).qkdb").path }
        // Two processes at once, as two machines would.
        let processes = try shards.enumerated().map { n, shard -> Process in
            let p = Process()
            p.executableURL = CLI.binary
            p.arguments = Self.small(layer: String(n + 2), store: shard)
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        for p in processes { p.waitUntilExit(); XCTAssertEqual(p.terminationStatus, 0) }
        let merged = dir.appendingPathComponent("model.qkdb").path
        let m = try CLI.run(["merge", "--into", merged] + shards)
        XCTAssertEqual(m.status, 0, m.stderr)
        XCTAssertEqual(m.stdout, "\(shards[0]): added run 1\n\(shards[1]): added run 1 as 2\n")
        // Every query answers as it did on its shard.
        XCTAssertEqual(try answers(merged, run: 1), try answers(shards[0], run: 1))
        XCTAssertEqual(try answers(merged, run: 2), try answers(shards[1], run: 1))
        XCTAssertEqual(try CLI.run(["verify", "--store", merged]).status, 0)
        // Merging again adds nothing.
        let listed = try CLI.run(["runs", "--store", merged, "--format", "json"]).stdout
        let again = try CLI.run(["merge", "--into", merged, shards[1], shards[0]])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(again.stdout, "\(shards[1]): nothing new; already there: run 1\n\(shards[0]): nothing new; already there: run 1\n")
        XCTAssertEqual(try CLI.run(["runs", "--store", merged, "--format", "json"]).stdout, listed)
        // A shard of another model is refused in one line; a damaged shard adds nothing.
        let other = dir.appendingPathComponent("gpt2.qkdb").path
        let g = try CLI.run(PipelineCLITests.runArguments(corpus: try PipelineCLITests.corpus(in: dir), store: other))
        XCTAssertEqual(g.status, 0, g.stderr)
        try CLI.assertFails(["merge", "--into", merged, other], mentioning: "is of another model")
        try CLI.assertFails(["merge", "--into", merged, merged], mentioning: "is the target store itself")
        let damaged = dir.appendingPathComponent("damaged.qkdb").path
        try FileManager.default.copyItem(atPath: shards[0], toPath: damaged)
        try CLI.sql("UPDATE pair_chunks SET checksum = checksum + 1 WHERE rowid = (SELECT min(rowid) FROM pair_chunks)", on: damaged)
        try CLI.assertFails(["merge", "--into", merged, damaged], mentioning: "verify failed")
        XCTAssertEqual(try CLI.run(["runs", "--store", merged, "--format", "json"]).stdout, listed)
    }

    /// The planted GPT-2 with content pair 0 planted on heads 0 and 2
    /// (tools/fixtures/make_planted_sink_gpt2.py --shared): `pairs --shared` lists it as kept by
    /// exactly those heads, with qkdb's defaults.
    func testPlantedPairOnTwoHeadsIsShared() throws {
        let fixture = CLI.root.appendingPathComponent("Tests/Fixtures/planted_shared_gpt2")
        let planted = try PlantedTruth(fixture: fixture)
        let dir = CLI.temporaryDirectory(self)
        let corpus = dir.appendingPathComponent("planted.txt")
        try planted.corpus(tokens: 22_400, seed: 7, plantedShare: 0.5, spaceRate: 0.12).write(to: corpus, atomically: true, encoding: .utf8)
        let store = dir.appendingPathComponent("planted.qkdb").path
        // Defaults, with the planted family's budgets: a user's run, not one tuned to the fixture.
        let run = try CLI.run(["run", "--model", fixture.path, "--corpus", corpus.path, "--layer", String(planted.layer),
                               "--context", "24", "--d-hidden", "128", "--train-tokens", "200000", "--mask-sequences", "32", "--store", store])
        XCTAssertEqual(run.status, 0, run.stderr)
        guard run.status == 0 else { return }
        let score = try PlantedScorer.score(planted, store: store, in: dir)
        let onTwo = planted.pairs.enumerated().filter { $0.element.queryDirection == 0 }
        XCTAssertEqual(onTwo.map(\.element.head), [0, 2])
        let keys = onTwo.map { score.pairKeyFeatures[$0.offset] }.reduce(Set<Int>()) { $0.union($1) }
        let shared = try PlantedScorer.jsonRows(try CLI.run(["pairs", "--store", store, "--run", "1", "--shared", "--top", "0", "--format", "json"]).stdout)
        // The query feature tracking direction 0, as the scorer matched it, paired with its key features.
        let q = try queryFeature(planted, store: store, dir: dir)
        let rows = shared.filter { $0["query_feature"] as? Int == q && keys.contains($0["key_feature"] as? Int ?? -1) }
        XCTAssertFalse(rows.isEmpty, "pairs --shared lacks query feature \(q) × \(keys.sorted()): \(shared.prefix(5))")
        let strongest = rows.max { ($0["total_importance"] as? Double ?? 0) < ($1["total_importance"] as? Double ?? 0) }
        XCTAssertEqual(strongest?["heads"] as? String, "0 2", "\(rows)")
    }

    func queryFeature(_ planted: PlantedTruth, store: String, dir: URL) throws -> Int {
        let out = dir.appendingPathComponent("dictionaries")
        XCTAssertEqual(try CLI.run(["export-dictionaries", "--store", store, "--run", "1", "--out", out.path, "--force"]).status, 0)
        let inputs = try planted.layerInputs()
        let side = PlantedScorer.Side(dictionary: try ExportedDictionary(directory: out.appendingPathComponent("query")), inputs: inputs)
        return side.bestMatch(planted.queryDirections[0], inputs: inputs).feature
    }
}
