import Foundation

/// Adam (Kingma & Ba) over one transcoder's parameters, with bias correction. Dense: every
/// parameter's moments decay every step, as PyTorch's Adam does, so runs compare like for like.
public struct AdamState: Sendable, Equatable {
    public var m: TranscoderParameters
    public var v: TranscoderParameters
    public var beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8

    public init(like p: TranscoderParameters) {
        m = TranscoderParameters(zerosIn: p.dIn, hidden: p.dHidden, out: p.dOut); v = m
    }

    /// One update at step `step` (1-based) with learning rate `lr`.
    public mutating func update(_ p: inout TranscoderParameters, gradient g: TranscoderParameters, lr: Float, step: Int) {
        update(&p, gradient: g, lr: lr, step: step, encoder: true)
    }

    /// One update of the decoder (W_dec, b_dec) alone; the encoder and its moments stay as they are.
    public mutating func updateDecoder(_ p: inout TranscoderParameters, gradient g: TranscoderParameters, lr: Float, step: Int) {
        update(&p, gradient: g, lr: lr, step: step, encoder: false)
    }

    private mutating func update(_ p: inout TranscoderParameters, gradient g: TranscoderParameters, lr: Float, step: Int, encoder: Bool) {
        let b1 = beta1, b2 = beta2, eps = epsilon
        let c1 = 1 - Float(pow(Double(b1), Double(step))), c2 = 1 - Float(pow(Double(b2), Double(step)))
        let stepSize = lr / c1, invC2 = 1 / c2
        func apply(_ w: inout [Float], _ m: inout [Float], _ v: inout [Float], _ g: [Float]) {
            let n = w.count
            w.withUnsafeMutableBufferPointer { w in m.withUnsafeMutableBufferPointer { m in
            v.withUnsafeMutableBufferPointer { v in g.withUnsafeBufferPointer { g in
                for i in 0..<n {
                    let gi = g[i]
                    let mi = b1 * m[i] + (1 - b1) * gi
                    let vi = b2 * v[i] + (1 - b2) * gi * gi
                    m[i] = mi; v[i] = vi
                    w[i] -= stepSize * mi / ((vi * invC2).squareRoot() + eps)
                }
            }}}}
        }
        if encoder {
            apply(&p.encoderT, &m.encoderT, &v.encoderT, g.encoderT)
            apply(&p.bEnc, &m.bEnc, &v.bEnc, g.bEnc)
        }
        apply(&p.wDec, &m.wDec, &v.wDec, g.wDec)
        apply(&p.bDec, &m.bDec, &v.bDec, g.bDec)
    }

    /// Forgets the moments of the given features (after resampling them), so stale momentum does
    /// not drag a fresh feature back where the dead one was.
    public mutating func reset(features: [Int]) {
        let d = m.dIn, o = m.dOut
        for i in features {
            for j in 0..<d { m.encoderT[i * d + j] = 0; v.encoderT[i * d + j] = 0 }
            for j in 0..<o { m.wDec[i * o + j] = 0; v.wDec[i * o + j] = 0 }
            m.bEnc[i] = 0; v.bEnc[i] = 0
        }
    }
}
