import XCTest
import Foundation

/// How much of a planted fixture's structure a stored run recovered, measured the way a user sees
/// it: through `qkdb export-dictionaries`, `qkdb pairs` and `qkdb sinks` on the real store.
struct PlantedScore {
    var name: String
    /// "gpt2 d96 4h", for the table.
    var shape = ""
    var queryFound = 0, queryTotal = 0, keyFound = 0, keyTotal = 0
    var pairsFound = 0, pairsTotal = 0
    /// Previous-token pairs found whose matching row peaks at offset 1 (RoPE fixtures).
    var previousAtOffset1 = 0, previousTotal = 0
    /// nil when the fixture has no sink heads.
    var sinkOK: Bool?
    var sinkDescription = "no sink heads"
    /// (d) `qkdb heads` names every sink head "first position" and every other previous-token head
    /// "previous token"; nil when the fixture has neither.
    var headsOK: Bool?
    var headsDescription = ""
    /// Per planted pair, the key features that track its key direction (as (b) counts them).
    var pairKeyFeatures: [Set<Int>] = []
    var l0Query = Double.nan, l0Key = Double.nan
    var seconds = 0.0
    /// The sweep stage's summary line from `qkdb run` (chosen L0, KL by k), when the sparsity was chosen from the data.
    var sparsityNote = ""
    var missed: [String] = []

    var queryMissedShare: Double { queryTotal == 0 ? 0 : Double(queryTotal - queryFound) / Double(queryTotal) }
    var keyMissedShare: Double { keyTotal == 0 ? 0 : Double(keyTotal - keyFound) / Double(keyTotal) }
    var pairsShare: Double { pairsTotal == 0 ? 1 : Double(pairsFound) / Double(pairsTotal) }

    /// The issue-13 bar: ≤ 10% of directions missed per side, ≥ 90% of pairs in the top 3, sink ok.
    var passes: Bool { queryMissedShare <= 0.1 && keyMissedShare <= 0.1 && pairsShare >= 0.9 && sinkOK != false && headsOK != false }

    static let tableHeader = """
        | config | model | directions q | directions k | pairs in top 3 | previous-token at offset 1 | sink | head roles | L0 q / k | seconds | issue 13 |
        |---|---|---|---|---|---|---|---|---|---|---|
        """

    var tableRow: String {
        String(format: "| %@ | %@ | %d/%d | %d/%d | %d/%d | %@ | %@ | %@ | %.1f / %.1f | %.0f | %@ |", name, shape, queryFound, queryTotal,
               keyFound, keyTotal, pairsFound, pairsTotal, previousTotal == 0 ? "–" : "\(previousAtOffset1)/\(previousTotal)",
               sinkOK.map { $0 ? "ok" : "wrong" } ?? "–", headsOK.map { $0 ? "ok" : "wrong" } ?? "–", l0Query, l0Key, seconds, passes ? "pass" : "FAIL")
    }

    var line: String {
        (sparsityNote.isEmpty ? "" : "planted \(name) sweep:\(sparsityNote)\n") + scoreLine
    }

    var scoreLine: String {
        let prev = previousTotal == 0 ? "" : String(format: ", previous-token at offset 1 %d/%d", previousAtOffset1, previousTotal)
        return String(format: "planted %@: directions q %d/%d k %d/%d, pairs in top 3 %d/%d%@, sink %@, L0 %.1f/%.1f, %.0f s — %@",
                      name, queryFound, queryTotal, keyFound, keyTotal, pairsFound, pairsTotal, prev,
                      sinkOK.map { $0 ? "ok" : "WRONG" } ?? "n/a", l0Query, l0Key, seconds, passes ? "pass" : "FAIL")
    }
}

/// The one scorer of planted fixtures (the family test, the planted GPT-2 pipeline test and
/// tools/planted_family.sh all go through it).
///
/// (a) A planted direction is found when some feature's activation over the tokens correlates
///     ≥ 0.9 with the direction's presence (x_t · direction for the layer input x_t of each token)
///     and that feature's decoder row has cosine ≥ 0.8 with the direction's image through W_Q or
///     W_K (the criterion of Tests/QKTrainTests/PlantedRecoveryTests.swift).
/// (b) A planted pair is found when `qkdb pairs --query-feature Q --head H --top 3` lists a key
///     feature of its key direction, Q being the query feature that best matches its query
///     direction (as in (a), found or not). The key direction's features are every feature whose
///     activation correlates ≥ 0.5 with its presence, plus its best match: a direction split
///     over a few features still counts as seen, since the user would see it.
/// (c) The sink is ok when the top row of `qkdb sinks` is a key feature with bos_fraction ≥ 0.9
///     that fires on BOS alone: the run's first-position feature (set at position 0 by qkdb),
///     or a feature whose exported encoder gives BOS a positive activation and every other
///     token at most 1/20 of it.
enum PlantedScorer {
    static let correlation = 0.9, decoderCosine = 0.8, keyCorrelation = 0.5, top = 3

