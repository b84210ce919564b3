import XCTest
import QKTensor
import QKModels
@testable import QKTrain

/// The RoPE step-2 loss and gradient against a dense offset-by-offset PyTorch formulation
/// (tools/fixtures/make_rope_pairmap_fixtures.py): 4 heads over 2 key/value heads, d_head 8.
final class RoPEPairMapFixtureTests: XCTestCase {
    func testGroupedQueryRoPEMatchesPyTorch() throws {
        let path = PairMapTestSupport.root.appendingPathComponent("Tests/Fixtures/rope_pairmap/rope_gqa.safetensors").path
        let f = try SafeTensorsFile(path: path)
        let meta = f.metadata
        let nHead = Int(meta["n_head"]!)!, nKV = Int(meta["n_kv_head"]!)!, dHead = Int(meta["d_head"]!)!
        let penalty = Float(meta["penalty"]!)!, epsilon = Float(meta["epsilon"]!)!
        var config = PairMapTestSupport.config(causal: true, nHead: nHead, nKVHead: nKV, dHead: dHead)
        config.architecture = .llama
        config.ropeTheta = Float(meta["rope_theta"]!)!
        let q = PairMapTestSupport.transcoder(wDec: try f.floatTensor("w_dec_q"), bDec: try f.floatTensor("b_dec_q"))
        let k = PairMapTestSupport.transcoder(wDec: try f.floatTensor("w_dec_k"), bDec: try f.floatTensor("b_dec_k"))
        let aq = try f.floatTensor("aq"), ak = try f.floatTensor("ak"), pattern = try f.floatTensor("pattern")
        let (seqs, t) = (aq.shape[0], aq.shape[1])
        let dq = q.dHidden, dk = k.dHidden
        let sequences = (0..<seqs).map { s in
            PairMapSequence(query: PairMapTestSupport.codes(aq.data[(s * t * dq)..<((s + 1) * t * dq)], rows: t, width: dq),
                            key: PairMapTestSupport.codes(ak.data[(s * t * dk)..<((s + 1) * t * dk)], rows: t, width: dk),
                            pattern: pattern.row(s))
        }
        let objective = try RoPEPairMapObjective(query: q, key: k, config: config, training: sequences, threads: 2)
        let co = try f.intArray("cooccur").values
        var expected = [(Int, Int)]()
        for i in 0..<dq { for j in 0..<dk where co[i * dk + j] != 0 { expected.append((i, j)) } }
        XCTAssertEqual(objective.index.pairCount, expected.count)

        let denseMask = try f.floatTensor("mask").data, denseGrad = try f.floatTensor("grad").data
        var mask = [Float](repeating: 0, count: objective.entryCount)
        for (n, (i, j)) in expected.enumerated() {
            XCTAssertEqual(objective.index.pair(query: i, key: j), n)
            for h in 0..<nHead { mask[objective.index.entry(pair: n, head: h, heads: nHead)] = denseMask[(i * dk + j) * nHead + h] }
        }
        // Pairs that never co-fire get no gradient in PyTorch either.
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
        XCTAssertLessThan(worst, 1e-4, "worst relative gradient error \(worst)")
        // The held-out entry point agrees with the training one.
        XCTAssertEqual(try objective.meanKL(mask: mask, sequences: sequences), kl, accuracy: 1e-4 * abs(kl))
    }
}
