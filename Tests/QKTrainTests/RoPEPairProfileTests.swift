import XCTest
import QKTensor
import QKModels
@testable import QKTrain

/// The offset profile of a pair against rotating q and k with the model's own RoPE.
final class RoPEPairProfileTests: XCTestCase {
    func testProfileMatchesRotatedDotProduct() {
        var rng = SplitMix64(seed: 31)
        let dh = 16
        let rope = RoPE(dHead: dh, theta: 10000)
        let u = (0..<dh).map { _ in PairMapTestSupport.normal(&rng) }, v = (0..<dh).map { _ in PairMapTestSupport.normal(&rng) }
        let profile = RoPEPairProfile(query: u, key: v, rope: rope)
        for (p, s) in [(0, 0), (5, 2), (37, 37), (90, 11), (127, 0)] {
            var q = u, k = v
            rope.apply(&q, positions: 1, heads: 1, positionOffset: p)
            rope.apply(&k, positions: 1, heads: 1, positionOffset: s)
            var dot: Float = 0
            for d in 0..<dh { dot += q[d] * k[d] }
            XCTAssertEqual(profile.value(offset: p - s), dot / Float(dh).squareRoot(), accuracy: 1e-4, "p \(p) s \(s)")
        }
        // The peak is the largest |M| over the offsets.
        let peak = profile.peak(offsets: 128)
        for d in 0..<128 { XCTAssertLessThanOrEqual(abs(profile.value(offset: d)), abs(peak.value) + 1e-6) }
        XCTAssertEqual(profile.value(offset: peak.offset), peak.value)
    }

    func testPeaksOfAResultNeedRoPE() throws {
        let (q, k, config, seqs) = PairMapTestSupport.random(seed: 2, causal: true, nHead: 2, nKVHead: 1, dHead: 4,
                                                               dq: 5, dk: 5, sequences: 2, length: 4, active: 2)
        var options = MaskTrainingOptions()
        options.epochs = 0
        let r = try PairMap.run(query: q, key: k, config: config, training: seqs, heldOut: seqs, options: options)
        XCTAssertThrowsError(try r.ropePeaks(query: q, key: k, config: config, offsets: 8))
        var rope = config
        rope.ropeTheta = 500
        let peaks = try r.ropePeaks(query: q, key: k, config: rope, offsets: 8)
        XCTAssertEqual(peaks.count, r.count)
        XCTAssertTrue(peaks.allSatisfy { (0..<8).contains($0.offset) })
    }
}
