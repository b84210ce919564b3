import Foundation
import XCTest
import QKTensor
@testable import QKTrain

/// Small random step-1 problems for the gradient tests.
enum Step1TestSupport {
    static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// True pattern from true q, k (RoPE, GQA and causal masking as the geometry says).
    static func pattern(q: [Float], k: [Float], sequences b: Int, length t: Int, geometry g: AttentionGeometry) -> [Float] {
        var out = [Float](repeating: 0, count: b * g.nHead * t * t)
        let rope = g.ropeTheta.map { RoPE(dHead: g.dHead, theta: $0) }
        for s in 0..<b {
            var qs = Array(q[(s * t * g.qWidth)..<((s + 1) * t * g.qWidth)])
            var ks = Array(k[(s * t * g.kWidth)..<((s + 1) * t * g.kWidth)])
            if let rope {
                qs.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, positions: t, heads: g.nHead) }
                ks.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, positions: t, heads: g.nKVHead) }
            }
            for h in 0..<g.nHead {
                let kv = g.kvHead(of: h)
                var sc = [Float](repeating: 0, count: t * t)
                for i in 0..<t { for j in 0..<t {
                    var d: Float = 0
                    for c in 0..<g.dHead { d += qs[i * g.qWidth + h * g.dHead + c] * ks[j * g.kWidth + kv * g.dHead + c] }
                    sc[i * t + j] = (g.causal && j > i) ? -Float.infinity : d / Float(g.dHead).squareRoot()
                } }
                sc.withUnsafeMutableBufferPointer { Ops.softmaxRows($0.baseAddress!, rows: t, n: t) }
                for i in 0..<(t * t) { out[(s * g.nHead + h) * t * t + i] = sc[i] }
            }
        }
        return out
    }

    static func randomArray(_ n: Int, scale: Float, rng: inout TrainingRandom) -> [Float] { (0..<n).map { _ in rng.normal() * scale } }

    /// A batch whose q, k are a noisy linear map of x (so transcoders have something to fit).
    static func randomBatch(sequences b: Int, length t: Int, dModel: Int, geometry g: AttentionGeometry, seed: UInt64) -> TrainingBatch {
        var rng = TrainingRandom(seed: seed)
        let x = randomArray(b * t * dModel, scale: 1, rng: &rng)
        let wq = randomArray(dModel * g.qWidth, scale: 0.6, rng: &rng), wk = randomArray(dModel * g.kWidth, scale: 0.6, rng: &rng)
        var q = [Float](repeating: 0, count: b * t * g.qWidth), k = [Float](repeating: 0, count: b * t * g.kWidth)
        for r in 0..<(b * t) {
            for c in 0..<g.qWidth { var s: Float = 0; for j in 0..<dModel { s += x[r * dModel + j] * wq[j * g.qWidth + c] }; q[r * g.qWidth + c] = s }
            for c in 0..<g.kWidth { var s: Float = 0; for j in 0..<dModel { s += x[r * dModel + j] * wk[j * g.kWidth + c] }; k[r * g.kWidth + c] = s }
        }
        let p = pattern(q: q, k: k, sequences: b, length: t, geometry: g)
        return TrainingBatch(x: x, q: q, k: k, pattern: p, sequences: b, length: t, dModel: dModel)
    }

    static func randomParameters(dIn: Int, hidden: Int, out: Int, seed: UInt64) -> TranscoderParameters {
        var rng = TrainingRandom(seed: seed)
        var p = TranscoderParameters(zerosIn: dIn, hidden: hidden, out: out)
        p.encoderT = randomArray(hidden * dIn, scale: 0.5, rng: &rng)
        p.bEnc = randomArray(hidden, scale: 0.3, rng: &rng)
        p.wDec = randomArray(hidden * out, scale: 0.5, rng: &rng)
        p.bDec = randomArray(out, scale: 0.2, rng: &rng)
        return p
    }
}
