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
/// Which dictionary feature tracks which planted direction is decided from the dictionaries
/// themselves (`qkdb export-dictionaries`), applied to the layer's input for each token: the
/// fixture's layer 0 writes nothing and its position embeddings are zero, so layer 1's attention
/// input for token t is ln_1(wte[t]) whatever its position.
final class PlantedPipelineTests: XCTestCase {
    static let fixture = CLI.root.appendingPathComponent("Tests/Fixtures/planted_sink_gpt2")
    static let context = 24
    static let topK = 3

    func testPlantedPairsAndSinkAreRecovered() throws {
        let planted = try Planted(fixture: Self.fixture)
        let dir = CLI.temporaryDirectory(self)
        let corpus = dir.appendingPathComponent("planted.txt")
        try planted.corpus(characters: 20_000, seed: 7).write(to: corpus, atomically: true, encoding: .utf8)
        let store = dir.appendingPathComponent("planted.qkdb").path

        let run = try CLI.run(["run", "--model", Self.fixture.path, "--corpus", corpus.path, "--layer", String(planted.layer),
                               "--context", String(Self.context), "--d-hidden", "128", "--top-k", String(Self.topK),
                               "--train-tokens", "40000", "--batch", "8", "--lr", "3e-3",
                               "--penalty", "2e-3", "--mask-epochs", "4", "--dead-window", "8000", "--mask-sequences", "256", "--eval-sequences", "16",
                               "--store", store])
        XCTAssertEqual(run.status, 0, run.stderr)
        guard run.status == 0 else { return }

        // Which features track which planted direction, from the exported dictionaries.
        let exported = dir.appendingPathComponent("dictionaries")
        let export = try CLI.run(["export-dictionaries", "--store", store, "--run", "1", "--out", exported.path])
        XCTAssertEqual(export.status, 0, export.stderr)
        let inputs = try planted.layerInputs()
        let query = try ExportedEncoder(directory: exported.appendingPathComponent("query"), k: Self.topK).activations(inputs)
        let key = try ExportedEncoder(directory: exported.appendingPathComponent("key"), k: Self.topK).activations(inputs)

        // 1. Every planted content pair: its key feature among the top 3 partners of its query feature.
        for (a, pair) in planted.pairs.enumerated() {
            let q = query.strongest(on: pair.queryTokens)
            let keys = key.tracking(pair.keyTokens, groups: planted.groups)
            XCTAssertFalse(keys.isEmpty, "no key feature tracks the key tokens of planted pair \(a)")
            let r = try CLI.run(["pairs", "--store", store, "--run", "1", "--query-feature", String(q), "--head", String(pair.head),
                                 "--top", "3", "--format", "json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let top = try jsonRows(r.stdout).compactMap { $0["key_feature"] as? Int }
            print("planted pair \(a) head \(pair.head): query feature \(q), top 3 keys \(top), planted key features \(keys.sorted())")
            XCTAssertFalse(Set(top).isDisjoint(with: keys),
                           "planted pair \(a) (head \(pair.head)): query feature \(q)'s top 3 keys \(top) miss its key features \(keys.sorted())")
        }

        // 2. The top sink: a key feature firing on BOS alone (once per sequence), used on the sink heads.
        let sinks = try CLI.run(["sinks", "--store", store, "--run", "1", "--top", "1", "--format", "json"])
        XCTAssertEqual(sinks.status, 0, sinks.stderr)
        let rows = try jsonRows(sinks.stdout)
        let first = try XCTUnwrap(rows.first, "qkdb sinks found no sink")
        let sink = try XCTUnwrap(first["key_feature"] as? Int)
        // By default the key dictionary's feature 0 is fixed to the first position (BOS here), and
        // it is the one that carries the sink; the exported encoder reproduces it (checked below).
        XCTAssertEqual(sink, 0, "the top sink is not the first-position feature")
        let shown = try CLI.run(["feature", "--store", store, "--run", "1", "--side", "key", "--index", "0", "--no-histogram", "--format", "json"])
        XCTAssertEqual(shown.status, 0, shown.stderr)
        let described = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((described["feature"] as? [String: Any])?["label"] as? String, "first position (set, not encoded)")
        // It fires on BOS, and on no other token group at even 1/20 of that (BOS may be split over
        // several such features; the top one is the one carrying the most attention).
        let onBOS = key.mean(sink, on: [planted.bos])
        XCTAssertGreaterThan(onBOS, 0, "the top sink \(sink) does not fire on BOS")
        for g in planted.groups.dropFirst() { XCTAssertLessThan(key.mean(sink, on: g), onBOS / 20, "the top sink \(sink) fires on tokens \(g)") }
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(first["bos_fraction"] as? Double), 0.9)
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
        let stored = try XCTUnwrap(try jsonRows(runs.stdout).first)
        XCTAssertEqual(stored["status"] as? String, "complete")
        let step2 = try XCTUnwrap((stored["metrics"] as? [String: Any])?["step2"] as? [String: Any])
        let masked = try XCTUnwrap(step2["maskedFractionLive"] as? Double)
        print("planted top sink: key feature \(sink) bos_fraction \(first["bos_fraction"] ?? "?") density \(density) head importance \(headImportance)")
        print("planted step 2: kept \(step2["entriesAfterPruning"] ?? "?") of live \(step2["liveQueryFeatures"] ?? "?")×\(step2["liveKeyFeatures"] ?? "?")×heads, masked \(masked), KL unmasked \(step2["klUnmasked"] ?? "?") pruned \(step2["klPruned"] ?? "?")")
        XCTAssertGreaterThanOrEqual(masked, 0.99, "step 2 kept \(step2["entriesAfterPruning"] ?? "?") entries")
    }

    private func jsonRows(_ text: String) throws -> [[String: Any]] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]], "not a JSON array: \(text.prefix(200))")
    }
}

