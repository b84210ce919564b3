import XCTest
import Foundation
import QKStore

/// `qkdb run` end to end on the tiny GPT-2 fixture: every stage leaves its records, the store
/// verifies, `qkdb mask` / `qkdb eval` rerun on the stored run reproduce it, and bad input fails
/// with one line while leaving earlier runs intact.
final class PipelineCLITests: XCTestCase {
    static let model = CLI.root.appendingPathComponent("Tests/Fixtures/models/tiny-gpt2").path

    /// A small English corpus: documents separated by blank lines.
    static func corpus(in dir: URL) throws -> String {
        let words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "house", "with", "red", "door", "we", "saw"]
        var state: UInt64 = 3
        var docs: [String] = []
        for _ in 0..<60 {
            var doc: [String] = []
            for _ in 0..<40 { state = state &* 6364136223846793005 &+ 1442695040888963407; doc.append(words[Int(state >> 33) % words.count]) }
            docs.append(doc.joined(separator: " ") + ".")
        }
        let path = dir.appendingPathComponent("corpus.txt").path
        try docs.joined(separator: "\n\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func runArguments(corpus: String, store: String) -> [String] {
        ["run", "--model", model, "--corpus", corpus, "--layer", "1", "--context", "16", "--d-hidden", "24",
         "--train-tokens", "3000", "--batch", "4", "--mask-epochs", "2", "--mask-sequences", "24", "--eval-sequences", "4",
         "--store", store]
    }

