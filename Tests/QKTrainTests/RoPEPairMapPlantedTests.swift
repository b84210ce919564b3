import XCTest
import QKTensor
import QKModels
@testable import QKTrain

/// A planted RoPE circuit: head 0 holds a previous-token pair (its rotated score peaks at offset 1),
/// head 1 a content pair (low frequency, flat over offsets), among weak random noise features.
/// The true patterns are those of the planted decoders themselves; step 2 must keep both pairs,
/// rank them first, and put the previous-token pair's peak at offset 1.
final class RoPEPairMapPlantedTests: XCTestCase {
    static let dHead = 8, theta: Float = 10000, width = 6, length = 16

    /// Query/key transcoders (decoders only, always the same), config and sequences (drawn from
    /// `seed`) with their true patterns.
    static func planted(sequences: Int, seed: UInt64) throws -> (Transcoder, Transcoder, ModelConfig, [PairMapSequence]) {
        let dh = dHead, h = 2, half = dh / 2
        var rng = SplitMix64(seed: 99)
        var config = PairMapTestSupport.config(causal: true, nHead: h, nKVHead: 1, dHead: dh)
        config.architecture = .llama
        config.ropeTheta = theta
        var wq = (0..<(width * h * dh)).map { _ in 0.3 * PairMapTestSupport.normal(&rng) }
        var wk = (0..<(width * dh)).map { _ in 0.3 * PairMapTestSupport.normal(&rng) }
        for x in 0..<(2 * h * dh) { wq[x] = 0 }
        for x in 0..<(2 * dh) { wk[x] = 0 }
        // Previous-token pair: v0 in the two fastest frequencies (ω = 1, 0.1), u0 = R_{-1} v0 on head 0,
        // so <R_p u0, R_s v0> ∝ cos(Δ − 1) + cos(0.1(Δ − 1)), largest at Δ = p − s = 1.
        let c = Float(20).squareRoot()
        let omega = RoPE(dHead: dh, theta: theta).frequencies
        for f in 0..<2 {
            wk[f] = 1
            wq[f] = c * cosf(omega[f]); wq[f + half] = -c * sinf(omega[f])
        }
        // Content pair on head 1: both rows on the slowest frequency, nearly flat over offsets.
        wk[dh + 3] = 2.5
        wq[(1 * h + 1) * dh + 3] = 2.5
        let q = PairMapTestSupport.transcoder(wDec: Tensor(shape: [width, h * dh], data: wq),
                                              bDec: Tensor(shape: [h * dh], data: (0..<(h * dh)).map { _ in 0.1 * PairMapTestSupport.normal(&rng) }))
        let k = PairMapTestSupport.transcoder(wDec: Tensor(shape: [width, dh], data: wk),
                                              bDec: Tensor(shape: [dh], data: (0..<dh).map { _ in 0.1 * PairMapTestSupport.normal(&rng) }))
        var all = [(Int32, Int32, Int32)]()
        for x in 0..<h { for i in 0..<width { for j in 0..<width { all.append((Int32(x), Int32(i), Int32(j))) } } }
        let truth = try RoPEPairScorer(query: q, key: k, config: config, head: all.map(\.0), queryFeature: all.map(\.1),
                                       keyFeature: all.map(\.2), mask: [Float](repeating: 1, count: all.count))
        var seqs = [PairMapSequence]()
        rng = SplitMix64(seed: seed)
        for _ in 0..<sequences {
            var dq = [Float](repeating: 0, count: length * width), dk = dq
            for p in 0..<length {
                dq[p * width] = 1; dk[p * width] = 1
                if PairMapTestSupport.uniform(&rng) < 0.3 { dq[p * width + 1] = 1 + PairMapTestSupport.uniform(&rng) }
                if PairMapTestSupport.uniform(&rng) < 0.3 { dk[p * width + 1] = 1 + PairMapTestSupport.uniform(&rng) }
                for f in 2..<width {
                    if PairMapTestSupport.uniform(&rng) < 0.3 { dq[p * width + f] = 0.5 + PairMapTestSupport.uniform(&rng) }
                    if PairMapTestSupport.uniform(&rng) < 0.3 { dk[p * width + f] = 0.5 + PairMapTestSupport.uniform(&rng) }
                }
            }
            let aq = PairMapTestSupport.codes(dq[...], rows: length, width: width)
            let ak = PairMapTestSupport.codes(dk[...], rows: length, width: width)
            seqs.append(PairMapSequence(query: aq, key: ak, pattern: try truth.pattern(query: aq, key: ak)))
        }
        return (q, k, config, seqs)
    }

