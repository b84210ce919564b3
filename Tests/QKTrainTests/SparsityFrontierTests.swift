import XCTest
@testable import QKTrain

/// The rule that chooses step 1's L0 from a sweep's frontier (`SparsityFrontier`): add features
/// while a doubling of L0 still removes an eighth of the mean pattern's KL, interpolated in log2 k.
final class SparsityFrontierTests: XCTestCase {
    private func frontier(_ kl: [Int: Double], meanPattern: Double = 0.5) -> SparsityFrontier {
        let points = kl.map { k, v in
            SparsityPoint(k: k, tokens: 1000, klFull: v, klQOnly: v, klKOnly: v, l0Query: Double(k), l0Key: Double(k),
                          liveQuery: 10, liveKey: 10, dHidden: 100, seconds: 0)
        }
        return SparsityFrontier(points: points, baselineMeanPatternKL: meanPattern, baselineUniformKL: 2)
    }

    /// A frontier that drops steeply up to the planted number of directions (4) and is flat after:
    /// the rule stops between 4 and 8, nearer 4 the flatter the curve beyond it.
    func testStopsJustAboveTheTrueNumberOfDirections() {
        let f = frontier([1: 0.9, 2: 0.6, 4: 0.05, 8: 0.045, 16: 0.04])
        XCTAssertEqual(f.rule, SparsityFrontier.crossingRule)
        XCTAssertGreaterThanOrEqual(f.chosenL0, 4)
        XCTAssertLessThan(f.chosenL0, 8)
        XCTAssertEqual(f.points[f.chosenPoint].k, 4)
    }

    /// MiniLM layer 2's frontier as `qkdb sweep` measured it (87.5k tokens per point): doublings
    /// gain 20% and 11% of the mean pattern's KL around 16, so the rule stops near 20.
    func testMiniLMShapedFrontier() {
        let f = frontier([2: 0.8206, 4: 0.5667, 8: 0.3889, 16: 0.2794, 32: 0.2198, 64: 0.1937], meanPattern: 0.5565)
        XCTAssertEqual(f.chosenL0, 19.7, accuracy: 0.2)
        XCTAssertEqual(f.points[f.chosenPoint].k, 16)
    }

    /// The order the points come in does not matter, and neither a noisy rise nor a flat stretch at
    /// the sparse end stops the climb before the steep part.
    func testOrderAndNoise() {
        let a = frontier([1: 0.9, 2: 0.6, 4: 0.05, 8: 0.045, 16: 0.04])
        let b = frontier([16: 0.04, 4: 0.05, 1: 0.9, 8: 0.045, 2: 0.6])
        XCTAssertEqual(a, b)
        let noisy = frontier([1: 0.9, 2: 0.95, 4: 0.05, 8: 0.045, 16: 0.04])
        XCTAssertGreaterThanOrEqual(noisy.chosenL0, 4)
        XCTAssertLessThan(noisy.chosenL0, 8)
    }

    /// Flat from the start: the sparsest k. Still falling steeply at the densest point: the densest.
    func testEnds() {
        let flat = frontier([1: 0.051, 2: 0.05, 4: 0.05, 8: 0.049])
        XCTAssertEqual(flat.chosenL0, 1)
        XCTAssertEqual(flat.rule, SparsityFrontier.sparsestRule)
        let late = frontier([1: 0.9, 2: 0.9, 4: 0.89, 8: 0.1, 16: 0.09])
        XCTAssertGreaterThanOrEqual(late.chosenL0, 8)
        XCTAssertLessThan(late.chosenL0, 16)
        let falling = frontier([1: 1.0, 2: 0.8, 4: 0.6, 8: 0.4])
        XCTAssertEqual(falling.chosenL0, 8)
        XCTAssertEqual(falling.rule, SparsityFrontier.densestRule)
    }

    /// The default grid: doublings from 1 (2 for large dictionaries) to a sixteenth of the dictionary.
    func testDefaultGrid() {
        XCTAssertEqual(SparsitySweepOptions.grid(dHidden: 128), [1, 2, 4, 8])
        XCTAssertEqual(SparsitySweepOptions.grid(dHidden: 1536), [2, 4, 8, 16, 32, 64])
        XCTAssertEqual(SparsitySweepOptions.grid(dHidden: 16), [1, 2, 4, 8])
        XCTAssertEqual(SparsitySweepOptions.tokensPerPoint(trainTokens: 2_500_000), 87_500)
        XCTAssertEqual(SparsitySweepOptions.tokensPerPoint(trainTokens: 300_000), 40_000)
        XCTAssertEqual(SparsitySweepOptions.tokensPerPoint(trainTokens: 3_000), 3_000)
        XCTAssertEqual(SparsitySweepOptions(tokensPerPoint: 100).totalTokens(points: 6), 700)
    }
}
