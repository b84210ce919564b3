import XCTest
@testable import QKTrain

/// The rule that chooses step 1's L0 from a sweep's frontier (`SparsityFrontier`): the sparsest L0
/// whose KL is down to 3% of the mean pattern's; where the grid never gets there, the L0 where a
/// doubling stops removing a twelfth of the sparsest point's KL.
final class SparsityFrontierTests: XCTestCase {
    private func frontier(_ kl: [Int: Double], meanPattern: Double = 0.5) -> SparsityFrontier {
        let points = kl.map { k, v in
            SparsityPoint(k: k, tokens: 1000, klFull: v, klQOnly: v, klKOnly: v, l0Query: Double(k), l0Key: Double(k),
                          liveQuery: 10, liveKey: 10, dHidden: 100, seconds: 0)
        }
        return SparsityFrontier(points: points, baselineMeanPatternKL: meanPattern, baselineUniformKL: 2)
    }

    /// The planted family's llama_c as `qkdb run` swept it: KL reaches 3% of the mean pattern's
    /// (0.0057) between k 4 and 8, at 7.2 interpolated in log KL (7.6 from the unrounded KLs); a run there recovers it.
    func testExplainedLevelOnAPlantedFrontier() {
        let f = frontier([1: 0.038, 2: 0.023, 4: 0.012, 8: 0.005, 16: 0.002], meanPattern: 0.189)
        XCTAssertEqual(f.rule, SparsityFrontier.explainedRule)
        XCTAssertEqual(f.chosenL0, 7.2, accuracy: 0.2)
        XCTAssertEqual(f.points[f.chosenPoint].k, 8)
        // Already explained at the sparsest point: that point.
        let easy = frontier([1: 0.01, 2: 0.005, 4: 0.004], meanPattern: 0.5)
        XCTAssertEqual(easy.chosenL0, 1)
        XCTAssertEqual(easy.rule, SparsityFrontier.explainedRule)
    }

    /// MiniLM layer 2's frontier as `qkdb sweep` measured it (87.5k tokens per point): KL never
    /// gets near 3% of the mean pattern's, and doublings gain 13% then 7% of KL(2) around 16, so
    /// diminishing returns stop the rule at 20.
    func testMiniLMShapedFrontier() {
        let f = frontier([2: 0.8206, 4: 0.5667, 8: 0.3889, 16: 0.2794, 32: 0.2198, 64: 0.1937], meanPattern: 0.5565)
        XCTAssertEqual(f.rule, SparsityFrontier.crossingRule)
        XCTAssertEqual(f.chosenL0, 20.0, accuracy: 0.2)
        XCTAssertEqual(f.points[f.chosenPoint].k, 16)
    }

    /// The planted family's gpt2_b: KL stops at 3.7% of the mean pattern's at k 16, so diminishing
    /// returns decide, between 8 and 16.
    func testDiminishingReturnsOnAPlantedFrontier() {
        let f = frontier([1: 0.087, 2: 0.048, 4: 0.026, 8: 0.013, 16: 0.010], meanPattern: 0.270)
        XCTAssertEqual(f.rule, SparsityFrontier.crossingRule)
        XCTAssertEqual(f.chosenL0, 8.5, accuracy: 0.3)
    }

    /// The order the points come in does not matter, and neither a noisy rise nor a flat stretch at
    /// the sparse end stops the climb before the steep part.
    func testOrderAndNoise() {
        let a = frontier([1: 0.9, 2: 0.6, 4: 0.3, 8: 0.25, 16: 0.24])
        let b = frontier([16: 0.24, 4: 0.3, 1: 0.9, 8: 0.25, 2: 0.6])
        XCTAssertEqual(a, b)
        let noisy = frontier([1: 0.9, 2: 0.95, 4: 0.3, 8: 0.25, 16: 0.24])
        XCTAssertEqual(noisy.rule, SparsityFrontier.crossingRule)
        XCTAssertGreaterThanOrEqual(noisy.chosenL0, 4)
        XCTAssertLessThan(noisy.chosenL0, 16)
        let late = frontier([1: 0.9, 2: 0.9, 4: 0.89, 8: 0.3, 16: 0.29])
        XCTAssertGreaterThanOrEqual(late.chosenL0, 4)
        XCTAssertLessThan(late.chosenL0, 16)
    }

    /// Flat from the start: the sparsest k. Still falling steeply at the densest point: the densest.
    func testEnds() {
        let flat = frontier([1: 0.51, 2: 0.5, 4: 0.5, 8: 0.49])
        XCTAssertEqual(flat.chosenL0, 1)
        XCTAssertEqual(flat.rule, SparsityFrontier.sparsestRule)
        let falling = frontier([1: 1.0, 2: 0.8, 4: 0.6, 8: 0.4])
        XCTAssertEqual(falling.chosenL0, 8)
        XCTAssertEqual(falling.rule, SparsityFrontier.densestRule)
    }

    /// The default grid: doublings from 1 (2 for large dictionaries) to a sixteenth of the
    /// dictionary, at least 16.
    func testDefaultGrid() {
        XCTAssertEqual(SparsitySweepOptions.grid(dHidden: 128), [1, 2, 4, 8, 16])
        XCTAssertEqual(SparsitySweepOptions.grid(dHidden: 1536), [2, 4, 8, 16, 32, 64])
        XCTAssertEqual(SparsitySweepOptions.grid(dHidden: 24), [1, 2, 4, 8, 16])
        XCTAssertEqual(SparsitySweepOptions.tokensPerPoint(trainTokens: 2_500_000), 87_500)
        XCTAssertEqual(SparsitySweepOptions.tokensPerPoint(trainTokens: 300_000), 40_000)
        XCTAssertEqual(SparsitySweepOptions.tokensPerPoint(trainTokens: 3_000), 3_000)
        XCTAssertEqual(SparsitySweepOptions(tokensPerPoint: 100).totalTokens(points: 6), 700)
    }
}
