import Foundation
import XCTest
import QKTensor
import QKModels
@testable import QKTrain

final class TranscoderTrainerTests: XCTestCase {
    var tmp: String!
    override func setUp() {
        tmp = NSTemporaryDirectory() + "qktrain-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: tmp) }

    func smallSource() throws -> InMemoryActivationSource {
        let planted = PlantedQK(geometry: AttentionGeometry(nHead: 2, nKVHead: 1, dHead: 8, causal: true, ropeTheta: 50))
        let (b, _, _) = planted.captures(sequences: 48, length: 8, seed: 5)
        return try InMemoryActivationSource(batches: [b], geometry: planted.geometry)
    }

    func smallOptions() -> TrainingOptions {
        var o = PlantedRecoveryTests.plantedOptions()
        o.trainTokens = 8 * 8 * 30; o.heldOutSequences = 8; o.shuffleBlockSequences = 12
        o.deadWindowTokens = 8 * 8 * 5; o.progressEverySteps = 1; o.l0Target = 2
        return o
    }

    func testSameSeedSameWeightsDifferentSeedDifferent() throws {
        let a = try TranscoderTrainer(options: smallOptions(), source: smallSource()).train()
        let b = try TranscoderTrainer(options: smallOptions(), source: smallSource()).train()
        XCTAssertEqual(a.query, b.query); XCTAssertEqual(a.key, b.key)
        var o = smallOptions(); o.seed = 4
        let c = try TranscoderTrainer(options: o, source: smallSource()).train()
        XCTAssertNotEqual(a.query.wDec, c.query.wDec)
    }

    /// Cancelling writes a checkpoint; resuming from it ends exactly where an uninterrupted run does.
    func testCancelAndResumeIsBitForBit() throws {
        let whole = try TranscoderTrainer(options: smallOptions(), source: smallSource()).train()
        let flag = CancellationFlag()
        let ckpt = tmp + "/run.ckpt.safetensors"
        let first = try TranscoderTrainer(options: smallOptions(), source: smallSource())
            .train(progress: { if $0.step == 13 { flag.cancel() } }, cancel: flag, checkpointPath: ckpt)
        XCTAssertFalse(first.completed); XCTAssertEqual(first.steps, 13); XCTAssertNil(first.evaluation)
        XCTAssertTrue(FileManager.default.fileExists(atPath: ckpt))
        let resumed = try TranscoderTrainer(options: smallOptions(), source: smallSource()).train(resumeFrom: ckpt)
        XCTAssertTrue(resumed.completed)
        XCTAssertEqual(resumed.steps, whole.steps)
        XCTAssertEqual(resumed.query, whole.query); XCTAssertEqual(resumed.key, whole.key)
        XCTAssertEqual(resumed.lambdaQuery, whole.lambdaQuery)
        XCTAssertEqual(resumed.evaluation?.metrics.klFull, whole.evaluation?.metrics.klFull)

        var other = smallOptions(); other.learningRate = 5e-3
        XCTAssertThrowsError(try TranscoderTrainer(options: other, source: smallSource()).train(resumeFrom: ckpt)) {
            XCTAssertTrue("\($0)".contains("different training options"), "\($0)")
        }
        let bogus = tmp + "/bogus.safetensors"
        try Data("not a checkpoint".utf8).write(to: URL(fileURLWithPath: bogus))
        XCTAssertThrowsError(try TranscoderTrainer(options: smallOptions(), source: smallSource()).train(resumeFrom: bogus)) {
            XCTAssertTrue("\($0)".contains(bogus), "\($0)")
        }
    }

    /// The decoder fit after the token budget moves the decoders alone: the encoders end exactly
    /// where a run without it leaves them, the decoders do not, and the held-out KL falls.
    func testDecoderFitMovesOnlyTheDecoders() throws {
        var without = smallOptions(); without.decoderFitFraction = 0
        var with = smallOptions(); with.decoderFitFraction = 0.5
        let a = try TranscoderTrainer(options: without, source: smallSource()).train()
        let b = try TranscoderTrainer(options: with, source: smallSource()).train()
        XCTAssertEqual(a.tokensSeen, with.trainTokens)
        XCTAssertEqual(b.tokensSeen, with.trainTokens + with.decoderFitTokens)
        for (x, y) in [(a.query, b.query), (a.key, b.key)] {
            XCTAssertEqual(x.wEnc, y.wEnc); XCTAssertEqual(x.bEnc, y.bEnc)
            XCTAssertNotEqual(x.wDec, y.wDec); XCTAssertNotEqual(x.bDec, y.bDec)
        }
        XCTAssertEqual(a.lambdaQuery, b.lambdaQuery)
        let klWithout = try XCTUnwrap(a.evaluation).metrics.klFull, klWith = try XCTUnwrap(b.evaluation).metrics.klFull
        XCTAssertLessThan(klWith, klWithout)

        // Cancelled during the fit, a run checkpoints the state at the fit's start (the fit's
        // pair-map term is built from data read there) and resumes to the same weights.
        let flag = CancellationFlag()
        let ckpt = tmp + "/fit.ckpt.safetensors"
        let mainSteps = with.trainTokens / (8 * 8)
        let first = try TranscoderTrainer(options: with, source: smallSource())
            .train(progress: { if $0.step == mainSteps + 4 { flag.cancel() } }, cancel: flag, checkpointPath: ckpt)
        XCTAssertFalse(first.completed); XCTAssertEqual(first.steps, mainSteps)
        XCTAssertEqual(first.query, a.query); XCTAssertEqual(first.key, a.key)
        let resumed = try TranscoderTrainer(options: with, source: smallSource()).train(resumeFrom: ckpt)
        XCTAssertEqual(resumed.query, b.query); XCTAssertEqual(resumed.key, b.key)

        var bad = smallOptions(); bad.decoderFitFraction = -0.1
        XCTAssertThrowsError(try TranscoderTrainer(options: bad, source: smallSource())) {
            XCTAssertTrue("\($0)".contains("--decoder-fit"), "\($0)")
        }
    }

    func testProgressAndMetricsAreReported() throws {
        var seen: [TrainingProgress] = []
        let r = try TranscoderTrainer(options: smallOptions(), source: smallSource()).train(progress: { seen.append($0) })
        XCTAssertEqual(seen.count, r.steps)
        XCTAssertEqual(seen.last?.tokens, r.tokensSeen)
        XCTAssertGreaterThanOrEqual(r.tokensSeen, smallOptions().trainTokens)
        let m = try XCTUnwrap(r.evaluation).metrics
        XCTAssertEqual(m.heldOutTokens, 8 * 8)
        XCTAssertGreaterThan(m.baselineUniformKL, m.klFull)
        XCTAssert((0...1).contains(m.top1Agreement))
        XCTAssertGreaterThan(m.l0Query, 0)
        // The L0 target moved λ away from its starting value.
        XCTAssertNotEqual(r.lambdaQuery, smallOptions().objective.lambdaQ)
    }

    func testTooLittleDataAndBadOptionsAreRefused() throws {
        var o = smallOptions(); o.heldOutSequences = 48
        XCTAssertThrowsError(try TranscoderTrainer(options: o, source: smallSource()).train()) {
            XCTAssertTrue("\($0)".contains("no sequences left for training"), "\($0)")
        }
        o = smallOptions(); o.dHidden = 0
        XCTAssertThrowsError(try TranscoderTrainer(options: o, source: smallSource())) { XCTAssertTrue("\($0)".contains("--d-hidden")) }
        o = smallOptions(); o.queryActivation = .topK(99)
        XCTAssertThrowsError(try TranscoderTrainer(options: o, source: smallSource())) { XCTAssertTrue("\($0)".contains("TopK")) }
    }

    func testDeadFeaturesAreCountedAndResampled() {
        var tracker = FeatureActivityTracker(features: 4, window: 100)
        var codes = SparseActivations(width: 4)
        codes.appendRow(dense: [0, 1, 0, 2])
        tracker.record(codes, tokenCount: 150)
        XCTAssertEqual(tracker.dead(at: 200), [0, 2])
        XCTAssertEqual(tracker.liveCount(at: 200), 2)

        var p = Step1TestSupport.randomParameters(dIn: 3, hidden: 4, out: 2, seed: 1)
        let before = p
        var two = SparseActivations(width: 4)
        two.appendRow(dense: [0, 1, 0, 2]); two.appendRow(dense: [0, 0, 0, 0])
        var rng = TrainingRandom(seed: 1)
        // Token 1 has all the error: feature 0 is aimed at it and claims it, so feature 2 finds
        // nothing left to draw and stays as it was (dead) until the next round.
        let restarted = DeadFeatureResampler.resample(&p, features: [0, 2], codes: two, x: [0, 0, 0, 1, 2, 2], target: [0, 0, 3, 4],
                                                      tokenError: [0, 1], live: [false, true, false, true], rng: &rng)
        XCTAssertEqual(restarted, [0])
        XCTAssertEqual(Array(p.wDec[2..<6]), Array(before.wDec[2..<6]))
        XCTAssertEqual(Array(p.encoderT[6..<9]), Array(before.encoderT[6..<9]))
        XCTAssertEqual(p.bEnc[2], before.bEnc[2])
        // Decoder row: unit residual (target − b_dec) at token 1 (nothing fires there).
        let res = [3 - before.bDec[0], 4 - before.bDec[1]], rn = (res[0] * res[0] + res[1] * res[1]).squareRoot()
        XCTAssertEqual(p.wDec[0], res[0] / rn, accuracy: 1e-5); XCTAssertEqual(p.wDec[1], res[1] / rn, accuracy: 1e-5)
        // Encoder row along the centred input (0.5, 1, 1); b_enc puts the threshold at the batch's top.
        XCTAssertEqual(p.encoderT[0] * 2, p.encoderT[1], accuracy: 1e-6); XCTAssertEqual(p.encoderT[1], p.encoderT[2], accuracy: 1e-6)
        let pre1 = p.encoderT[0] * 1 + p.encoderT[1] * 2 + p.encoderT[2] * 2
        XCTAssertEqual(p.bEnc[0], -pre1, accuracy: 1e-5)

        // Two tokens with error, two dead features: each feature takes a different token, never both the same.
        var q = Step1TestSupport.randomParameters(dIn: 3, hidden: 4, out: 2, seed: 2)
        var empty = SparseActivations(width: 4)
        empty.appendRow(dense: [0, 0, 0, 0]); empty.appendRow(dense: [0, 0, 0, 0])
        let both = DeadFeatureResampler.resample(&q, features: [0, 2], codes: empty, x: [3, 0, 0, 0, 0, 3], target: [1, 0, 0, 1],
                                                 tokenError: [1, 1], live: [false, true, false, true], rng: &rng)
        XCTAssertEqual(both, [0, 2])
        let aimedAtFirst = [0, 2].map { q.encoderT[$0 * 3] > 0 }
        XCTAssertNotEqual(aimedAtFirst[0], aimedAtFirst[1])
    }

    func testHarvestFileRoundTripAndErrors() throws {
        let g = AttentionGeometry(nHead: 2, nKVHead: 1, dHead: 4, causal: true)
        let b = Step1TestSupport.randomBatch(sequences: 3, length: 5, dModel: 6, geometry: g, seed: 2)
        var w = SafeTensorsWriter()
        w.metadata["architecture"] = "gpt2"
        w.add("tokens", shape: [3, 5], int32: [Int32](repeating: 1, count: 15))
        w.add("blocks.1.hook_attn_in", shape: [3, 5, 6], float32: b.x)
        w.add("blocks.1.attn.hook_q", shape: [3, 5, 2, 4], float32: b.q)
        w.add("blocks.1.attn.hook_k", shape: [3, 5, 1, 4], float32: b.k)
        w.add("blocks.1.attn.hook_pattern", shape: [3, 2, 5, 5], float32: b.pattern)
        let path = tmp + "/h.safetensors"
        try w.write(to: path)
        let src = try HarvestFileSource(path: path)
        XCTAssertEqual(src.layer, 1); XCTAssertEqual(src.geometry, g)
        var seqs: [TrainingBatch] = []
        while let s = try src.nextSequence() { seqs.append(s) }
        XCTAssertEqual(seqs.count, 3)
        let back = TrainingBatch.stacking(seqs)
        XCTAssertEqual(back.x, b.x); XCTAssertEqual(back.q, b.q); XCTAssertEqual(back.k, b.k); XCTAssertEqual(back.pattern, b.pattern)
        try src.rewind(); XCTAssertEqual(try src.nextSequence()?.x, seqs[0].x)

        XCTAssertThrowsError(try HarvestFileSource(path: path, layer: 2)) { XCTAssertTrue("\($0)".contains("blocks.2.hook_attn_in is missing"), "\($0)") }
        var w2 = SafeTensorsWriter()
        w2.add("blocks.0.hook_attn_in", shape: [3, 5, 6], float32: b.x)
        w2.add("blocks.0.attn.hook_q", shape: [3, 5, 2, 4], float32: b.q)
        w2.add("blocks.0.attn.hook_k", shape: [3, 5, 1, 4], float32: b.k)
        w2.add("blocks.0.attn.hook_pattern", shape: [3, 2, 5, 4], float32: Array(b.pattern[0..<120]))
        let bad = tmp + "/bad.safetensors"
        try w2.write(to: bad)
        XCTAssertThrowsError(try HarvestFileSource(path: bad)) { XCTAssertTrue("\($0)".contains("disagree") && "\($0)".contains(bad), "\($0)") }
    }

    /// The export can be read back and reproduces the activations exactly.
    func testSAELensExport() throws {
        let r = try TranscoderTrainer(options: smallOptions(), source: smallSource()).train()
        let e = try XCTUnwrap(r.evaluation)
        let dir = tmp + "/dicts"
        try SAELensExport.write(query: r.query, key: r.key, log10DensityQuery: e.log10DensityQuery, log10DensityKey: e.log10DensityKey,
                                info: DictionaryExportInfo(modelName: "planted", layer: 0, geometry: r.geometry, contextSize: 8), to: dir)
        for (side, t) in [("query", r.query), ("key", r.key)] {
            let w = try SafeTensorsFile(path: "\(dir)/\(side)/sae_weights.safetensors")
            let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(side)/cfg.json"))) as! [String: Any]
            // The key side's first-position feature (on by default) is named in cfg.json.
            XCTAssertEqual(cfg["first_position_feature"] as? Int, side == "key" ? 0 : nil)
            let back = Transcoder(wEnc: try w.floatTensor("W_enc"), bEnc: try w.floatTensor("b_enc"), wDec: try w.floatTensor("W_dec"),
                                  bDec: try w.floatTensor("b_dec"), activation: t.activation,
                                  firstPositionFeature: cfg["first_position_feature"] as? Int)
            XCTAssertEqual(back, t)
            let s = try SafeTensorsFile(path: "\(dir)/\(side)/sparsity.safetensors")
            XCTAssertEqual(try s.floatTensor("sparsity").shape, [t.dHidden])
            XCTAssertEqual(cfg["d_in"] as? Int, t.dIn); XCTAssertEqual(cfg["d_sae"] as? Int, t.dHidden); XCTAssertEqual(cfg["d_out"] as? Int, t.dOut)
            XCTAssertEqual(cfg["hook_name"] as? String, "blocks.0.hook_attn_in")
        }
        XCTAssertThrowsError(try SAELensExport.write(query: r.query, key: r.key, log10DensityQuery: [], log10DensityKey: [],
                                                     info: DictionaryExportInfo(modelName: "m", layer: 0, geometry: r.geometry, contextSize: 8),
                                                     to: tmp + "/bad")) { XCTAssertTrue("\($0)".contains("densities")) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/bad"))
    }
}

/// A one-pass stream (no restart) trains as long as the budget fits in one pass, and says so otherwise.
final class OnePassSourceTests: XCTestCase {
    func testOnePassModelStream() throws {
        let dir = Step1TestSupport.repoRoot + "/Tests/Fixtures/train"
        let model = try loadModel(path: dir + "/planted_gpt2")
        let tokens = try SafeTensorsFile(path: dir + "/planted_gpt2_harvest.safetensors").intArray("tokens")
        let set = SequenceSet(ids: tokens.values.map(Int32.init), context: tokens.shape[1])
        var o = PlantedRecoveryTests.plantedOptions()
        o.heldOutSequences = 8; o.trainTokens = 16 * 8 * 4
        o.decoderFitFraction = 0   // the decoder fit reads past the budget (its pair term, 1024 sequences)
        var batches = set.batches(size: 16)
        let ok = try TranscoderTrainer(options: o, source: ModelActivationSource(model: model, layer: 1, batches: { batches.next() })).train()
        XCTAssertTrue(ok.completed); XCTAssertEqual(ok.steps, 4)
        o.trainTokens = 16 * 8 * 100
        var again = set.batches(size: 16)
        XCTAssertThrowsError(try TranscoderTrainer(options: o, source: ModelActivationSource(model: model, layer: 1, batches: { again.next() })).train()) {
            XCTAssertTrue("\($0)".contains("cannot be rewound"), "\($0)")
        }
    }
}