    /// `qkdb run` on the fixture with the given options (plus the corpus, model, layer, context
    /// and store), then the score of run 1. `dir` receives the corpus, store and exports.
    static func runAndScore(_ truth: PlantedTruth, in dir: URL, options: [String], corpusTokens: Int = 80_000,
                            seed: UInt64 = 7) throws -> PlantedScore {
        let corpus = dir.appendingPathComponent("\(truth.name).txt")
        try truth.corpus(tokens: corpusTokens, seed: seed).write(to: corpus, atomically: true, encoding: .utf8)
        let store = dir.appendingPathComponent("\(truth.name).qkdb").path
        let started = Date()
        let run = try CLI.run(["run", "--model", truth.fixture.path, "--corpus", corpus.path, "--layer", String(truth.layer),
                               "--context", String(truth.context), "--store", store] + options)
        let seconds = Date().timeIntervalSince(started)
        XCTAssertEqual(run.status, 0, "\(truth.name): qkdb run failed: \(run.stderr.suffix(2000))")
        guard run.status == 0 else {
            var s = PlantedScore(name: truth.name); s.shape = truth.shape; s.seconds = seconds; s.missed = ["qkdb run failed"]; s.sinkOK = false
            return s
        }
        var score = try self.score(truth, store: store, in: dir)
        score.seconds = seconds
        // What the sparsity sweep chose, as `qkdb run` said it (empty when the sparsity was pinned).
        score.sparsityNote = run.stderr.replacingOccurrences(of: "\r", with: "\n").split(separator: "\n")
            .last { $0.contains("choose sparsity done") }.map { String($0.split(separator: "done in").last ?? "") } ?? ""
        return score
    }

