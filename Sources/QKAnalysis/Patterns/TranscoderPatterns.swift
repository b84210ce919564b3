import Foundation
import QKTensor
import QKModels
import QKTrain

/// Attention patterns rebuilt from the transcoders' reconstructions q̂ and k̂ (DESIGN §4):
/// P̂_h(p,·) = softmax_s <q̂_h(p), k̂_g(h)(s)> / sqrt(d_head), with RoPE applied to q̂ and k̂ on
/// RoPE models and the causal -inf mask on decoders.
public enum TranscoderPatterns {
    /// `[batch, n_head, t, t]` for a captured batch (uses its attention input only).
    public static func reconstruct(_ capture: LayerCapture, query: Transcoder, key: Transcoder, config: ModelConfig) -> Tensor {
        let b = capture.attnIn.shape[0], t = capture.attnIn.shape[1], d = capture.attnIn.shape[2]
        let x = capture.attnIn.reshaped([b * t, d])
        let qHat = query.decode(query.encode(x, sequenceLength: t))
        let kHat = key.decode(key.encode(x, sequenceLength: t))
        return patterns(q: qHat, k: kHat, batch: b, length: t, config: config)
    }

    /// Patterns from q `[b·t, n_head·d_head]` and k `[b·t, n_kv_head·d_head]` (pre-RoPE).
    public static func patterns(q: Tensor, k: Tensor, batch b: Int, length t: Int, config c: ModelConfig) -> Tensor {
        var q = q, k = k
        let dh = c.dHead
        if let theta = c.ropeTheta {
            let rope = RoPE(dHead: dh, theta: theta)
            let tables = rope.tables(positions: t)
            q.data.withUnsafeMutableBufferPointer { p in
                for s in 0..<b { rope.apply(p.baseAddress! + s * t * c.nHead * dh, positions: t, heads: c.nHead, tables: tables) }
            }
            k.data.withUnsafeMutableBufferPointer { p in
                for s in 0..<b { rope.apply(p.baseAddress! + s * t * c.nKVHead * dh, positions: t, heads: c.nKVHead, tables: tables) }
            }
        }
        var out = Tensor(zeros: [b, c.nHead, t, t])
        let scale = 1 / Float(dh).squareRoot()
        let qw = c.nHead * dh, kw = c.nKVHead * dh
        q.data.withUnsafeBufferPointer { qp in
            k.data.withUnsafeBufferPointer { kp in
                out.data.withUnsafeMutableBufferPointer { op in
                    for s in 0..<b {
                        for h in 0..<c.nHead {
                            let g = c.kvHead(of: h)
                            let dst = op.baseAddress! + (s * c.nHead + h) * t * t
                            // scores[t, t] = q_h [t, dh] (row stride qw) · k_g^T
                            BLAS.gemm(transB: true, m: t, n: t, k: dh, alpha: scale,
                                      qp.baseAddress! + s * t * qw + h * dh, lda: qw,
                                      kp.baseAddress! + s * t * kw + g * dh, ldb: kw, dst)
                            if c.architecture.isCausal { Ops.applyCausalMask(dst, q: t, k: t) }
                            Ops.softmaxRows(dst, rows: t, n: t)
                        }
                    }
                }
            }
        }
        return out
    }
}