    static func options() -> MaskTrainingOptions {
        var o = MaskTrainingOptions()
        o.penalty = 2e-3; o.learningRate = 0.05; o.epochs = 25; o.batchSequences = 8; o.threads = 2
        return o
    }

    func testPreviousTokenAndContentPairsAreFound() throws {
        let (q, k, config, training) = try Self.planted(sequences: 16, seed: 1)
        let (_, _, _, heldOut) = try Self.planted(sequences: 6, seed: 2)
        let r = try PairMap.run(query: q, key: k, config: config, training: training, heldOut: heldOut, options: Self.options())
        XCTAssertEqual(r.peakOffset.count, r.count)
        XCTAssertEqual(r.ropeTheta, Self.theta)
        XCTAssertEqual(r.keyBiasImportance.count, 2 * Self.width)
        XCTAssertTrue(r.keyBiasImportance.allSatisfy { $0 >= 0 && $0.isFinite })
        func find(_ h: Int32, _ i: Int32, _ j: Int32) -> Int? {
            (0..<r.count).first { r.head[$0] == h && r.queryFeature[$0] == i && r.keyFeature[$0] == j }
        }
        let prev = try XCTUnwrap(find(0, 0, 0), "previous-token pair pruned")
        let content = try XCTUnwrap(find(1, 1, 1), "content pair pruned")
        XCTAssertEqual(r.peakOffset[prev], 1)
        XCTAssertEqual(r.peakOffset[content], 0)
        XCTAssertGreaterThan(r.peakValue[prev], 0)
        XCTAssertEqual(r.value[prev], r.peakValue[prev])
        // Each is its query feature's strongest pair on its head.
        XCTAssertEqual(r.pairs(head: 0, queryFeature: 0).first, prev)
        XCTAssertEqual(r.pairs(head: 1, queryFeature: 1).first, content)
        // The previous-token pair carries the most attention of all.
        XCTAssertEqual((0..<r.count).max { r.importance[$0] < r.importance[$1] }, prev)
        XCTAssertLessThan(r.metrics.klUnmasked, 1e-4, "held-out patterns come from the same decoders")
        XCTAssertLessThan(r.metrics.klPruned, 0.05)
        XCTAssertLessThan(r.count, r.metrics.entriesConsidered, "nothing was pruned")
    }

    /// Statistics computed over many small slices of the surviving pairs equal the one-slice ones.
    func testSlicedStatisticsAgree() throws {
        let (q, k, config, training) = try Self.planted(sequences: 8, seed: 3)
        let (_, _, _, heldOut) = try Self.planted(sequences: 3, seed: 4)
        var o = Self.options()
        o.epochs = 3
        let whole = try PairMap.run(query: q, key: k, config: config, training: training, heldOut: heldOut, options: o)
        let saved = OffsetCofiring.budgetBytes
        OffsetCofiring.budgetBytes = 1
        defer { OffsetCofiring.budgetBytes = saved }
        let sliced = try PairMap.run(query: q, key: k, config: config, training: training, heldOut: heldOut, options: o)
        XCTAssertGreaterThan(whole.count, 2)
        XCTAssertEqual(whole.head, sliced.head); XCTAssertEqual(whole.keyFeature, sliced.keyFeature)
        XCTAssertEqual(whole.importance, sliced.importance); XCTAssertEqual(whole.meanContribution, sliced.meanContribution)
        XCTAssertEqual(whole.cooccurrence, sliced.cooccurrence); XCTAssertEqual(whole.peakOffset, sliced.peakOffset)
    }

    /// The scorer evaluation builds from the stored pairs (COO + mask) gives the pruned map's KL
    /// that training reported: the store → evaluation path sees the same map.
    func testScorerFromResultReproducesPrunedKL() throws {
        let (q, k, config, training) = try Self.planted(sequences: 8, seed: 5)
        let (_, _, _, heldOut) = try Self.planted(sequences: 3, seed: 6)
        var o = Self.options()
        o.epochs = 6
        let r = try PairMap.run(query: q, key: k, config: config, training: training, heldOut: heldOut, options: o)
        let scorer = try RoPEPairScorer(query: q, key: k, config: config, head: r.head, queryFeature: r.queryFeature,
                                        keyFeature: r.keyFeature, mask: r.mask)
        var kl = 0.0, rows = 0
        for seq in heldOut {
            let p = try scorer.pattern(query: seq.query, key: seq.key)
            for (a, b) in zip(seq.pattern.data, p.data) where a > 0 { kl += Double(a) * (log(Double(a)) - log(Double(b))) }
            rows += config.nHead * seq.length
        }
        XCTAssertEqual(kl / Double(rows), r.metrics.klPruned, accuracy: 1e-4 * max(1, r.metrics.klPruned))
    }
}
