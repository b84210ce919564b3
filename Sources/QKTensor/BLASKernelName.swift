import CBLAS

extension BLAS {
    /// The kernel family OpenBLAS chose when it loaded (e.g. "Haswell", "SkylakeX"; the
    /// `OPENBLAS_CORETYPE` environment variable overrides its choice). Benchmarks print it,
    /// since it moves SGEMM speed by more than half on CPUs with AVX-512.
    public static var kernelName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }
}
