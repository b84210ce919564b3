import XCTest
import QKTensor
import QKModels
@testable import QKTrain

/// Step 2 on a planted QK circuit: decoders whose pair map holds a few strong, known pairs per
/// head among weak distractors, and patterns generated from the strong pairs alone. Training must
/// keep the planted pairs at the top, find the BOS sink by the attention it carries, and prune
/// nearly everything else.
///
/// Layout (d_head 8, 4 heads over 2 key/value heads, causal):
/// - key feature 0 fires only at position 0 (BOS) with direction e0 on both kv heads;
///   key features 1...7 (kv head 0) and 9...15 (kv head 1) have directions e1...e7;
///   key feature 47 also fires only at BOS but with a weak, random direction (a decoy sink);
/// - query feature 0 fires everywhere and points at e0 on heads 0 and 2 (the dense × BOS sink);
/// - head h has content query features 1+4h ... 3+4h pointing at e1...e3 (heads 0, 2) or
///   e4...e6 (heads 1, 3), so each is paired with exactly one content key feature;
/// - every other decoder entry is small noise.
final class PairMapPlantedTests: XCTestCase {
    let nHead = 4, nKV = 2, dHead = 8, width = 48, length = 16

    func testPlantedPairsSurviveAndTheRestIsPruned() throws {
        var options = MaskTrainingOptions()
        options.penalty = 2e-4
        try check(options, choosePenalty: false)
    }

    /// μ chosen from the data (`MaskPenaltySearch`), starting 50× too small: the search brackets
    /// it, and the map it trains passes the same checks.
    func testPenaltyChosenFromTheDataRecoversThePlantedPairs() throws {
        var options = MaskTrainingOptions()
        options.penalty = 4e-6
        let r = try check(options, choosePenalty: true)
        let search = try XCTUnwrap(r.penaltySearch)
        print("planted μ search: \(search.points.map { ($0.penalty, $0.kept, $0.ratio) }) chose \(search.chosen)")
        XCTAssertGreaterThan(search.points.count, 1)
        XCTAssertEqual(r.metrics.penalty, search.chosen)
        XCTAssertTrue(search.points.contains { $0.ratio <= MaskPenaltySearch.targetRatio })
        XCTAssertEqual(search.points.map(\.penalty), search.points.map(\.penalty).sorted())
        // Larger μ keeps fewer entries.
        XCTAssertEqual(search.points.map(\.kept), search.points.map(\.kept).sorted(by: >))
    }