    func runsJSON(_ store: String) throws -> [[String: Any]] {
        let r = try CLI.run(["runs", "--store", store, "--format", "json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
    }

    func export(_ what: String, _ store: String, run: Int = 1, to dir: URL) throws -> String {
        let out = dir.appendingPathComponent("\(what)-\(UUID().uuidString).csv").path
        let r = try CLI.run(["export", "--store", store, "--run", String(run), "--what", what, "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    }

    func testRunStoresEveryStageAndStageCommandsReproduce() throws {
        let dir = CLI.temporaryDirectory(self)
        let corpus = try Self.corpus(in: dir)
        let store = dir.appendingPathComponent("tiny.qkdb").path
        let run = try CLI.run(Self.runArguments(corpus: corpus, store: store))
        XCTAssertEqual(run.status, 0, run.stderr)
        guard run.status == 0 else { return }

        // Every stage's records.
        let runs = try runsJSON(store)
        XCTAssertEqual(runs.count, 1)
        let info = try XCTUnwrap(runs.first)
        XCTAssertEqual(info["status"] as? String, "complete")
        XCTAssertEqual(info["kind"] as? String, "trained")
        XCTAssertEqual(info["layer"] as? Int, 1)
        let metrics = try XCTUnwrap(info["metrics"] as? [String: Any])
        for stage in ["step1", "step2", "eval"] { XCTAssertNotNil(metrics[stage], "metrics lack \(stage)") }
        XCTAssertEqual((info["d_query"] as? Int), 24)
        let features = try export("features", store, to: dir).split(separator: "\n")
        XCTAssertEqual(features.count, 1 + 24 + 24, "one statistics row per feature of both dictionaries")
        XCTAssertGreaterThan(try export("examples", store, to: dir).split(separator: "\n").count, 1)
        let pairs = try export("pairs", store, to: dir)
        XCTAssertEqual(pairs.split(separator: "\n").count - 1, info["pairs"] as? Int)
        let verify = try CLI.run(["verify", "--store", store])
        XCTAssertEqual(verify.status, 0, verify.stderr)
        XCTAssertTrue(verify.stdout.hasPrefix("ok:"), verify.stdout)
        // Tensors, sequences and vocabulary: verify counts them; the dictionaries export from them.
        XCTAssertFalse(verify.stdout.contains(" 0 tensors"), verify.stdout)
        XCTAssertFalse(verify.stdout.contains(" 0 sequences"), verify.stdout)
        // The same, read through the store library: every stage's tensors, sequences, vocabulary.
        let db = try Store(path: store)
        let tensors = Set(try db.tensorNames(run: 1))
        for side in ["query", "key"] { for t in ["W_enc", "b_enc", "W_dec", "b_dec"] { XCTAssertTrue(tensors.contains("\(side).\(t)"), "no tensor \(side).\(t)") } }
        XCTAssertTrue(tensors.isSuperset(of: ["pairmap.key_bias", Store.keyBiasImportanceTensor]), "\(tensors)")
        // The key dictionary's first-position feature (on by default) is recorded with the run.
        XCTAssertTrue(tensors.contains("key.first_position_feature"), "\(tensors)")
        XCTAssertFalse(tensors.contains("query.first_position_feature"))
        let vocabulary = try db.vocabulary(run: 1)
        XCTAssertEqual(vocabulary.count, 400, "one vocabulary row per token of the model")
        let firstExample = try XCTUnwrap(try (0..<24).lazy.compactMap { try db.examples(run: 1, side: .query, feature: $0).first }.first)
        let tokens = try db.sequence(run: 1, id: firstExample.sequenceID)
        XCTAssertEqual(tokens.count, 16)
        XCTAssertTrue(tokens.allSatisfy { vocabulary[Int($0)] != nil }, "a stored sequence has tokens outside the stored vocabulary")
        XCTAssertEqual(try db.features(run: 1, side: .key).count, 24)
        let dictionaries = dir.appendingPathComponent("dictionaries").path
        XCTAssertEqual(try CLI.run(["export-dictionaries", "--store", store, "--run", "1", "--out", dictionaries]).status, 0)
        for side in ["query", "key"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dictionaries + "/\(side)/sae_weights.safetensors"))
            // The config says the decoders were fitted after training (10% of 3000 tokens).
            let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dictionaries + "/\(side)/cfg.json"))) as? [String: Any]
            let fit = try XCTUnwrap(cfg?["decoder_fit"] as? String)
            XCTAssertTrue(fit.contains("fitted alone for 300 more tokens") && fit.contains("pruned pair map"), fit)
        }

        // `qkdb mask` and `qkdb eval` on the stored run rebuild the same data and reproduce it.
        let step2Before = try XCTUnwrap(metrics["step2"] as? [String: Any])
        let evalBefore = try XCTUnwrap(metrics["eval"] as? [String: Any])
        let mask = try CLI.run(["mask", "--store", store, "--run", "1"])
        XCTAssertEqual(mask.status, 0, mask.stderr)
        XCTAssertEqual(try export("pairs", store, to: dir), pairs, "qkdb mask did not reproduce the pair map")
        let eval = try CLI.run(["eval", "--store", store, "--run", "1"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let after = try XCTUnwrap(try runsJSON(store).first?["metrics"] as? [String: Any])
        for key in ["entriesAfterPruning", "klPruned", "klUnmasked", "maskedFractionLive"] {
            XCTAssertEqual("\((after["step2"] as? [String: Any])?[key] ?? "nil")", "\(step2Before[key] ?? "nil")", "step2 \(key)")
        }
        let resultsAfter = try XCTUnwrap((after["eval"] as? [String: Any])?["results"] as? NSArray)
        XCTAssertTrue(resultsAfter.isEqual(try XCTUnwrap(evalBefore["results"] as? NSArray)), "qkdb eval did not reproduce the evaluation")
        XCTAssertEqual(try runsJSON(store).first?["status"] as? String, "complete")

        // A quicker evaluation is added to the history; the 4-sequence figures stay on display.
        let quick = try CLI.run(["eval", "--store", store, "--run", "1", "--sequences", "2"])
        XCTAssertEqual(quick.status, 0, quick.stderr)
        XCTAssertTrue(quick.stdout.contains("run 1: added evaluation 3 of 3 (2 sequences); runs and report still show evaluation 2 (4 sequences"), quick.stdout)
        let history = try XCTUnwrap(try runsJSON(store).first?["metrics"] as? [String: Any])
        let shown = try XCTUnwrap(history["eval"] as? [String: Any])
        XCTAssertEqual(shown["sequences"] as? Int, 4)
        XCTAssertTrue(try XCTUnwrap(shown["results"] as? NSArray).isEqual(try XCTUnwrap(evalBefore["results"] as? NSArray)))
        let records = try XCTUnwrap(history["evaluations"] as? [[String: Any]])
        XCTAssertEqual(records.map { $0["sequences"] as? Int }, [4, 4, 2])
        let listed = try CLI.run(["runs", "--store", store, "--evaluations", "--format", "csv"])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        let lines = listed.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 4, listed.stdout)
        XCTAssertTrue(lines[0].hasPrefix("run,evaluation,shown,evaluated_at,sequences,tokens,metric,clean,"), listed.stdout)
        XCTAssertEqual(lines.map { $0.split(separator: ",", omittingEmptySubsequences: false)[2] }, ["shown", "no", "yes", "no"])
    }

    /// `--no-first-position-feature`: step 1 without it, and nothing recorded for it.
    func testTrainWithoutTheFirstPositionFeature() throws {
        let dir = CLI.temporaryDirectory(self)
        let corpus = try Self.corpus(in: dir)
        let store = dir.appendingPathComponent("plain.qkdb").path
        let args = ["train", "--model", Self.model, "--corpus", corpus, "--layer", "1", "--context", "16", "--d-hidden", "24",
                    "--train-tokens", "3000", "--batch", "4", "--store", store]
        let r = try CLI.run(args + ["--no-first-position-feature"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let tensors = Set(try Store(path: store).tensorNames(run: 1))
        XCTAssertTrue(tensors.contains("key.W_dec"), "\(tensors)")
        XCTAssertFalse(tensors.contains("key.first_position_feature"), "\(tensors)")
    }

    /// By default step 1's L0 target is chosen by a sweep, recorded with its frontier; a pinned
    /// `--top-k` (or `--sparsity`, `--l0-target`) is used exactly, and the config says which.
    func testSparsityIsChosenFromTheDataUnlessPinned() throws {
        let dir = CLI.temporaryDirectory(self)
        let corpus = try Self.corpus(in: dir)
        let base = ["train", "--model", Self.model, "--corpus", corpus, "--layer", "1", "--context", "16", "--d-hidden", "24",
                    "--train-tokens", "3000", "--batch", "4"]
        let chosen = dir.appendingPathComponent("chosen.qkdb").path
        let r = try CLI.run(base + ["--store", chosen])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("step 1: choose sparsity"), r.stderr)
        let info = try XCTUnwrap(try runsJSON(chosen).first)
        let config = try XCTUnwrap(info["config"] as? [String: Any])
        XCTAssertEqual(config["sparsityChoice"] as? String, "from the data (sweep)")
        let frontier = try XCTUnwrap((info["metrics"] as? [String: Any])?["sparsity_sweep"] as? [String: Any])
        let points = try XCTUnwrap(frontier["points"] as? [[String: Any]])
        XCTAssertEqual(points.compactMap { $0["k"] as? Int }, [1, 2, 4, 8, 16])
        let l0 = try XCTUnwrap(frontier["chosenL0"] as? Double)
        let target = try XCTUnwrap((config["training"] as? [String: Any])?["l0Target"] as? Double)
        XCTAssertEqual(target, (l0 * 10).rounded() / 10, accuracy: 1e-9)
        XCTAssertTrue((1...16).contains(Int(target.rounded())), "chosen L0 \(target)")

        let pinned = dir.appendingPathComponent("pinned.qkdb").path
        let p = try CLI.run(base + ["--top-k", "2", "--store", pinned])
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertFalse(p.stderr.contains("choose sparsity"), p.stderr)
        let pinnedInfo = try XCTUnwrap(try runsJSON(pinned).first)
        let pinnedConfig = try XCTUnwrap(pinnedInfo["config"] as? [String: Any])
        XCTAssertEqual(pinnedConfig["sparsityChoice"] as? String, "pinned by --top-k")
        XCTAssertNil((pinnedInfo["metrics"] as? [String: Any])?["sparsity_sweep"])
        let l0Query = try XCTUnwrap(((pinnedInfo["metrics"] as? [String: Any])?["step1"] as? [String: Any])?["l0Query"] as? Double)
        XCTAssertEqual(l0Query, 2, accuracy: 1e-9)
    }

    func testBadInputFailsWithOneLineAndKeepsEarlierRuns() throws {
        let dir = CLI.temporaryDirectory(self)
        let corpus = try Self.corpus(in: dir)
        // An earlier run in the store: an imported pair map.
        let store = dir.appendingPathComponent("s.qkdb").path
        let coo = dir.appendingPathComponent("coo.safetensors").path
        try StoreCommandTests.write(StoreCommandTests.makeMap(nHead: 4, dQuery: 10, dKey: 10, every: 3), to: coo)
        XCTAssertEqual(try CLI.run(["import-pairs", "--store", store, "--name", "earlier", "--coo", coo]).status, 0)
        let before = try export("pairs", store, to: dir)

        var args = Self.runArguments(corpus: corpus, store: store)
        args[args.firstIndex(of: "--layer")! + 1] = "7"
        try CLI.assertFails(args, mentioning: "layer 7 is out of range")
        try CLI.assertFails(["train", "--model", Self.model, "--corpus", corpus, "--layer", "7", "--context", "16", "--d-hidden", "24",
                             "--train-tokens", "3000", "--store", store], mentioning: "layer 7")
        args = Self.runArguments(corpus: corpus, store: store)
        args[args.firstIndex(of: "--model")! + 1] = dir.appendingPathComponent("no-such-model").path
        try CLI.assertFails(args, mentioning: "no-such-model")
        try CLI.assertFails(["mask", "--store", store, "--run", "9"], mentioning: "no run 9")
        try CLI.assertFails(["eval", "--store", store, "--run", "9"], mentioning: "no run 9")
        try CLI.assertFails(["mask", "--store", store, "--run", "1"], mentioning: "not trained by qkdb")
        try CLI.assertFails(["eval", "--store", store, "--run", "1"], mentioning: "not trained by qkdb")

        // On a fresh store path, refused input leaves no file behind.
        let fresh = dir.appendingPathComponent("fresh.qkdb").path
        args = Self.runArguments(corpus: corpus, store: fresh)
        args[args.firstIndex(of: "--layer")! + 1] = "7"
        try CLI.assertFails(args, mentioning: "layer 7 is out of range")
        try CLI.assertFails(["train", "--model", Self.model, "--corpus", corpus, "--layer", "7", "--store", fresh], mentioning: "layer 7")
        args = Self.runArguments(corpus: corpus, store: fresh)
        args[args.firstIndex(of: "--train-tokens")! + 1] = "0"
        try CLI.assertFails(args, mentioning: "--train-tokens must be positive")
        try CLI.assertFails(Self.runArguments(corpus: corpus, store: fresh) + ["--dead-window", "0"], mentioning: "--dead-window must be positive")
        try CLI.assertFails(Self.runArguments(corpus: corpus, store: fresh) + ["--decoder-fit=-1"], mentioning: "--decoder-fit must be a fraction ≥ 0")
        try CLI.assertFails(Self.runArguments(corpus: corpus, store: fresh) + ["--pair-fit-weight=-2"], mentioning: "--pair-fit-weight must be ≥ 0")
        try CLI.assertFails(Self.runArguments(corpus: corpus, store: fresh) + ["--mask-lr=0"], mentioning: "mask: learning rate 0.0 must be > 0")
        try CLI.assertFails(Self.runArguments(corpus: corpus, store: fresh) + ["--mask-epsilon=-1"], mentioning: "mask: epsilon -1.0 must be > 0")
        try CLI.assertFails(Self.runArguments(corpus: dir.appendingPathComponent("missing.txt").path, store: fresh), mentioning: "missing.txt")
        XCTAssertFalse(FileManager.default.fileExists(atPath: fresh), "a refused run left \(fresh) behind")

        // The earlier run is untouched and the store still verifies.
        let runs = try runsJSON(store)
        XCTAssertEqual(runs.count, 1, "a failed command left a run behind: \(runs.map { $0["name"] ?? "" })")
        XCTAssertEqual(try export("pairs", store, to: dir), before)
        XCTAssertEqual(try CLI.run(["verify", "--store", store]).status, 0)
    }
}
