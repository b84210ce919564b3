import XCTest
import QKTensor
@testable import QKTrain

/// The key dictionary's first-position feature: set, not encoded, at each sequence's position 0.
final class FirstPositionFeatureTests: XCTestCase {
    func testCodesCarryTheFeatureAtFirstPositionsOnly() {
        // Two sequences of 3 rows; feature 2 is fixed; the encoder also "fired" feature 2 on row 4.
        let codes = SparseActivations(rowStart: [0, 2, 3, 3, 4, 6, 7], indices: [1, 3, 0, 2, 2, 4, 4],
                                      values: [0.5, 0.7, 0.2, 0.9, 0.3, 0.8, 0.1], width: 5)
        let fixed = codes.fixingFirstPosition(feature: 2, sequenceLength: 3)
        for r in 0..<fixed.rows {
            let (i, v) = fixed.row(r)
            XCTAssertEqual(Array(i), Array(i).sorted(), "row \(r) indices stay ascending")
            XCTAssertEqual(i.contains(2), r % 3 == 0, "row \(r)")
            if let e = i.firstIndex(of: 2) { XCTAssertEqual(v[e], 1) }
        }
        // Everything else is untouched; the fixed feature is dropped from rows 3 and 4 (it was
        // encoded on row 3, a first position, with 0.9: replaced by 1; on row 4 with 0.3: dropped).
        XCTAssertEqual(fixed.rowStart, [0, 3, 4, 4, 5, 6, 7])
        XCTAssertEqual(fixed.indices, [1, 2, 3, 0, 2, 4, 4])
        XCTAssertEqual(fixed.values, [0.5, 1, 0.7, 0.2, 1, 0.8, 0.1])
    }

    func testFeatureAboveEveryOtherIndexIsAppended() {
        let codes = SparseActivations(rowStart: [0, 2, 3], indices: [0, 1, 1], values: [1, 2, 3], width: 4)
        let fixed = codes.fixingFirstPosition(feature: 3, sequenceLength: 2)
        XCTAssertEqual(fixed.rowStart, [0, 3, 4])
        XCTAssertEqual(fixed.indices, [0, 1, 3, 1])
        XCTAssertEqual(fixed.values, [1, 2, 1, 3])
    }

    func testTranscoderEncodeAppliesIt() {
        var rng = TrainingRandom(seed: 3)
        let dIn = 4, hidden = 6, out = 2, t = 5
        let x = Tensor(shape: [2 * t, dIn], data: (0..<(2 * t * dIn)).map { _ in rng.normal() })
        let p = Step1TestSupport.randomParameters(dIn: dIn, hidden: hidden, out: out, seed: 9)
        let plain = p.transcoder(activation: .relu), fixed = p.transcoder(activation: .relu, firstPositionFeature: 4)
        XCTAssertEqual(fixed.encode(x, sequenceLength: t), plain.encode(x, sequenceLength: t).fixingFirstPosition(feature: 4, sequenceLength: t))
        XCTAssertNotEqual(fixed.encode(x, sequenceLength: t), plain.encode(x, sequenceLength: t))
    }

    /// When the first positions' inputs stand apart (as [CLS] and BOS do), the exported encoder
    /// alone reproduces the feature: ≈ 1 on first positions, 0 elsewhere.
    func testEncoderIsFittedWhenFirstPositionsAreSeparable() {
        var rng = TrainingRandom(seed: 5)
        let dIn = 6, t = 8, sequences = 16, rows = t * sequences
        let bos: [Float] = [4, -3, 2, 0, 1, 5]
        var x = [Float](repeating: 0, count: rows * dIn)
        for r in 0..<rows { for j in 0..<dIn { x[r * dIn + j] = (r % t == 0 ? bos[j] : 0) + 0.1 * rng.normal() } }
        var p = TranscoderParameters(zerosIn: dIn, hidden: 3, out: 2)
        p.setFirstPositionFeature(1, meanFirstKey: [3, 4], x: x, rows: rows, sequenceLength: t)
        XCTAssertEqual(p.wDec[2], 3); XCTAssertEqual(p.wDec[3], 4)
        for r in 0..<rows {
            var pre = p.bEnc[1]
            for j in 0..<dIn { pre += p.encoderT[dIn + j] * x[r * dIn + j] }
            if r % t == 0 { XCTAssertEqual(pre, 1, accuracy: 0.5, "row \(r)") } else { XCTAssertLessThanOrEqual(pre, -0.9, "row \(r)") }
        }
        // Inputs that do not stand apart: the encoder is switched off.
        let noise = (0..<(rows * dIn)).map { _ in rng.normal() }
        var q = TranscoderParameters(zerosIn: dIn, hidden: 3, out: 2)
        q.setFirstPositionFeature(0, meanFirstKey: [0, 0], x: noise, rows: rows, sequenceLength: t)
        XCTAssertEqual(Array(q.encoderT[0..<dIn]), [Float](repeating: 0, count: dIn))
        XCTAssertEqual(q.bEnc[0], -1e4)
    }
}
