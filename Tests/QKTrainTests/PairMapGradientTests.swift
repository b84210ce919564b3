import XCTest
import QKTensor
import QKModels
@testable import QKTrain
import CPairMap

/// dL/dm of step 2 against central finite differences of the loss itself.
final class PairMapGradientTests: XCTestCase {
    func testCausalGradientMatchesFiniteDifferences() throws { try check(causal: true, seed: 11) }
    func testBidirectionalGradientMatchesFiniteDifferences() throws { try check(causal: false, seed: 12) }
    /// More than 16 heads take the kernel's general (non-register) path.
    func testManyHeadsGradientMatchesFiniteDifferences() throws { try check(causal: true, seed: 13, heads: 18, kvHeads: 6) }
    /// 12 heads: two register vectors of 8 and 4 lanes per key position.
    func testTwelveHeadsGradientMatchesFiniteDifferences() throws { try check(causal: false, seed: 14, heads: 12, kvHeads: 12) }
    /// The portable build of the C kernel (what runs on a CPU without AVX2) checked the same way.
    func testPortableBuildGradientMatchesFiniteDifferences() throws {
        qk_pairmap_force_portable(1)
        defer { qk_pairmap_force_portable(0) }
        try check(causal: true, seed: 15, heads: 12, kvHeads: 4)
        try check(causal: false, seed: 16, heads: 4, kvHeads: 2)
    }

    /// Both builds of the kernel give the same loss and gradient (up to summation order and fused
    /// multiply-adds) for every register layout: 4, 8, 12, 16 lanes and the general path.
    func testBuildsAgree() throws {
        defer { qk_pairmap_force_portable(0) }
        for (n, heads) in [2, 8, 12, 16, 18].enumerated() {
            let (q, k, config, seqs) = PairMapTestSupport.random(seed: 40 + UInt64(n), causal: n % 2 == 0, nHead: heads, nKVHead: heads,
                                                                   dHead: 4, dq: 12, dk: 11, sequences: 3, length: 9, active: 3)
            let objective = try PairMapObjective(query: q, key: k, config: config, training: seqs, threads: 1)
            var rng = SplitMix64(seed: 7)
            let mask = (0..<objective.entryCount).map { _ in 0.2 + 0.8 * PairMapTestSupport.uniform(&rng) }
            var results: [(loss: Double, kl: Double, gradient: [Float])] = []
            for portable in [Int32(0), 1] {
                qk_pairmap_force_portable(portable)
                results.append(objective.lossAndGradient(mask: mask, batch: [0, 1, 2], penalty: 1e-3, epsilon: 1e-6))
            }
            XCTAssertEqual(results[0].kl, results[1].kl, accuracy: 1e-5 * results[0].kl, "\(heads) heads")
            let scale = results[0].gradient.map { abs($0) }.max() ?? 0
            XCTAssertGreaterThan(scale, 0)
            for (a, b) in zip(results[0].gradient, results[1].gradient) {
                XCTAssertEqual(a, b, accuracy: 1e-4 * scale, "\(heads) heads")
            }
        }
    }

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

    /// The kernel's vector exp against libm's, over the range scores take, in both builds (AVX2
    /// where the CPU has it, and the portable one).
    func testKernelExpMatchesExp() {
        defer { qk_pairmap_force_portable(0) }
        for portable in [Int32(0), 1] {
            qk_pairmap_force_portable(portable)
            var xs: [Float] = []
            var x: Float = -90
            while x <= 0 { for d in [Float(1), 2, 7, 31] { xs.append(x / d) }; x += 0.0137 }
            xs += [-200, 0, 1, -87]
            var out = [Float](repeating: .nan, count: xs.count)
            qk_pairmap_exp(xs, &out, Int64(xs.count))
            var worst: Float = 0
            for (v, got) in zip(xs, out) {
                let want = expf(v)
                if want > 1e-30 { worst = max(worst, abs(got - want) / want) }
            }
            XCTAssertLessThan(worst, 1e-6, "portable \(portable)")
            XCTAssertEqual(out[out.count - 4], 0)
            XCTAssertEqual(out[out.count - 3], 1)
            XCTAssertEqual(out[out.count - 2], expf(1), accuracy: 1e-6)
        }
    }
}
