import Foundation
import XCTest
import QKTensor
@testable import QKTrain

/// Loss parts and every parameter gradient against PyTorch autograd on the same inputs
/// (fixtures made by tools/fixtures/make_train_fixtures.py), within 1e-4 relative.
final class Step1PyTorchFixtureTests: XCTestCase {
    func run(_ name: String) throws {
        let path = Step1TestSupport.repoRoot + "/Tests/Fixtures/train/step1_\(name).safetensors"
        let f = try SafeTensorsFile(path: path)
        let g = try JSONDecoder().decode(AttentionGeometry.self, from: Data(f.metadata["geometry"]!.utf8))
        let wj = try JSONSerialization.jsonObject(with: Data(f.metadata["weights"]!.utf8)) as! [String: Double]
        let aj = try JSONSerialization.jsonObject(with: Data(f.metadata["activations"]!.utf8)) as! [String]
        func act(_ s: String) -> TranscoderActivation { s == "relu" ? .relu : .topK(Int(s)!) }
        var w = ObjectiveWeights()
        w.fullKL = Float(wj["full"]!); w.qOnlyKL = Float(wj["q_only"]!); w.kOnlyKL = Float(wj["k_only"]!)
        w.alpha = Float(wj["alpha"]!); w.lambdaQ = Float(wj["lambda_q"]!); w.lambdaK = Float(wj["lambda_k"]!)
        w.epsilon = Float(wj["epsilon"]!)
        let b = Int(f.metadata["sequences"]!)!, t = Int(f.metadata["length"]!)!, d = Int(f.metadata["d_model"]!)!
        let batch = TrainingBatch(x: try f.floatTensor("x").data, q: try f.floatTensor("q").data, k: try f.floatTensor("k").data,
                                  pattern: try f.floatTensor("pattern").data, sequences: b, length: t, dModel: d)
        func transcoder(_ side: String) throws -> TranscoderParameters {
            TranscoderParameters(Transcoder(wEnc: try f.floatTensor("\(side).W_enc"), bEnc: try f.floatTensor("\(side).b_enc"),
                                            wDec: try f.floatTensor("\(side).W_dec"), bDec: try f.floatTensor("\(side).b_dec"), activation: .relu))
        }
        let q = try transcoder("query"), k = try transcoder("key")
        var gq = TranscoderParameters(zerosIn: d, hidden: q.dHidden, out: q.dOut)
        var gk = TranscoderParameters(zerosIn: d, hidden: k.dHidden, out: k.dOut)
        let r = Step1Objective.evaluate(query: q, key: k, activations: (act(aj[0]), act(aj[1])), batch: batch, geometry: g,
                                        weights: w, gradQ: &gq, gradK: &gk, threads: 2)
        func scalar(_ n: String) throws -> Double { Double(try f.floatTensor("loss.\(n)").data[0]) }
        for (n, v) in [("total", r.total), ("kl_full", r.klFull), ("kl_q_only", r.klQOnly), ("kl_k_only", r.klKOnly),
                       ("nmse_q", r.normalisedMSEQ), ("nmse_k", r.normalisedMSEK), ("penalty_q", r.penaltyQ), ("penalty_k", r.penaltyK)] {
            let ref = try scalar(n)
            XCTAssertLessThanOrEqual(abs(v - ref), 1e-4 * max(abs(ref), 1e-3), "\(name): loss.\(n) \(v) vs torch \(ref)")
        }
        for (side, grad) in [("query", gq), ("key", gk)] {
            let sl = grad.transcoder(activation: .relu)
            for (n, mine) in [("W_enc", sl.wEnc), ("b_enc", sl.bEnc), ("W_dec", sl.wDec), ("b_dec", sl.bDec)] {
                let ref = try f.floatTensor("grad.\(side).\(n)")
                XCTAssertEqual(ref.shape, mine.shape)
                let scale = ref.data.map { abs($0) }.max() ?? 0
                var worst: Float = 0
                for i in 0..<ref.count { worst = max(worst, abs(mine.data[i] - ref.data[i]) / max(abs(ref.data[i]), scale * 1e-2, 1e-6)) }
                XCTAssertLessThan(worst, 1e-4, "\(name): grad \(side).\(n) differs by \(worst) relative")
            }
        }
    }

    func testCausalRoPEGroupedQueryReLU() throws { try run("causal_rope_gqa_relu") }
    func testBidirectionalReLU() throws { try run("bidirectional_relu") }
    func testCausalTopK() throws { try run("causal_topk") }
}
