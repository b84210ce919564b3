import XCTest
import Foundation
import QKTensor
import QKModels
import QKTrain
import QKStore
import QKAnalysis

/// `qkdb pairs` on a RoPE run: a planted previous-token pair (head 0, its rotated score peaks at
/// offset 1) and a content pair (head 1, flat over offsets) are trained by step 2, stored as the
/// pipeline stores them, and found by the command with the right peak offset; `--offset` ranks
/// by the exact weight at an offset.
final class RoPEPairsCLITests: XCTestCase {
    static let dh = 8, width = 5, length = 14

    /// Decoders: query/key feature 0 the previous-token pair, 1 the content pair, 2..4 weak noise.
    static func decoders() -> (Transcoder, Transcoder, ModelConfig) {
        let h = 2, half = dh / 2
        var rng = SplitMix64(seed: 7)
        func noise() -> Float { Float(Int(rng.next() % 1000) - 500) / 2000 }
        var wq = (0..<(width * h * dh)).map { _ in noise() }, wk = (0..<(width * dh)).map { _ in noise() }
        for x in 0..<(2 * h * dh) { wq[x] = 0 }
        for x in 0..<(2 * dh) { wk[x] = 0 }
        let omega = RoPE(dHead: dh, theta: 10000).frequencies, c = Float(20).squareRoot()
        for f in 0..<2 { wk[f] = 1; wq[f] = c * cosf(omega[f]); wq[f + half] = -c * sinf(omega[f]) }   // u0 = R_{-1} v0
        wk[dh + 3] = 2.5; wq[(h + 1) * dh + 3] = 2.5
        func transcoder(_ w: [Float], _ out: Int) -> Transcoder {
            Transcoder(wEnc: Tensor(zeros: [1, width]), bEnc: Tensor(zeros: [width]), wDec: Tensor(shape: [width, out], data: w),
                       bDec: Tensor(zeros: [out]), activation: .relu)
        }
        let config = ModelConfig(architecture: .llama, nLayer: 1, dModel: 1, nHead: h, nKVHead: 1, dHead: dh, vocabSize: 10,
                                 maxPositions: 64, ropeTheta: 10000, hasLMHead: false)
        return (transcoder(wq, h * dh), transcoder(wk, dh), config)
    }

    static func sequences(_ n: Int, seed: UInt64, query: Transcoder, key: Transcoder, config: ModelConfig) throws -> [PairMapSequence] {
        var rng = SplitMix64(seed: seed)
        func chance() -> Bool { rng.next() % 10 < 3 }
        var all = [(Int32, Int32, Int32)]()
        for x in 0..<2 { for i in 0..<width { for j in 0..<width { all.append((Int32(x), Int32(i), Int32(j))) } } }
        let truth = try RoPEPairScorer(query: query, key: key, config: config, head: all.map(\.0), queryFeature: all.map(\.1),
                                       keyFeature: all.map(\.2), mask: [Float](repeating: 1, count: all.count))
        return try (0..<n).map { _ in
            var dq = [Float](repeating: 0, count: length * width), dk = dq
            for p in 0..<length {
                dq[p * width] = 1; dk[p * width] = 1
                for f in 1..<width {
                    if chance() { dq[p * width + f] = 1.2 }
                    if chance() { dk[p * width + f] = 1.2 }
                }
            }
            var aq = SparseActivations(width: width), ak = SparseActivations(width: width)
            dq.withUnsafeBufferPointer { d in for p in 0..<length { aq.appendRow(dense: d.baseAddress! + p * width) } }
            dk.withUnsafeBufferPointer { d in for p in 0..<length { ak.appendRow(dense: d.baseAddress! + p * width) } }
            return PairMapSequence(query: aq, key: ak, pattern: try truth.pattern(query: aq, key: ak))
        }
    }