/// What the fixture plants (its planted.json) and the layer input each token gives.
private struct Planted {
    struct Pair { var head: Int; var queryTokens: [Int]; var keyTokens: [Int] }
    var layer: Int
    var bos: Int
    var pairs: [Pair]
    var sinkHeads: [Int]
    var neutral: [Int]
    let fixture: URL

    init(fixture: URL) throws {
        self.fixture = fixture
        let data = try Data(contentsOf: fixture.appendingPathComponent("planted.json"))
        let j = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        layer = try XCTUnwrap(j["layer"] as? Int)
        bos = try XCTUnwrap(j["bos"] as? Int)
        sinkHeads = try XCTUnwrap(j["sink_heads"] as? [Int])
        pairs = try XCTUnwrap(j["pairs"] as? [[String: Any]]).map {
            Pair(head: try XCTUnwrap($0["head"] as? Int), queryTokens: try XCTUnwrap($0["query_tokens"] as? [Int]),
                 keyTokens: try XCTUnwrap($0["key_tokens"] as? [Int]))
        }
        neutral = try XCTUnwrap(j["neutral_chars"] as? String).unicodeScalars.map { Int($0.value) } + [32]
    }

    /// Token groups a feature can track: BOS, each pair's query and key tokens, the neutral tokens.
    var groups: [[Int]] { [[bos]] + pairs.flatMap { [$0.queryTokens, $0.keyTokens] } + [neutral] }

    /// One long document (so no end-of-text separator, which is the BOS token here, falls inside
    /// a sequence): half planted characters, half neutral ones, with spaces now and then.
    func corpus(characters: Int, seed: UInt64) -> String {
        var rng = SplitMix(seed)
        let plantedChars = pairs.flatMap { $0.queryTokens + $0.keyTokens }
        let neutralChars = neutral.filter { $0 != 32 }
        var out = String.UnicodeScalarView()
        for _ in 0..<characters {
            let pool = rng.unit() < 0.5 ? plantedChars : neutralChars
            out.append(Unicode.Scalar(UInt8(pool[Int(rng.next() % UInt64(pool.count))])))
            if rng.unit() < 0.12 { out.append(" ") }
        }
        return String(out) + "\n"
    }

