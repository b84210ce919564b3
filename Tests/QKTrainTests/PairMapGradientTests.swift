import XCTest
import QKTensor
import QKModels
@testable import QKTrain

/// dL/dm of step 2 against central finite differences of the loss itself.
final class PairMapGradientTests: XCTestCase {
    func testCausalGradientMatchesFiniteDifferences() throws { try check(causal: true, seed: 11) }
    func testBidirectionalGradientMatchesFiniteDifferences() throws { try check(causal: false, seed: 12) }
    /// More than 16 heads take the kernel's general (non-register) path.
    func testManyHeadsGradientMatchesFiniteDifferences() throws { try check(causal: true, seed: 13, heads: 18, kvHeads: 6) }

    private func check(causal: Bool, seed: UInt64, heads: Int = 4, kvHeads: Int = 2) throws {
        let (q, k, config, seqs) = PairMapTestSupport.random(seed: seed, causal: causal, nHead: heads, nKVHead: kvHeads, dHead: 4,
                                                               dq: 10, dk: 9, sequences: 3, length: 7, active: 3)
        let objective = try PairMapObjective(query: q, key: k, config: config, training: seqs, threads: 2)
        var rng = SplitMix64(seed: seed)
        let mask = (0..<objective.entryCount).map { _ in 0.3 + 0.6 * PairMapTestSupport.uniform(&rng) }
        let batch = [0, 1, 2], mu: Float = 1e-3, eps: Float = 1e-6
        let g = objective.lossAndGradient(mask: mask, batch: batch, penalty: mu, epsilon: eps).gradient
        // The largest gradients are the ones where the finite difference is well above Float32 noise.
        let probe = g.indices.sorted { abs(g[$0]) > abs(g[$1]) }.prefix(12)
        XCTAssertGreaterThan(abs(g[probe.first!]), 1e-3)
        for e in probe {
            let step: Float = 1e-2
            var up = mask, down = mask
            up[e] += step; down[e] -= step
            let lu = objective.lossAndGradient(mask: up, batch: batch, penalty: mu, epsilon: eps).loss
            let ld = objective.lossAndGradient(mask: down, batch: batch, penalty: mu, epsilon: eps).loss
            let fd = (lu - ld) / Double(2 * step)
            XCTAssertEqual(Double(g[e]), fd, accuracy: 2e-2 * abs(fd) + 2e-5, "entry \(e)")
        }
    }

    /// The gradient buffers are cleared after each read, so consecutive batches do not leak.
    func testGradientIsFreshEachCall() throws {
        let (q, k, config, seqs) = PairMapTestSupport.random(seed: 3, causal: true, nHead: 2, nKVHead: 1, dHead: 4,
                                                               dq: 6, dk: 6, sequences: 2, length: 5, active: 2)
        let objective = try PairMapObjective(query: q, key: k, config: config, training: seqs, threads: 2)
        let mask = [Float](repeating: 0.7, count: objective.entryCount)
        let a = objective.lossAndGradient(mask: mask, batch: [0, 1], penalty: 0, epsilon: 1e-6).gradient
        let b = objective.lossAndGradient(mask: mask, batch: [0, 1], penalty: 0, epsilon: 1e-6).gradient
        XCTAssertEqual(a, b)
        XCTAssertTrue(a.contains { $0 != 0 })
    }

    /// The vectorised exp of the softmax against Foundation's, over the range scores take.
    func testFastExpMatchesExp() {
        var worst: Float = 0
        var x: Float = -90
        while x <= 0 {
            for d in [Float(1), 2, 7, 31] {
                let want = expf(x / d)
                if want > 1e-30 { worst = max(worst, abs(fastExp(x / d) - want) / want) }
            }
            x += 0.0137
        }
        XCTAssertLessThan(worst, 1e-6)
        XCTAssertEqual(fastExp(-200), 0)
        XCTAssertEqual(fastExp(0), 1)
        XCTAssertEqual(fastExp(1), expf(1), accuracy: 1e-6)
    }
}