    @discardableResult
    private func check(_ base: MaskTrainingOptions, choosePenalty: Bool) throws -> PairMapResult {
        var rng = SplitMix64(seed: 7)
        var wq = (0..<(width * nHead * dHead)).map { _ in 0.08 * PairMapTestSupport.normal(&rng) }
        var wk = (0..<(width * nKV * dHead)).map { _ in 0.08 * PairMapTestSupport.normal(&rng) }
        func setQ(_ i: Int, _ h: Int, _ d: Int, _ v: Float) {
            for x in 0..<dHead { wq[i * nHead * dHead + h * dHead + x] = x == d ? v : 0.02 * PairMapTestSupport.normal(&rng) }
        }
        func setK(_ j: Int, _ g: Int, _ d: Int, _ v: Float) {
            for x in 0..<dHead { wk[j * nKV * dHead + g * dHead + x] = x == d ? v : 0.02 * PairMapTestSupport.normal(&rng) }
        }
        setK(0, 0, 0, 3); setK(0, 1, 0, 3)
        for d in 1...7 { setK(d, 0, d, 3); setK(8 + d, 1, d, 3) }
        setQ(0, 0, 0, 3); setQ(0, 2, 0, 3)
        var planted = [(head: Int, query: Int, key: Int)]()
        for h in 0..<nHead {
            for c in 0..<3 {
                let d = 1 + (h % 2) * 3 + c, i = 1 + 4 * h + c
                setQ(i, h, d, 3)
                planted.append((h, i, h / 2 == 0 ? d : 8 + d))
            }
        }
        let q = PairMapTestSupport.transcoder(wDec: Tensor(shape: [width, nHead * dHead], data: wq), bDec: Tensor(zeros: [nHead * dHead]))
        let k = PairMapTestSupport.transcoder(wDec: Tensor(shape: [width, nKV * dHead], data: wk), bDec: Tensor(zeros: [nKV * dHead]))
        let config = PairMapTestSupport.config(causal: true, nHead: nHead, nKVHead: nKV, dHead: dHead)

        // The true map: the planted entries only, with the decoders' own values.
        let strongQuery = Set(planted.map(\.query) + [0]), strongKey = Set(planted.map(\.key) + [0])
        func trueScore(_ i: Int, _ j: Int, _ h: Int) -> Float {
            let isPlanted = planted.contains { $0.head == h && $0.query == i && $0.key == j } || (i == 0 && j == 0 && (h == 0 || h == 2))
            guard isPlanted, strongQuery.contains(i), strongKey.contains(j) else { return 0 }
            var s: Float = 0
            for x in 0..<dHead { s += wq[i * nHead * dHead + h * dHead + x] * wk[j * nKV * dHead + (h / 2) * dHead + x] }
            return s / Float(dHead).squareRoot()
        }
        func sequence() -> PairMapSequence {
            var dq = [Float](repeating: 0, count: length * width), dk = dq
            for p in 0..<length {
                dq[p * width] = 0.8 + 0.4 * PairMapTestSupport.uniform(&rng)
                for i in 1..<width where PairMapTestSupport.uniform(&rng) < (i <= 16 ? 0.15 : 0.1) {
                    dq[p * width + i] = 0.5 + PairMapTestSupport.uniform(&rng)
                }
                if p == 0 { dk[0] = 1.5; dk[47] = 1.5; continue }
                for j in 1..<47 where PairMapTestSupport.uniform(&rng) < (j <= 16 ? 0.15 : 0.1) {
                    dk[p * width + j] = 0.5 + PairMapTestSupport.uniform(&rng)
                }
            }
            var pattern = [Float](repeating: 0, count: nHead * length * length)
            for h in 0..<nHead {
                for p in 0..<length {
                    var row = [Float](repeating: 0, count: p + 1)
                    for s in 0...p {
                        for i in 0..<width where dq[p * width + i] > 0 {
                            for j in 0..<width where dk[s * width + j] > 0 {
                                row[s] += dq[p * width + i] * dk[s * width + j] * trueScore(i, j, h)
                            }
                        }
                    }
                    let m = row.max()!
                    let e = row.map { expf($0 - m) }, z = e.reduce(0, +)
                    for s in 0...p { pattern[(h * length + p) * length + s] = e[s] / z }
                }
            }
            return PairMapSequence(query: PairMapTestSupport.codes(dq[...], rows: length, width: width),
                                   key: PairMapTestSupport.codes(dk[...], rows: length, width: width),
                                   pattern: Tensor(shape: [nHead, length, length], data: pattern))
        }
        let training = (0..<96).map { _ in sequence() }, heldOut = (0..<24).map { _ in sequence() }

        var options = base
        options.epochs = 12
        options.batchSequences = 8
        options.learningRate = 2e-2
        var last: MaskTrainingProgress?
        let r = try PairMap.run(query: q, key: k, config: config, training: training, heldOut: heldOut, options: options,
                                choosePenalty: choosePenalty) { last = $0 }
        XCTAssertEqual(last?.epoch, 12)
        XCTAssertEqual(last?.step, 12)
        let m = r.metrics
        XCTAssertLessThan(m.klPruned, m.klUnmasked, "pruning the distractors brings the map closer to the planted pattern")
        XCTAssertGreaterThanOrEqual(m.maskedFractionLive, 0.99, "\(m)")
        for p in planted {
            let ranked = r.pairs(head: p.head, queryFeature: p.query).prefix(3).map { Int(r.keyFeature[$0]) }
            XCTAssertTrue(ranked.contains(p.key), "head \(p.head) query \(p.query): planted key \(p.key) not in top 3 \(ranked)")
        }
        XCTAssertEqual(r.keyFeatures.bosFraction[0], 1)
        XCTAssertEqual(r.keyFeatures.bosFraction[47], 1, "the decoy is BOS-only too, so bos_fraction alone cannot tell them apart")
        for h in [0, 2] {
            XCTAssertEqual(r.keyFeaturesByImportance(head: h).first?.feature, 0, "head \(h)")
        }
        return r
    }
}