    func testPairsShowsPeakOffsetsAndRanksAtAnOffset() throws {
        let (q, k, config) = Self.decoders()
        var o = MaskTrainingOptions()
        o.penalty = 2e-3; o.learningRate = 0.05; o.epochs = 25; o.batchSequences = 8; o.threads = 2
        let result = try PairMap.run(query: q, key: k, config: config,
                                     training: try Self.sequences(16, seed: 1, query: q, key: k, config: config),
                                     heldOut: try Self.sequences(4, seed: 2, query: q, key: k, config: config), options: o)
        let dir = CLI.temporaryDirectory(self)
        let path = dir.appendingPathComponent("rope.qkdb").path
        let store = try Store(path: path, mode: .create)
        let run = try store.createRun(RunSpec(name: "rope", kind: .trained, architecture: "llama", nHead: 2, nKVHead: 1, dHead: Self.dh,
                                              dQuery: Self.width, dKey: Self.width))
        try RunTensors.put(q, side: "query", run: run, in: store)
        try RunTensors.put(k, side: "key", run: run, in: store)
        XCTAssertNil(try RoPEPairOffsets.theta(store: store, run: run), "no θ before step 2 writes it")
        try MaskStage.writePairMap(result, run: run, nHead: 2, store: store)
        // What export-dictionaries writes as cfg.json's rope_theta.
        XCTAssertEqual(try RoPEPairOffsets.theta(store: store, run: run), 10000)

        // The previous-token query feature's strongest pair on head 0 is key feature 0, peaking at offset 1.
        let prev = try CLI.run(["pairs", "--store", path, "--run", String(run), "--query-feature", "0", "--head", "0", "--format", "json"])
        XCTAssertEqual(prev.status, 0, prev.stderr)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(prev.stdout.utf8)) as? [[String: Any]])
        let first = try XCTUnwrap(rows.first)
        XCTAssertEqual(first["key_feature"] as? Int, 0)
        XCTAssertEqual((first["peak_offset"] as? NSNumber)?.intValue, 1)
        // The content pair on head 1, strongest near offset 0.
        let content = try CLI.run(["pairs", "--store", path, "--run", String(run), "--query-feature", "1", "--head", "1", "--format", "json"])
        let crows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(content.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(crows.first?["key_feature"] as? Int, 1)
        XCTAssertEqual((crows.first?["peak_offset"] as? NSNumber)?.intValue, 0)

        // --offset: the weight at offset 1 is the peak value; at offset 3 the pair has turned
        // (cos 2 + cos 0.2 is about a third of the peak), and the values agree with the profile.
        let at1 = try CLI.run(["pairs", "--store", path, "--run", String(run), "--key-feature", "0", "--head", "0", "--offset", "1", "--format", "json"])
        XCTAssertEqual(at1.status, 0, at1.stderr)
        let r1 = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(at1.stdout.utf8)) as? [[String: Any]])
        let top1 = try XCTUnwrap(r1.first)
        XCTAssertEqual(top1["query_feature"] as? Int, 0)
        let v1 = try XCTUnwrap((top1["value_at_offset"] as? NSNumber)?.floatValue)
        XCTAssertEqual(v1, try XCTUnwrap((top1["peak_value"] as? NSNumber)?.floatValue), accuracy: 1e-4 * abs(v1))
        let at3 = try CLI.run(["pairs", "--store", path, "--run", String(run), "--key-feature", "0", "--head", "0", "--offset", "3", "--format", "json"])
        let r3 = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(at3.stdout.utf8)) as? [[String: Any]])
        let v3 = try XCTUnwrap((r3.first { $0["query_feature"] as? Int == 0 }?["value_at_offset"] as? NSNumber)?.floatValue)
        let expected = (cosf(2) + cosf(0.2)) / (1 + 1)
        XCTAssertEqual(v3 / v1, expected, accuracy: 1e-3)

        // Errors: one line each.
        try CLI.assertFails(["pairs", "--store", path, "--run", String(run), "--query-feature", "0", "--offset=-2"], mentioning: "--offset")
        try CLI.assertFails(["pairs", "--store", path, "--run", String(run), "--query-feature", "0", "--offset", "2", "--order", "mean_contribution"],
                            mentioning: "--order")
    }
}
