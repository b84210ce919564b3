import Foundation
import XCTest
@testable import QKStore

/// Runs, tensors, features, examples, sequences, vocabulary, sinks and CSV export.
final class StoreCatalogTests: XCTestCase {
    func testRunsAreCreatedUpdatedAndRewrittenStageByStage() throws {
        let path = StoreTestSupport.temporaryStorePath(self)
        let store = try Store(path: path, mode: .create)
        let run = try store.createRun(RunSpec(name: "minilm-l2", kind: .trained, model: "models/all-MiniLM-L6-v2", architecture: "bert", layer: 2,
                                              nHead: 12, nKVHead: 12, dHead: 32, dModel: 384, dQuery: 8, dKey: 8,
                                              config: #"{"lr": 0.001}"#, metrics: #"{"kl": 0.12}"#, status: "training"))
        try store.mergeMetrics(run: run, #"{"l0_query": 16.6, "kl": 0.11}"#)
        try store.setStatus(run: run, "complete")
        let coo = PairCOO(head: [0, 3], queryFeature: [1, 7], keyFeature: [2, 0], columns: [.value: [0.5, -1]])
        try store.putPairMap(run: run, coo)
        // Re-writing the map in a later transaction replaces it.
        try store.putPairMap(run: run, PairCOO(head: [11], queryFeature: [7], keyFeature: [7], columns: [.value: [2]]))
        let info = try Store(path: path).run(run)
        XCTAssertEqual(info.spec.layer, 2)
        XCTAssertEqual(info.spec.status, "complete")
        let metrics = try JSONSerialization.jsonObject(with: Data(info.spec.metrics.utf8)) as? [String: Double]
        XCTAssertEqual(metrics, ["kl": 0.11, "l0_query": 16.6])
        XCTAssertEqual(info.pairMap?.nnz, 1)
        XCTAssertEqual(try store.pairs(run: run, PairQuery(side: .query, feature: 7, top: 0, order: .value)).map(\.head), [11])
        XCTAssertThrowsError(try store.mergeMetrics(run: run, "[1]")) { XCTAssertTrue("\($0)".contains("JSON object")) }
        XCTAssertThrowsError(try store.run(99)) { XCTAssertEqual("\($0)", "\(path): no run 99 (see `qkdb runs`)") }
        XCTAssertTrue(try store.verify().isClean)
    }

    func testDenseTensorsRoundTripBitExact() throws {
        let store = try Store(path: StoreTestSupport.temporaryStorePath(self), mode: .create)
        let run = try store.createRun(RunSpec(name: "t", kind: .trained, nHead: 1, dQuery: 4, dKey: 4))
        var rng = StoreTestSupport.Rng(state: 9)
        var values = (0..<(37 * 5)).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
        values[0] = .nan; values[1] = -0.0; values[2] = .infinity; values[3] = .leastNonzeroMagnitude
        try store.putTensor(run: run, name: "query.W_enc", shape: [37, 5], values: values)
        try store.putTensor(run: run, name: "query.b_enc", shape: [0], values: [])
        let back = try store.tensor(run: run, name: "query.W_enc")
        XCTAssertEqual(back.shape, [37, 5])
        XCTAssertEqual(back.values.map(\.bitPattern), values.map(\.bitPattern))
        XCTAssertEqual(try store.tensor(run: run, name: "query.b_enc").values, [])
        XCTAssertEqual(try store.tensorNames(run: run), ["query.W_enc", "query.b_enc"])
        XCTAssertThrowsError(try store.putTensor(run: run, name: "bad", shape: [2, 2], values: [1])) { XCTAssertTrue("\($0)".contains("'bad'")) }
        XCTAssertThrowsError(try store.tensor(run: run, name: "nope")) { XCTAssertTrue("\($0)".contains("no tensor 'nope'")) }
    }

    func testFeaturesExamplesSequencesVocabularyRoundTrip() throws {
        let store = try Store(path: StoreTestSupport.temporaryStorePath(self), mode: .create)
        let run = try store.createRun(RunSpec(name: "t", kind: .trained, nHead: 1, dQuery: 4, dKey: 3))
        let feats = [FeatureStats(side: .query, index: 3, alive: true, density: 0.01, meanActivation: 1.5, maxActivation: 4, bosFraction: 0.02, label: "a, \"quoted\"\nlabel"),
                     FeatureStats(side: .key, index: 0, alive: false)]
        try store.putFeatures(run: run, feats)
        XCTAssertEqual(try store.feature(run: run, side: .query, index: 3), feats[0])
        XCTAssertNil(try store.feature(run: run, side: .query, index: 2))
        XCTAssertThrowsError(try store.feature(run: run, side: .key, index: 3)) { XCTAssertTrue("\($0)".contains("key feature 3 is out of range for run \(run)")) }
        let ex = [FeatureExample(side: .key, feature: 2, rank: 1, sequenceID: 7, position: 3, activation: 0.5),
                  FeatureExample(side: .key, feature: 2, rank: 0, sequenceID: 7, position: 1, activation: 2.5)]
        try store.putExamples(run: run, ex)
        XCTAssertEqual(try store.examples(run: run, side: .key, feature: 2), [ex[1], ex[0]])
        let tokens: [Int32] = [101, 7592, 2088, 102, 0, -1, Int32.max]
        try store.putSequences(run: run, [(id: 7, tokens: tokens), (id: 8, tokens: [])])
        XCTAssertEqual(try store.sequence(run: run, id: 7), tokens)
        XCTAssertEqual(try store.sequence(run: run, id: 8), [])
        try store.putVocabulary(run: run, [(id: 0, text: "[PAD]"), (id: 101, text: "[CLS]")])
        XCTAssertEqual(try store.vocabulary(run: run), [0: "[PAD]", 101: "[CLS]"])
        let report = try store.verify()
        XCTAssertTrue(report.isClean)
        XCTAssertEqual(report.sequences, 2)
    }

    func testSinksMatchABruteForceRanking() throws {
        var rng = StoreTestSupport.Rng(state: 5)
        let shape = PairMapShape(nHead: 3, dQuery: 20, dKey: 10)
        let coo = StoreTestSupport.randomMap(&rng, shape: shape, n: 250, columns: [.value, .importance])
        let store = try Store(path: StoreTestSupport.temporaryStorePath(self), mode: .create)
        let run = try store.createRun(RunSpec(name: "s", kind: .trained, nHead: 3, dQuery: 20, dKey: 10))
        try store.putPairMap(run: run, coo, options: PairMapOptions(chunkNNZ: 9, keyChunkNNZ: 9))
        let bos: [Double] = (0..<10).map { $0 % 3 == 0 ? 0.95 : 0.2 }
        try store.putFeatures(run: run, (0..<10).map { FeatureStats(side: .key, index: $0, alive: true, density: 0.1, bosFraction: bos[$0]) }
                                       + (0..<20).map { FeatureStats(side: .query, index: $0, alive: true, density: Double($0) / 100) })
        let sinks = try store.sinks(run: run, threshold: 0.9, topQueries: 2)
        // Brute force: total importance per candidate key feature, then per head.
        let imp = coo.columns[.importance]!
        var totals: [(Int, Double)] = []
        for j in 0..<10 where bos[j] >= 0.9 {
            totals.append((j, (0..<coo.count).filter { Int(coo.keyFeature[$0]) == j }.reduce(0.0) { $0 + Double(imp[$1]) }))
        }
        totals.sort { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        XCTAssertEqual(sinks.map(\.keyFeature), totals.map(\.0))
        for (s, t) in zip(sinks, totals) {
            XCTAssertEqual(s.totalImportance, t.1, accuracy: 1e-9)
            for h in s.heads {
                let q = PairQuery(side: .key, feature: s.keyFeature, head: h.head, top: 2, order: .importance)
                let want = StoreTestSupport.expectedPairs(coo, nHead: 3, q)
                XCTAssertEqual(h.queries.map(\.queryFeature), want.map(\.queryFeature))
                XCTAssertEqual(h.queries.map(\.density), want.map { Double($0.queryFeature) / 100 })
            }
            let headsWithPairs = (0..<3).filter { h in (0..<coo.count).contains { Int(coo.head[$0]) == h && Int(coo.keyFeature[$0]) == s.keyFeature } }
            XCTAssertEqual(s.heads.map(\.head), headsWithPairs)
        }
    }

    func testPairsExportIsEveryPairInOrderAndReadsBackExactly() throws {
        var rng = StoreTestSupport.Rng(state: 6)
        let shape = PairMapShape(nHead: 2, dQuery: 15, dKey: 15)
        let coo = StoreTestSupport.randomMap(&rng, shape: shape, n: 200, columns: [.value, .mask, .cooccurrence], extra: ["peak"])
        let path = StoreTestSupport.temporaryStorePath(self)
        let store = try Store(path: path, mode: .create)
        let run = try store.createRun(RunSpec(name: "e", kind: .imported, nHead: 2, dQuery: 15, dKey: 15))
        try store.putPairMap(run: run, coo, options: PairMapOptions(chunkNNZ: 11, keyChunkNNZ: 11))
        let out = path + ".csv"
        XCTAssertEqual(try store.exportCSV(run: run, what: .pairs, to: out), coo.count)
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines[0], "run,head,query_feature,key_feature,value,mask,importance,mean_contribution,cooccurrence,peak,query_label,key_label")
        let order = (0..<coo.count).sorted { (coo.head[$0], coo.queryFeature[$0], coo.keyFeature[$0]) < (coo.head[$1], coo.queryFeature[$1], coo.keyFeature[$1]) }
        XCTAssertEqual(lines.count, coo.count + 1)
        for (line, n) in zip(lines.dropFirst(), order) {
            let all = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(all.first, String(run))
            XCTAssertEqual(all.suffix(2), ["", ""])   // an imported run has no labels
            let f = Array(all.dropFirst())
            XCTAssertEqual(f[0...2].map { Int32($0)! }, [coo.head[n], coo.queryFeature[n], coo.keyFeature[n]])
            XCTAssertEqual(Float(f[3])!.bitPattern, coo.columns[.value]![n].bitPattern)
            XCTAssertEqual(Float(f[4])!.bitPattern, coo.columns[.mask]![n].bitPattern)
            XCTAssertEqual(f[5], "")
            XCTAssertEqual(Float(f[7])!.bitPattern, coo.columns[.cooccurrence]![n].bitPattern)
            XCTAssertEqual(Float(f[8])!.bitPattern, coo.extra[0].values[n].bitPattern)
        }
    }

    func testCSVQuotingFollowsRFC4180() {
        XCTAssertEqual(CSVWriter.escape("plain"), "plain")
        XCTAssertEqual(CSVWriter.escape("a,b"), "\"a,b\"")
        XCTAssertEqual(CSVWriter.escape("say \"hi\""), "\"say \"\"hi\"\"\"")
        XCTAssertEqual(CSVWriter.escape("two\nlines"), "\"two\nlines\"")
    }
}