    /// ln_1(wte[t]) for every token (ln_1 has weight 1 and bias 0 in the fixture), [vocab][d_model].
    func layerInputs() throws -> [[Float]] {
        let wte = try SafeTensorsF32(url: fixture.appendingPathComponent("model.safetensors")).tensor("wte.weight")
        let d = wte.shape[1]
        return (0..<wte.shape[0]).map { t in
            let row = wte.values[(t * d)..<((t + 1) * d)]
            let mean = row.reduce(0, +) / Float(d)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(d)
            return row.map { ($0 - mean) / (variance + 1e-5).squareRoot() }
        }
    }
}

/// A transcoder's encoder as exported in SAELens layout: a = TopK(ReLU(x·W_enc + b_enc)).
private struct ExportedEncoder {
    var wEnc: [Float], bEnc: [Float], dIn: Int, dHidden: Int, k: Int

    init(directory: URL, k: Int) throws {
        let file = try SafeTensorsF32(url: directory.appendingPathComponent("sae_weights.safetensors"))
        let w = try file.tensor("W_enc"), b = try file.tensor("b_enc")
        wEnc = w.values; bEnc = b.values; dIn = w.shape[0]; dHidden = w.shape[1]; self.k = k
    }

    func activations(_ inputs: [[Float]]) -> Activations {
        Activations(rows: inputs.map { x in
            var pre = bEnc
            for i in 0..<dIn where x[i] != 0 { for f in 0..<dHidden { pre[f] += x[i] * wEnc[i * dHidden + f] } }
            let kept = Set((0..<dHidden).sorted { pre[$0] > pre[$1] }.prefix(k))
            return (0..<dHidden).map { kept.contains($0) ? max(0, pre[$0]) : 0 }
        })
    }
}

/// Feature activations per token, [vocab][d_hidden].
private struct Activations {
    var rows: [[Float]]

    func mean(_ f: Int, on tokens: [Int]) -> Float { tokens.reduce(0) { $0 + rows[$1][f] } / Float(tokens.count) }

    /// The feature with the largest mean activation on `tokens`.
    func strongest(on tokens: [Int]) -> Int {
        (0..<rows[0].count).max { mean($0, on: tokens) < mean($1, on: tokens) } ?? 0
    }

    /// Features that track `tokens`: these tokens are the group they fire on most, at least half
    /// as strongly as the strongest feature does.
    func tracking(_ tokens: [Int], groups: [[Int]]) -> Set<Int> {
        let best = mean(strongest(on: tokens), on: tokens)
        return Set((0..<rows[0].count).filter { f in
            let m = mean(f, on: tokens)
            return m > 0 && m >= 0.5 * best && groups.allSatisfy { mean(f, on: $0) <= m }
        })
    }
}

/// Just enough of a safetensors reader for F32 tensors (the test target links no qkdb library).
private struct SafeTensorsF32 {
    let data: Data
    let header: [String: Any]
    let start: Int

    init(url: URL) throws {
        data = try Data(contentsOf: url)
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        header = try XCTUnwrap(JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any])
        start = 8 + n
    }

    func tensor(_ name: String) throws -> (shape: [Int], values: [Float]) {
        let entry = try XCTUnwrap(header[name] as? [String: Any], "no tensor \(name)")
        XCTAssertEqual(entry["dtype"] as? String, "F32")
        let shape = try XCTUnwrap(entry["shape"] as? [Int])
        let offsets = try XCTUnwrap(entry["data_offsets"] as? [Int])
        let bytes = data.subdata(in: (start + offsets[0])..<(start + offsets[1]))
        let values = bytes.withUnsafeBytes { raw in (0..<(bytes.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
        return (shape, values)
    }
}

/// SplitMix64: a tiny seeded generator, so the corpus is the same on every run.
private struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
