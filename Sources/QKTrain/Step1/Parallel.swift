import Dispatch

/// Splits `0..<count` into `ways` contiguous ranges and runs them concurrently. The trainer does
/// its own threading (one range per core) and keeps OpenBLAS single-threaded while it does, so
/// BLAS calls made inside a range never oversubscribe the two cores.
enum Parallel {
    static func ranges(_ count: Int, ways: Int) -> [Range<Int>] {
        let w = max(1, min(ways, count))
        return (0..<w).map { t in (count * t / w)..<(count * (t + 1) / w) }
    }

    static func forEachRange(_ count: Int, ways: Int, _ body: (Int, Range<Int>) -> Void) {
        let rs = ranges(count, ways: ways)
        if rs.count <= 1 { if let r = rs.first { body(0, r) }; return }
        DispatchQueue.concurrentPerform(iterations: rs.count) { body($0, rs[$0]) }
    }

    /// Runs `body(t)` for t in 0..<ways concurrently (each thread owning a residue class, say).
    static func forEachThread(_ ways: Int, _ body: (Int) -> Void) {
        if ways <= 1 { body(0); return }
        DispatchQueue.concurrentPerform(iterations: ways, execute: body)
    }
}
