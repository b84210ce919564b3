import CBLAS

/// Thin, named wrappers over OpenBLAS' row-major CBLAS. Everything dense in qkdb goes through here.
public enum BLAS {
    /// Sets OpenBLAS' thread count (defaults to all cores).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// C[m×n] = alpha · op(A) · op(B) + beta · C, all row-major.
    /// `op(A)` is `[m, k]` (A stored `[k, m]` when `transA`), `op(B)` is `[k, n]` (B stored `[n, k]` when `transB`).
    @inlinable
    public static func gemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        _ a: UnsafePointer<Float>, lda: Int? = nil,
        _ b: UnsafePointer<Float>, ldb: Int? = nil,
        beta: Float = 0,
        _ c: UnsafeMutablePointer<Float>, ldc: Int? = nil
    ) {
        if m == 0 || n == 0 { return }
        let lda = lda ?? (transA ? m : k)
        let ldb = ldb ?? (transB ? k : n)
        let ldc = ldc ?? n
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y = alpha · op(A) x + beta · y with A row-major `[m, n]`.
    @inlinable
    public static func gemv(trans: Bool = false, m: Int, n: Int, alpha: Float = 1,
                            _ a: UnsafePointer<Float>, lda: Int? = nil,
                            _ x: UnsafePointer<Float>, beta: Float = 0, _ y: UnsafeMutablePointer<Float>) {
        cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), alpha, a,
                    Int32(lda ?? n), x, 1, beta, y, 1)
    }

    /// y += alpha · x
    @inlinable
    public static func axpy(_ n: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(Int32(n), alpha, x, 1, y, 1)
    }

    @inlinable
    public static func dot(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
        cblas_sdot(Int32(n), x, 1, y, 1)
    }
}

extension Tensor {
    /// Matrix product of the last axis of `self` ([..., k]) with `w` ([k, n]) → [..., n].
    /// With `transposeW`, `w` is stored `[n, k]` (a PyTorch `nn.Linear` weight).
    public func matmul(_ w: Tensor, transposeW: Bool = false, bias: Tensor? = nil) -> Tensor {
        let k = shape.last!
        let rows = count / max(k, 1)
        precondition(w.rank == 2, "matmul weight must be 2-D")
        let n = transposeW ? w.shape[0] : w.shape[1]
        precondition((transposeW ? w.shape[1] : w.shape[0]) == k, "matmul: \(shape) × \(w.shape)")
        var outShape = shape; outShape[outShape.count - 1] = n
        var out = Tensor(zeros: outShape)
        if let bias {
            precondition(bias.count == n)
            out.data.withUnsafeMutableBufferPointer { o in
                bias.data.withUnsafeBufferPointer { b in
                    for r in 0..<rows { (o.baseAddress! + r * n).update(from: b.baseAddress!, count: n) }
                }
            }
        }
        data.withUnsafeBufferPointer { a in
            w.data.withUnsafeBufferPointer { b in
                out.data.withUnsafeMutableBufferPointer { c in
                    BLAS.gemm(transB: transposeW, m: rows, n: n, k: k, a.baseAddress!, b.baseAddress!,
                              beta: bias == nil ? 0 : 1, c.baseAddress!)
                }
            }
        }
        return out
    }
}
