import Foundation
import QKTensor

/// Multi-head scaled dot-product attention for a batch of equal-length sequences.
///
/// Inputs are read in place from the projection outputs: position `t` of sequence `b` has its
/// query at `q + (b·T + t)·qStride`, head `h` at column offset `h·dHead` (likewise k, v with
/// key/value head `g(h)`). That lets GPT-2's fused `[rows, 3·d]` QKV buffer be used without
/// splitting it. Each (sequence, head) pair is one independent unit of work: two small GEMMs
/// (scores = q·kᵀ, z = P·v) plus a masked softmax, spread across cores with BLAS kept
/// single-threaded so the two levels of parallelism do not fight.
struct AttentionKernel {
    let batch: Int, length: Int, nHead: Int, nKVHead: Int, dHead: Int
    let causal: Bool
    /// Multiplies q·kᵀ before the softmax (1/sqrt(d_head), possibly divided further).
    let scale: Float

    /// Fills `pattern` (`[batch, nHead, T, T]`) and, when `z` is given, the attention output
    /// `z` (`[batch·T, nHead·dHead]`). With `replacement` (same shape as `pattern`), the
    /// softmax is skipped and that pattern is copied in and used instead (pattern patching).
    func run(q: UnsafePointer<Float>, qStride: Int,
             k: UnsafePointer<Float>, kStride: Int,
             v: UnsafePointer<Float>?, vStride: Int,
             pattern: UnsafeMutablePointer<Float>,
             replacement: UnsafePointer<Float>?,
             z: UnsafeMutablePointer<Float>?) {
        let T = length, group = nHead / nKVHead, dz = nHead * dHead
        let previousThreads = BLAS.threads
        if Parallel.cores > 1 { BLAS.setThreads(1) }
        defer { if Parallel.cores > 1 { BLAS.setThreads(previousThreads) } }
        Parallel.forRanges(batch * nHead, minimumPerChunk: 1) { units in
            for unit in units {
                let b = unit / nHead, h = unit % nHead, g = h / group
                let p = pattern + unit * T * T
                if let replacement {
                    p.update(from: replacement + unit * T * T, count: T * T)
                } else {
                    BLAS.gemm(transB: true, m: T, n: T, k: dHead, alpha: scale,
                              q + b * T * qStride + h * dHead, lda: qStride,
                              k + b * T * kStride + g * dHead, ldb: kStride,
                              beta: 0, p, ldc: T)
                    if causal { Ops.applyCausalMask(p, q: T, k: T) }
                    VectorMath.softmaxRows(p, rows: T, n: T)
                }
                if let z, let v {
                    BLAS.gemm(m: T, n: dHead, k: T, UnsafePointer(p), lda: T,
                              v + b * T * vStride + g * dHead, ldb: vStride,
                              beta: 0, z + b * T * dz + h * dHead, ldc: dz)
                }
            }
        }
    }
}

/// Copies `columns` consecutive columns starting at `from` out of each row of a `[rows, stride]`
/// buffer into a dense `[rows, columns]` tensor (q or k out of a fused QKV projection).
func copyColumns(_ src: UnsafePointer<Float>, rows: Int, stride: Int, from: Int, columns: Int) -> [Float] {
    var out = [Float](repeating: 0, count: rows * columns)
    out.withUnsafeMutableBufferPointer { o in
        let op = o.baseAddress!
        Parallel.forRanges(rows, minimumPerChunk: 512) { range in
            for r in range { (op + r * columns).update(from: src + r * stride + from, count: columns) }
        }
    }
    return out
}
