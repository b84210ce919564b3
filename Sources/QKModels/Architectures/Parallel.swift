import Foundation

/// Splits row-wise work across the machine's cores. BLAS parallelises the big products
/// itself; this covers everything between them (norms, activations, gathers, attention
/// heads), which would otherwise run on one core while the other idles.
enum Parallel {
    static let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Calls `body` on disjoint, contiguous ranges covering `0..<count`. Small jobs run inline:
    /// waking threads costs more than a few thousand elements of work.
    static func forRanges(_ count: Int, minimumPerChunk: Int = 64, _ body: (Range<Int>) -> Void) {
        let chunks = min(cores, max(1, count / max(1, minimumPerChunk)))
        if chunks <= 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }
}
