import XCTest
import QKTensor
@testable import QKTrain

/// The hand-written backward of the whole step-1 loss against central finite differences.
final class Step1GradientTests: XCTestCase {
    typealias Acts = (query: TranscoderActivation, key: TranscoderActivation)

    func check(geometry g: AttentionGeometry, acts: Acts, seed: UInt64, keyFirstPosition: Int? = nil,
               file: StaticString = #filePath, line: UInt = #line) {
        let dModel = 6, hidden = 12
        let batch = Step1TestSupport.randomBatch(sequences: 2, length: 5, dModel: dModel, geometry: g, seed: seed)
        let q = Step1TestSupport.randomParameters(dIn: dModel, hidden: hidden, out: g.qWidth, seed: seed + 1)
        let k = Step1TestSupport.randomParameters(dIn: dModel, hidden: hidden, out: g.kWidth, seed: seed + 2)
        var w = ObjectiveWeights(); w.alpha = 0.3; w.lambdaQ = 0.01; w.lambdaK = 0.02
        // A larger ε keeps the sqrt penalty's curvature within what float32 central differences resolve.
        w.epsilon = 0.05
        var gq = TranscoderParameters(zerosIn: dModel, hidden: hidden, out: g.qWidth)
        var gk = TranscoderParameters(zerosIn: dModel, hidden: hidden, out: g.kWidth)
        let base = Step1Objective.evaluate(query: q, key: k, activations: acts, batch: batch, geometry: g, weights: w,
                                           gradQ: &gq, gradK: &gk, keyFirstPosition: keyFirstPosition, threads: 2)
        XCTAssertGreaterThan(base.codesQ.nonZeros, 0, file: file, line: line)
        func loss(_ q: TranscoderParameters, _ k: TranscoderParameters) -> (Double, [Int32], [Int32]) {
            let r = Step1Objective.evaluate(query: q, key: k, activations: acts, batch: batch, geometry: g, weights: w,
                                            gradQ: nil, gradK: nil, keyFirstPosition: keyFirstPosition, threads: 1)
            return (r.total, r.codesQ.indices, r.codesK.indices)
        }
        let h: Float = 1e-2
        var checked = 0, worst = 0.0
        let paths: [(String, WritableKeyPath<TranscoderParameters, [Float]>)] =
            [("encoderT", \.encoderT), ("bEnc", \.bEnc), ("wDec", \.wDec), ("bDec", \.bDec)]
        for side in 0..<2 {
            for (name, path) in paths {
                let count = (side == 0 ? q : k)[keyPath: path].count
                var indices = Array(stride(from: 0, to: count, by: max(1, count / 17)))
                if side == 1, let f = keyFirstPosition {
                    // Every weight of the first-position feature: decoder row learned, encoder unused.
                    let width = count / hidden
                    indices += name == "bDec" ? [] : Array((f * width)..<((f + 1) * width))
                }
                for idx in indices {
                    var qp = q, kp = k, qm = q, km = k
                    if side == 0 { qp[keyPath: path][idx] += h; qm[keyPath: path][idx] -= h }
                    else { kp[keyPath: path][idx] += h; km[keyPath: path][idx] -= h }
                    let (lp, ap, bp) = loss(qp, kp), (lm, am, bm) = loss(qm, km)
                    // Skip entries whose nudge flips a feature on or off (the loss has a kink there).
                    guard ap == base.codesQ.indices, am == base.codesQ.indices, bp == base.codesK.indices, bm == base.codesK.indices else { continue }
                    let numeric = (lp - lm) / Double(2 * h)
                    let analytic = Double((side == 0 ? gq : gk)[keyPath: path][idx])
                    let err = abs(numeric - analytic) / max(1e-2, abs(numeric) + abs(analytic))
                    worst = max(worst, err)
                    XCTAssertLessThan(err, 3e-2, "\(side == 0 ? "query" : "key").\(name)[\(idx)]: numeric \(numeric) analytic \(analytic)", file: file, line: line)
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 40, file: file, line: line)
    }

    func testCausalRoPEGroupedQueryReLU() {
        check(geometry: AttentionGeometry(nHead: 4, nKVHead: 2, dHead: 4, causal: true, ropeTheta: 100), acts: (.relu, .relu), seed: 11)
    }

    func testBidirectionalReLU() {
        check(geometry: AttentionGeometry(nHead: 2, nKVHead: 2, dHead: 4, causal: false), acts: (.relu, .relu), seed: 21)
    }

    func testFirstPositionKeyFeature() {
        check(geometry: AttentionGeometry(nHead: 2, nKVHead: 2, dHead: 4, causal: false), acts: (.relu, .relu), seed: 41,
              keyFirstPosition: 3)
        check(geometry: AttentionGeometry(nHead: 4, nKVHead: 2, dHead: 4, causal: true, ropeTheta: 100), acts: (.relu, .topK(4)),
              seed: 51, keyFirstPosition: 0)
    }

    func testCausalTopK() {
        check(geometry: AttentionGeometry(nHead: 2, nKVHead: 1, dHead: 4, causal: true), acts: (.topK(3), .topK(4)), seed: 31)
    }
}
