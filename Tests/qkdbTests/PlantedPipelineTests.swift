import XCTest
import Foundation

/// The end-to-end planted check (issue 5): `qkdb run` on a tiny GPT-2 whose layer 1 implements
/// known query-direction × key-direction pairs and a dense-query × BOS-key attention sink
/// (Tests/Fixtures/planted_sink_gpt2, made by tools/fixtures/make_planted_sink_gpt2.py) must
/// recover that structure, as read back through the query commands a user runs:
/// - every planted content pair's key feature is in the top 3 of `qkdb pairs` for the query
///   feature that tracks the planted query direction, on the planted head;
/// - the top row of `qkdb sinks` is a key feature that fires on BOS alone, used on the sink heads;
/// - step 2 prunes ≥ 99% of the live-feature pair map.
///
/// Which dictionary feature tracks which planted direction is decided by the shared scorer
/// (`PlantedScorer`, also used by `PlantedFamilyTests`) from the dictionaries themselves
/// (`qkdb export-dictionaries`), applied to the layer's input for each token: the fixture's
/// layer 0 writes nothing and its position embeddings are zero, so layer 1's attention input for
/// token t is ln_1(wte[t]) whatever its position.
final class PlantedPipelineTests: XCTestCase {
    static let fixture = CLI.root.appendingPathComponent("Tests/Fixtures/planted_sink_gpt2")
    static let context = 24
    static let topK = 3

    func testPlantedPairsAndSinkAreRecovered() throws {
        let planted = try PlantedTruth(fixture: Self.fixture)
        let dir = CLI.temporaryDirectory(self)
        let corpus = dir.appendingPathComponent("planted.txt")
        try planted.corpus(tokens: 22_400, seed: 7, plantedShare: 0.5, spaceRate: 0.12).write(to: corpus, atomically: true, encoding: .utf8)
        let store = dir.appendingPathComponent("planted.qkdb").path

        let run = try CLI.run(["run", "--model", Self.fixture.path, "--corpus", corpus.path, "--layer", String(planted.layer),
                               "--context", String(Self.context), "--d-hidden", "128", "--top-k", String(Self.topK),
                               "--train-tokens", "40000", "--batch", "8", "--lr", "3e-3",
                               "--penalty", "2e-3", "--mask-epochs", "4", "--dead-window", "8000", "--mask-sequences", "256", "--eval-sequences", "16",
                               "--store", store])
        XCTAssertEqual(run.status, 0, run.stderr)
        guard run.status == 0 else { return }

        // 1 and 2, scored as the planted family is (Planted/PlantedScorer.swift): every planted content
        // pair's key feature among the top 3 partners of its query feature; the top sink a key
        // feature firing on BOS alone; and (reported, not required here) the directions found.
        let score = try PlantedScorer.score(planted, store: store, in: dir)
        print(score.line)
        for m in score.missed { print("  missed: \(m)") }
        XCTAssertEqual(score.pairsFound, score.pairsTotal, "planted pairs in the top 3: \(score.missed)")
        XCTAssertEqual(score.sinkOK, true, "top sink: \(score.sinkDescription)")

        // The top sink in detail: by default the key dictionary's feature 0 is fixed to the first
        // position (BOS here), and it is the one that carries the sink.
        let sinks = try CLI.run(["sinks", "--store", store, "--run", "1", "--top", "1", "--format", "json"])
        XCTAssertEqual(sinks.status, 0, sinks.stderr)
        let rows = try PlantedScorer.jsonRows(sinks.stdout)
        let first = try XCTUnwrap(rows.first, "qkdb sinks found no sink")
        let sink = try XCTUnwrap(first["key_feature"] as? Int)
        XCTAssertEqual(sink, 0, "the top sink is not the first-position feature")
        let shown = try CLI.run(["feature", "--store", store, "--run", "1", "--side", "key", "--index", "0", "--no-histogram", "--format", "json"])
        XCTAssertEqual(shown.status, 0, shown.stderr)
        let described = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((described["feature"] as? [String: Any])?["label"] as? String, "first position (set, not encoded)")
        let density = try XCTUnwrap(first["key_density"] as? Double)
        XCTAssertEqual(density, 1 / Double(Self.context), accuracy: 0.5 / Double(Self.context), "the top sink fires off BOS")
        // The heads it carries the most attention on are the planted sink heads.
        var headImportance: [Int: Double] = [:]
        for row in rows where row["key_feature"] as? Int == sink {
            if let h = row["head"] as? Int, let v = row["head_importance"] as? Double { headImportance[h] = v }
        }
        let strongest = headImportance.sorted { $0.value > $1.value }.prefix(planted.sinkHeads.count).map(\.key)
        XCTAssertEqual(Set(strongest), Set(planted.sinkHeads), "top sink's head importance \(headImportance), planted on \(planted.sinkHeads)")

        // 3. Step 2 pruned ≥ 99% of the live-feature map.
        let runs = try CLI.run(["runs", "--store", store, "--format", "json"])
        XCTAssertEqual(runs.status, 0, runs.stderr)
        let stored = try XCTUnwrap(try PlantedScorer.jsonRows(runs.stdout).first)
        XCTAssertEqual(stored["status"] as? String, "complete")
        let step2 = try XCTUnwrap((stored["metrics"] as? [String: Any])?["step2"] as? [String: Any])
        let masked = try XCTUnwrap(step2["maskedFractionLive"] as? Double)
        print("planted top sink: key feature \(sink) bos_fraction \(first["bos_fraction"] ?? "?") density \(density) head importance \(headImportance)")
        print("planted step 2: kept \(step2["entriesAfterPruning"] ?? "?") of live \(step2["liveQueryFeatures"] ?? "?")×\(step2["liveKeyFeatures"] ?? "?")×heads, masked \(masked), KL unmasked \(step2["klUnmasked"] ?? "?") pruned \(step2["klPruned"] ?? "?")")
        XCTAssertGreaterThanOrEqual(masked, 0.99, "step 2 kept \(step2["entriesAfterPruning"] ?? "?") entries")

        // 4. Reading the run (issue 17): `qkdb heads` names the planted sink heads (the scorer's (d)),
        // and `qkdb features --token` finds, for each planted pair's key tokens, a key feature
        // tracking that pair's key direction among its top 3.
        XCTAssertEqual(score.headsOK, true, score.headsDescription)
        for (a, pair) in planted.pairs.enumerated() {
            for token in pair.keyTokens {
                let text = try XCTUnwrap(planted.tokenText[token])
                let r = try CLI.run(["features", "--store", store, "--run", "1", "--token", text, "--side", "key", "--top", "3", "--format", "json"])
                XCTAssertEqual(r.status, 0, r.stderr)
                let found = try PlantedScorer.jsonRows(r.stdout).compactMap { $0["feature"] as? Int }
                XCTAssertTrue(found.contains { score.pairKeyFeatures[a].contains($0) },
                              "features --token \(text): top \(found), pair \(a)'s key features \(score.pairKeyFeatures[a].sorted())")
            }
        }
    }
}