    static func score(_ truth: PlantedTruth, store: String, run: Int = 1, in dir: URL) throws -> PlantedScore {
        var s = PlantedScore(name: truth.name)
        s.shape = truth.shape
        let exported = dir.appendingPathComponent("\(truth.name)-dictionaries")
        let export = try CLI.run(["export-dictionaries", "--store", store, "--run", String(run), "--out", exported.path])
        XCTAssertEqual(export.status, 0, export.stderr)
        let queryDict = try ExportedDictionary(directory: exported.appendingPathComponent("query"))
        let keyDict = try ExportedDictionary(directory: exported.appendingPathComponent("key"))
        let inputs = try truth.layerInputs()
        let query = Side(dictionary: queryDict, inputs: inputs), key = Side(dictionary: keyDict, inputs: inputs)

        // (a) directions, per side.
        let queryMatches = truth.queryDirections.map { query.bestMatch($0, inputs: inputs) }
        let keyMatches = truth.keyDirections.map { key.bestMatch($0, inputs: inputs) }
        for (side, matches, dirs) in [("query", queryMatches, truth.queryDirections), ("key", keyMatches, truth.keyDirections)] {
            for (i, m) in matches.enumerated() where !m.found {
                s.missed.append(String(format: "%@ direction %d (%@): best feature %d correlation %.2f decoder cosine %.2f",
                                       side, i, dirs[i].role, m.feature, m.corr, m.cos))
            }
        }
        s.queryTotal = queryMatches.count; s.queryFound = queryMatches.filter(\.found).count
        s.keyTotal = keyMatches.count; s.keyFound = keyMatches.filter(\.found).count

        // (b) pairs in the top 3 of `qkdb pairs`.
        for (a, pair) in truth.pairs.enumerated() {
            let q = queryMatches[pair.queryDirection].feature
            let presence = truth.keyDirections[pair.keyDirection].presence(inputs)
            var keys = Set(key.features(correlatingAtLeast: keyCorrelation, with: presence))
            keys.insert(keyMatches[pair.keyDirection].feature)
            s.pairKeyFeatures.append(keys)
            let r = try CLI.run(["pairs", "--store", store, "--run", String(run), "--query-feature", String(q), "--head", String(pair.head),
                                 "--top", String(top), "--format", "json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let rows = try jsonRows(r.stdout)
            let hit = rows.first { ($0["key_feature"] as? Int).map(keys.contains) ?? false }
            s.pairsTotal += 1
            if pair.offset == 1 { s.previousTotal += 1 }
            if let hit {
                s.pairsFound += 1
                if pair.offset == 1, (hit["peak_offset"] as? Int) == 1 { s.previousAtOffset1 += 1 }
            } else {
                let top = rows.compactMap { $0["key_feature"] as? Int }
                s.missed.append("pair \(a) head \(pair.head)\(pair.offset == 1 ? " (previous-token)" : ""): query feature \(q)'s top \(top) miss key features \(keys.sorted())")
            }
        }

        // (c) the top sink.
        if !truth.sinkHeads.isEmpty {
            let sinks = try CLI.run(["sinks", "--store", store, "--run", String(run), "--top", "1", "--format", "json"])
            XCTAssertEqual(sinks.status, 0, sinks.stderr)
            if let first = try jsonRows(sinks.stdout).first, let f = first["key_feature"] as? Int {
                let fraction = first["bos_fraction"] as? Double ?? 0
                let acts = key.column(f)            // index 0 is BOS (PlantedTruth.scoredTokens)
                let onBOS = acts[0], elsewhere = acts.dropFirst().max() ?? 0
                let firstPosition = f == keyDict.firstPositionFeature
                let alone = firstPosition || (onBOS > 0 && elsewhere <= onBOS / 20)
                s.sinkOK = fraction >= 0.9 && alone
                s.sinkDescription = String(format: "key feature %d%@: bos_fraction %.2f, on BOS %.3f, elsewhere at most %.3f",
                                           f, firstPosition ? " (first position)" : "", fraction, onBOS, elsewhere)
            } else {
                s.sinkOK = false; s.sinkDescription = "qkdb sinks found no sink"
            }
            if s.sinkOK == false { s.missed.append("top sink: \(s.sinkDescription)") }
        }

        // (d) head roles.
        let previousHeads = Set(truth.pairs.filter { $0.offset == 1 }.map(\.head)).subtracting(truth.sinkHeads)
        if !truth.sinkHeads.isEmpty || !previousHeads.isEmpty {
            let heads = try CLI.run(["heads", "--store", store, "--run", String(run), "--top", "0", "--format", "json"])
            XCTAssertEqual(heads.status, 0, heads.stderr)
            var role: [Int: String] = [:]
            for row in try jsonRows(heads.stdout) { if let h = row["head"] as? Int { role[h] = row["role"] as? String ?? "" } }
            let wrong = truth.sinkHeads.filter { role[$0] != "first position" }.map { "sink head \($0) is \(role[$0] ?? "missing")" }
                + previousHeads.sorted().filter { role[$0] != "previous token" }.map { "previous-token head \($0) is \(role[$0] ?? "missing")" }
            s.headsOK = wrong.isEmpty
            s.headsDescription = wrong.isEmpty ? "heads: sinks \(truth.sinkHeads), previous-token \(previousHeads.sorted())" : wrong.joined(separator: "; ")
            if !wrong.isEmpty { s.missed.append("qkdb heads: \(s.headsDescription)") }
        }

        // L0, for the table.
        let runs = try CLI.run(["runs", "--store", store, "--format", "json"])
        if let info = try? jsonRows(runs.stdout).first(where: { $0["id"] as? Int == run }),
           let step1 = (info["metrics"] as? [String: Any])?["step1"] as? [String: Any] {
            s.l0Query = step1["l0Query"] as? Double ?? .nan; s.l0Key = step1["l0Key"] as? Double ?? .nan
        }
        return s
    }

    static func jsonRows(_ text: String) throws -> [[String: Any]] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]], "not a JSON array: \(text.prefix(200))")
    }

    /// One dictionary's activations over the scored tokens, by feature.
    struct Side {
        let dictionary: ExportedDictionary
        let columns: [[Float]]     // [feature][token]

        init(dictionary: ExportedDictionary, inputs: [[Float]]) {
            self.dictionary = dictionary
            let rows = dictionary.activations(inputs)
            columns = (0..<dictionary.dHidden).map { f in rows.map { $0[f] } }
        }

        func column(_ f: Int) -> [Float] { columns[f] }

        func features(correlatingAtLeast c: Double, with presence: [Float]) -> [Int] {
            columns.indices.filter { Stats.pearson(columns[$0], presence) >= c }
        }

        /// Among features correlating ≥ 0.9 with the direction's presence, the one whose decoder
        /// row is most aligned with its image; if none correlates that well, the best-correlated
        /// one (so a miss says how close it came).
        func bestMatch(_ d: PlantedTruth.Direction, inputs: [[Float]]) -> (found: Bool, corr: Double, cos: Double, feature: Int) {
            let presence = d.presence(inputs)
            var best = (corr: -1.0, cos: -1.0, feature: 0)
            for f in columns.indices {
                let c = Stats.pearson(columns[f], presence)
                let qualifies = c >= PlantedScorer.correlation, bestQualifies = best.corr >= PlantedScorer.correlation
                guard qualifies || !bestQualifies else { continue }
                let cs = Stats.cosine(dictionary.decoderRow(f), d.image)
                if (qualifies && (!bestQualifies || cs > best.cos)) || (!qualifies && c > best.corr) { best = (c, cs, f) }
            }
            return (best.corr >= PlantedScorer.correlation && best.cos >= PlantedScorer.decoderCosine, best.corr, best.cos, best.feature)
        }
    }
}

extension PlantedTruth.Direction {
    /// The direction's coefficient in each scored token's layer input.
    func presence(_ inputs: [[Float]]) -> [Float] { inputs.map { Stats.dot($0, vector) } }
}
