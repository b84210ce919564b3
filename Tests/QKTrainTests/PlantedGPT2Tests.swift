import Foundation
import XCTest
import QKTensor
import QKModels
@testable import QKTrain

/// The planted test on a real (tiny) GPT-2 checkpoint: tools/fixtures/make_planted_gpt2.py builds
/// a GPT-2 whose layer-1 W_Q/W_K implement four query-direction × key-direction pairs, and
/// harvests layer 1 with transformers (LayerNorm, BOS and all). Training on that harvest must find
/// every planted direction: a feature whose activation tracks the direction's presence in the
/// attention input (correlation ≥ 0.9) and whose decoder row points along the direction's image
/// through W_Q or W_K (cosine ≥ 0.8), with held-out KL far below the uniform baseline.
final class PlantedGPT2Tests: XCTestCase {
    func testPlantedGPT2PairsAreRecovered() throws {
        let dir = Step1TestSupport.repoRoot + "/Tests/Fixtures/train"
        let source = try HarvestFileSource(path: dir + "/planted_gpt2_harvest.safetensors")
        XCTAssertEqual(source.layer, 1); XCTAssertTrue(source.geometry.causal)
        let planted = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/planted_gpt2/planted.json"))) as! [String: Any]
        func matrix(_ k: String) -> [[Float]] { (planted[k] as! [[Double]]).map { $0.map(Float.init) } }

        var o = PlantedRecoveryTests.plantedOptions()
        o.heldOutSequences = 16
        o.trainTokens = 8 * 16 * 600
        let result = try TranscoderTrainer(options: o, source: source).train()
        let m = try XCTUnwrap(result.evaluation).metrics
        print("planted GPT-2: KL \(m.klFull) (uniform \(m.baselineUniformKL)), L0 \(m.l0Query)/\(m.l0Key), EV \(m.explainedVarianceQ)/\(m.explainedVarianceK)")
        XCTAssertLessThan(m.klFull, 0.15 * m.baselineUniformKL)

        // Score on every harvested sequence: presence of u_a is its component in the attention input.
        try source.rewind()
        var all: [TrainingBatch] = []
        while let s = try source.nextSequence() { all.append(s) }
        let data = TrainingBatch.stacking(all)
        for (side, t, dirs, images) in [("query", result.query, matrix("query_directions"), matrix("query_images")),
                                        ("key", result.key, matrix("key_directions"), matrix("key_images"))] {
            let codes = t.encode(Tensor(shape: [data.tokens, data.dModel], data: data.x), sequenceLength: data.length)
            var dense = [[Float]](repeating: [Float](repeating: 0, count: t.dHidden), count: data.tokens)
            for r in 0..<codes.rows { let (i, v) = codes.row(r); for (f, a) in zip(i, v) { dense[r][Int(f)] = a } }
            for (a, u) in dirs.enumerated() {
                let presence = (0..<data.tokens).map { r in (0..<data.dModel).reduce(Float(0)) { $0 + data.x[r * data.dModel + $1] * u[$1] } }
                let best = PlantedRecoveryTests.bestMatch(t, dense: dense, presence: presence, image: images[a])
                print("planted GPT-2 \(side) direction \(a): feature \(best.feature) correlation \(best.corr) decoder cosine \(best.cos)")
                XCTAssertGreaterThanOrEqual(best.corr, 0.9, "\(side) direction \(a)")
                XCTAssertGreaterThanOrEqual(best.cos, 0.8, "\(side) direction \(a)")
            }
        }
    }
}

/// The same planted GPT-2, now run by qkdb's own runtime and harvested on the fly
/// (`ModelActivationSource` over `model.capture`): its captures must match the transformers
/// harvest, and training on them must recover every planted direction.
final class PlantedGPT2RuntimeTests: XCTestCase {
    func testTrainingOnTheFlyFromTheRuntime() throws {
        let dir = Step1TestSupport.repoRoot + "/Tests/Fixtures/train"
        let model = try loadModel(path: dir + "/planted_gpt2")
        let harvest = try SafeTensorsFile(path: dir + "/planted_gpt2_harvest.safetensors")
        let tokens = try harvest.intArray("tokens")
        let set = SequenceSet(ids: tokens.values.map(Int32.init), context: tokens.shape[1])
        var batches = set.batches(size: 16)
        let source = try ModelActivationSource(model: model, layer: 1, batches: { batches.next() },
                                               restart: { var b = set.batches(size: 16); return { b.next() } })
        // The runtime's captures agree with transformers'.
        let reference = try HarvestFileSource(path: dir + "/planted_gpt2_harvest.safetensors")
        for _ in 0..<3 {
            let mine = try XCTUnwrap(source.nextSequence()), theirs = try XCTUnwrap(reference.nextSequence())
            for (a, b, name) in [(mine.x, theirs.x, "attn_in"), (mine.q, theirs.q, "q"), (mine.k, theirs.k, "k"), (mine.pattern, theirs.pattern, "pattern")] {
                let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-3, "runtime \(name) differs from transformers by \(worst)")
            }
        }
        try source.rewind()

        var o = PlantedRecoveryTests.plantedOptions()
        o.heldOutSequences = 16
        o.trainTokens = 8 * 16 * 600
        let result = try TranscoderTrainer(options: o, source: source).train()
        let m = try XCTUnwrap(result.evaluation).metrics
        XCTAssertLessThan(m.klFull, 0.15 * m.baselineUniformKL, "KL \(m.klFull) vs uniform \(m.baselineUniformKL)")
        let planted = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/planted_gpt2/planted.json"))) as! [String: Any]
        func matrix(_ k: String) -> [[Float]] { (planted[k] as! [[Double]]).map { $0.map(Float.init) } }
        try reference.rewind()
        var all: [TrainingBatch] = []
        while let s = try reference.nextSequence() { all.append(s) }
        let data = TrainingBatch.stacking(all)
        for (side, t, dirs, images) in [("query", result.query, matrix("query_directions"), matrix("query_images")),
                                        ("key", result.key, matrix("key_directions"), matrix("key_images"))] {
            let codes = t.encode(Tensor(shape: [data.tokens, data.dModel], data: data.x), sequenceLength: data.length)
            var dense = [[Float]](repeating: [Float](repeating: 0, count: t.dHidden), count: data.tokens)
            for r in 0..<codes.rows { let (i, v) = codes.row(r); for (f, a) in zip(i, v) { dense[r][Int(f)] = a } }
            for (a, u) in dirs.enumerated() {
                let presence = (0..<data.tokens).map { r in (0..<data.dModel).reduce(Float(0)) { $0 + data.x[r * data.dModel + $1] * u[$1] } }
                let best = PlantedRecoveryTests.bestMatch(t, dense: dense, presence: presence, image: images[a])
                XCTAssertGreaterThanOrEqual(best.corr, 0.9, "runtime \(side) direction \(a): feature \(best.feature)")
                XCTAssertGreaterThanOrEqual(best.cos, 0.8, "runtime \(side) direction \(a): feature \(best.feature)")
            }
        }
    }
}
