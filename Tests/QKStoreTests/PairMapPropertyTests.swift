import Foundation
import XCTest
@testable import QKStore

/// Every pairs query over random and adversarial maps equals the brute-force answer computed
/// from the input arrays: all features (including ones with no pairs and the maximal index),
/// every head and all heads, each ordering column, both directions, several --top values.
final class PairMapPropertyTests: XCTestCase {
    private func checkAllQueries(_ coo: PairCOO, shape: PairMapShape, options: PairMapOptions, file: StaticString = #filePath, line: UInt = #line) throws {
        let path = StoreTestSupport.temporaryStorePath(self)
        let store = try Store(path: path, mode: .create)
        let run = try store.createRun(RunSpec(name: "p", kind: .imported, nHead: shape.nHead, dQuery: shape.dQuery, dKey: shape.dKey))
        let info = try store.putPairMap(run: run, coo, options: options)
        XCTAssertEqual(info.nnz, coo.count, file: file, line: line)
        let reader = try Store(path: path)
        let orders = PairColumn.orderable.filter { coo.columns[$0] != nil }
        for side in FeatureSide.allCases {
            for feature in 0..<shape.extent(side) {
                for head in [nil] + (0..<shape.nHead).map({ Optional($0) }) {
                    for order in orders {
                        for (top, ascending) in [(0, false), (1, true), (3, false), (3, true)] {
                            let q = PairQuery(side: side, feature: feature, head: head, top: top, order: order, ascending: ascending)
                            let got = try reader.pairs(run: run, q)
                            let want = StoreTestSupport.expectedPairs(coo, nHead: shape.nHead, q)
                            if got != want {
                                XCTFail("\(q): got \(got.count) rows, want \(want.count)\n got \(got.prefix(4))\nwant \(want.prefix(4))", file: file, line: line)
                                return
                            }
                        }
                    }
                }
            }
        }
        let report = try reader.verify()
        XCTAssertTrue(report.isClean, "\(report.problems)", file: file, line: line)
        XCTAssertEqual(report.pairs, coo.count, file: file, line: line)
    }

    func testRandomMapsAllColumnsSmallChunks() throws {
        var rng = StoreTestSupport.Rng(state: 1)
        let shape = PairMapShape(nHead: 3, dQuery: 17, dKey: 13)
        let coo = StoreTestSupport.randomMap(&rng, shape: shape, n: 300, columns: PairColumn.allCases, extra: ["peak_offset", "x2"])
        try checkAllQueries(coo, shape: shape, options: PairMapOptions(chunkNNZ: 7, keyChunkNNZ: 7))
    }

    func testTiesEmptyHeadsAndGiantRowAcrossManyChunks() throws {
        var rng = StoreTestSupport.Rng(state: 2)
        let shape = PairMapShape(nHead: 4, dQuery: 9, dKey: 40)
        // Head 1 and 3 are empty; (head 2, query 4) pairs with every key feature and spans many chunks;
        // values take 7 distinct levels, so ties must break by the partner index.
        let coo = StoreTestSupport.randomMap(&rng, shape: shape, n: 150, columns: [.value, .importance, .meanContribution],
                                             giantRow: (head: 2, query: 4), emptyHeads: [1, 3], coarseValues: true)
        try checkAllQueries(coo, shape: shape, options: PairMapOptions(chunkNNZ: 6, keyChunkNNZ: 6))
    }

    func testKeyRankingIsExactWhenValuesCollideInTheRoundedKey() throws {
        // Importance values 1 + k·2⁻²⁰ all round to the same bf16 key; only the exact values
        // (fetched from the query-major ordering) can rank them, in either direction.
        let n = 40
        let coo = PairCOO(head: [Int32](repeating: 0, count: n), queryFeature: (0..<Int32(n)).map { ($0 * 17) % Int32(n) },
                          keyFeature: [Int32](repeating: 3, count: n),
                          columns: [.value: (0..<n).map { Float($0) }, .importance: (0..<n).map { 1 + Float(($0 * 7) % 13) * 0x1p-20 }])
        try checkAllQueries(coo, shape: PairMapShape(nHead: 1, dQuery: n, dKey: 4), options: PairMapOptions(chunkNNZ: 4, keyChunkNNZ: 9))
    }

    func testValueOnlyMapWithDefaultChunks() throws {
        var rng = StoreTestSupport.Rng(state: 3)
        let shape = PairMapShape(nHead: 2, dQuery: 30, dKey: 30)
        let coo = StoreTestSupport.randomMap(&rng, shape: shape, n: 900, columns: [.value])
        try checkAllQueries(coo, shape: shape, options: PairMapOptions())
    }

    func testEmptyMapAndSingleEntryAtMaximalIndices() throws {
        let shape = PairMapShape(nHead: 2, dQuery: 5, dKey: 3)
        try checkAllQueries(PairCOO(head: [], queryFeature: [], keyFeature: [], columns: [.value: [], .importance: []]), shape: shape, options: PairMapOptions())
        try checkAllQueries(PairCOO(head: [1], queryFeature: [4], keyFeature: [2], columns: [.value: [-0.5], .importance: [2]]), shape: shape, options: PairMapOptions(chunkNNZ: 1, keyChunkNNZ: 1))
    }

