import XCTest
import QKTensor
import QKModels
@testable import QKTrain

/// Step-2 loss and gradient against PyTorch autograd on a dense mask
/// (tools/fixtures/make_pairmap_fixtures.py): one causal grouped-query case, one bidirectional.
final class PairMapFixtureTests: XCTestCase {
    func testCausalGroupedQueryMatchesPyTorch() throws { try check("causal_gqa") }
    func testBidirectionalMatchesPyTorch() throws { try check("bidirectional") }

    /// The same with W kept per entry and gathered per sequence (the layout for dictionaries
    /// whose live block would not fit in memory).
    func testGatheredLayoutMatchesPyTorch() throws {
        let saved = PairMapObjective.liveBlockBudget
        PairMapObjective.liveBlockBudget = 0
        defer { PairMapObjective.liveBlockBudget = saved }
        try check("causal_gqa", expectLiveBlock: false)
        try check("bidirectional", expectLiveBlock: false)
    }

    private func check(_ name: String, expectLiveBlock: Bool = true) throws {
        let (f, q, k, sequences, config) = try PairMapTestSupport.loadFixture(name)
        let meta = f.metadata
        let nHead = config.nHead
        let penalty = Float(meta["penalty"]!)!, epsilon = Float(meta["epsilon"]!)!
        let seqs = sequences.count
        let dq = q.dHidden, dk = k.dHidden
        let objective = try PairMapObjective(query: q, key: k, config: config, training: sequences, threads: 2)
        XCTAssertEqual(objective.slot != nil, expectLiveBlock)

        // The index holds exactly the pairs PyTorch found co-firing by brute force.
        let co = try f.intArray("cooccur").values
        var expected = [(Int, Int)]()
        for i in 0..<dq { for j in 0..<dk where co[i * dk + j] != 0 { expected.append((i, j)) } }
        XCTAssertEqual(objective.index.pairCount, expected.count)
        for (n, (i, j)) in expected.enumerated() {
            XCTAssertEqual(objective.index.pair(query: i, key: j), n)
        }

        let denseMask = try f.floatTensor("mask").data, denseGrad = try f.floatTensor("grad").data
        let denseM = try f.floatTensor("M").data
        var mask = [Float](repeating: 0, count: objective.entryCount)
        for (n, (i, j)) in expected.enumerated() {
            for h in 0..<nHead {
                let e = objective.index.entry(pair: n, head: h, heads: nHead)
                mask[e] = denseMask[(i * dk + j) * nHead + h]
                XCTAssertEqual(objective.weights.pairValue[e], denseM[(i * dk + j) * nHead + h], accuracy: 1e-5)
            }
        }
        // Entries that never co-fire get no gradient at all in PyTorch: dropping them is exact.
        for i in 0..<dq { for j in 0..<dk where co[i * dk + j] == 0 {
            for h in 0..<nHead { XCTAssertEqual(denseGrad[(i * dk + j) * nHead + h], 0) }
        } }

        let r = objective.lossAndGradient(mask: mask, batch: Array(0..<seqs), penalty: penalty, epsilon: epsilon)
        let loss = Double(try f.floatTensor("loss").data[0]), kl = Double(try f.floatTensor("kl").data[0])
        XCTAssertEqual(r.loss, loss, accuracy: 1e-4 * abs(loss))
        XCTAssertEqual(r.kl, kl, accuracy: 1e-4 * abs(kl))
        var worst: Float = 0
        for (n, (i, j)) in expected.enumerated() {
            for h in 0..<nHead {
                let want = denseGrad[(i * dk + j) * nHead + h], got = r.gradient[objective.index.entry(pair: n, head: h, heads: nHead)]
                worst = max(worst, abs(got - want) / max(abs(want), 1e-4))
            }
        }
        XCTAssertLessThan(worst, 1e-4, "\(name): worst relative gradient error \(worst)")
    }
}