    func testLargeIndicesUseTheComparisonSortPath() throws {
        // n_head × d_query beyond the counting-sort limit: the other sorting path must agree.
        let shape = PairMapShape(nHead: 9, dQuery: 2_000_000, dKey: 2_000_000)
        let coo = PairCOO(head: [8, 0, 8, 8, 0], queryFeature: [1_999_999, 5, 1_999_999, 3, 5], keyFeature: [0, 1_999_999, 7, 7, 2],
                          columns: [.value: [1, 2, 3, 4, 5], .importance: [5, 4, 3, 2, 1]])
        let path = StoreTestSupport.temporaryStorePath(self)
        let store = try Store(path: path, mode: .create)
        let run = try store.createRun(RunSpec(name: "big", kind: .imported, nHead: 9, dQuery: shape.dQuery, dKey: shape.dKey))
        try store.putPairMap(run: run, coo)
        for (side, feature) in [(FeatureSide.query, 1_999_999), (.query, 5), (.key, 7), (.key, 1_999_999), (.key, 0)] {
            let q = PairQuery(side: side, feature: feature, top: 0)
            XCTAssertEqual(try store.pairs(run: run, q), StoreTestSupport.expectedPairs(coo, nHead: 9, q))
        }
        XCTAssertTrue(try store.verify().isClean)
    }

    func testDuplicateCoordinatesAreRejectedNamingBothEntries() throws {
        let coo = PairCOO(head: [0, 1, 0], queryFeature: [2, 2, 2], keyFeature: [3, 3, 3], columns: [.value: [1, 2, 3]])
        XCTAssertThrowsError(try PreparedPairMap(coo: coo, shape: PairMapShape(nHead: 2, dQuery: 4, dKey: 4))) { e in
            XCTAssertEqual("\(e)", "pair map has a duplicate coordinate (head 0, query feature 2, key feature 3) at entries 0 and 2")
        }
    }

    func testOutOfRangeAndNonFiniteInputsAreRejected() throws {
        let shape = PairMapShape(nHead: 2, dQuery: 4, dKey: 4)
        let cases: [(PairCOO, String)] = [
            (PairCOO(head: [2], queryFeature: [0], keyFeature: [0], columns: [.value: [1]]), "head 2 is out of range"),
            (PairCOO(head: [0], queryFeature: [4], keyFeature: [0], columns: [.value: [1]]), "query feature 4 is out of range"),
            (PairCOO(head: [0], queryFeature: [0], keyFeature: [-1], columns: [.value: [1]]), "key feature -1 is out of range"),
            (PairCOO(head: [0], queryFeature: [0], keyFeature: [0], columns: [.value: [.nan]]), "must be finite"),
            (PairCOO(head: [0], queryFeature: [0], keyFeature: [0], columns: [.importance: [1]]), "no value column"),
            (PairCOO(head: [0, 0], queryFeature: [0], keyFeature: [0], columns: [.value: [1]]), "disagree in length"),
        ]
        for (coo, fragment) in cases {
            XCTAssertThrowsError(try PreparedPairMap(coo: coo, shape: shape)) { XCTAssertTrue("\($0)".contains(fragment), "\($0) lacks \(fragment)") }
        }
    }

    func testLossyCodecsRecordTheirMaximumErrorAndQueriesSeeRoundedValues() throws {
        var rng = StoreTestSupport.Rng(state: 4)
        let shape = PairMapShape(nHead: 2, dQuery: 12, dKey: 12)
        let coo = StoreTestSupport.randomMap(&rng, shape: shape, n: 120, columns: [.value, .importance])
        for codec in [ValueCodec.fp16, .bf16] {
            let path = StoreTestSupport.temporaryStorePath(self)
            let store = try Store(path: path, mode: .create)
            let run = try store.createRun(RunSpec(name: codec.rawValue, kind: .imported, nHead: 2, dQuery: 12, dKey: 12))
            let info = try store.putPairMap(run: run, coo, options: PairMapOptions(codec: codec, chunkNNZ: 16, keyChunkNNZ: 5))
            var rounded = coo
            for (c, values) in coo.columns {
                let r = values.map { codec == .fp16 ? Float(Float16($0)) : Float(bitPattern: ($0.bitPattern &+ 0x7FFF &+ (($0.bitPattern >> 16) & 1)) & 0xFFFF_0000) }
                rounded.columns[c] = r
                let worst = zip(values, r).map { Double(abs($0 - $1)) }.max() ?? 0
                XCTAssertEqual(info.maxAbsError[c.rawValue], worst)
                XCTAssertGreaterThan(worst, 0)
            }
            XCTAssertEqual(try Store(path: path).run(run).pairMap?.maxAbsError, info.maxAbsError)
            for f in 0..<12 {
                let q = PairQuery(side: .key, feature: f, top: 0)
                XCTAssertEqual(try store.pairs(run: run, q), StoreTestSupport.expectedPairs(rounded, nHead: 2, q))
            }
        }
    }
}
