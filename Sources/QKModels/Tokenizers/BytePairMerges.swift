/// The merge table of a BPE vocabulary and the merge loop that applies it to one word.
///
/// BPE starts from one symbol per byte and repeatedly fuses the adjacent pair whose merge was
/// learned earliest (lowest rank); among equal ranks the leftmost goes first. A binary heap of
/// candidate pairs keyed by (rank, position) makes that O(n log n) per word, so a pathological
/// 100k-character "word" (a run of spaces, a base64 blob) costs milliseconds, not minutes.
struct BytePairMerges: Sendable {
    /// (left id, right id) packed into 64 bits → (rank, merged id) packed the same way.
    private var table: [UInt64: UInt64] = [:]

    var count: Int { table.count }

    @inline(__always)
    private static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    /// Adds a merge learned at `rank`. A pair already present keeps its earlier (lower) rank.
    mutating func add(left: Int32, right: Int32, merged: Int32, rank: Int) {
        let k = Self.key(left, right)
        if table[k] == nil { table[k] = UInt64(UInt32(rank)) << 32 | UInt64(UInt32(bitPattern: merged)) }
    }

    @inline(__always)
    private func lookup(_ a: Int32, _ b: Int32) -> (rank: UInt32, merged: Int32)? {
        guard let v = table[Self.key(a, b)] else { return nil }
        return (UInt32(truncatingIfNeeded: v >> 32), Int32(bitPattern: UInt32(truncatingIfNeeded: v)))
    }

    /// Merges the symbols of one word in place.
    func apply(_ symbols: inout [Int32]) {
        let n = symbols.count
        if n < 2 { return }
        if n == 2 {
            if let m = lookup(symbols[0], symbols[1]) { symbols = [m.merged] }
            return
        }
        // Doubly linked list over positions; a merged-away position is marked dead.
        var prev = [Int](0..<n).map { $0 - 1 }
        var next = [Int](0..<n).map { $0 + 1 }
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        for i in 0..<(n - 1) {
            if let m = lookup(symbols[i], symbols[i + 1]) { heap.push(UInt64(m.rank) << 32 | UInt64(i)) }
        }
        while let top = heap.pop() {
            let rank = UInt32(truncatingIfNeeded: top >> 32)
            let i = Int(UInt32(truncatingIfNeeded: top))
            guard alive[i] else { continue }
            let j = next[i]
            guard j < n, let m = lookup(symbols[i], symbols[j]), m.rank == rank else { continue }
            // Fuse j into i.
            symbols[i] = m.merged
            alive[j] = false
            let after = next[j]
            next[i] = after
            if after < n { prev[after] = i }
            let before = prev[i]
            if before >= 0, let p = lookup(symbols[before], symbols[i]) {
                heap.push(UInt64(p.rank) << 32 | UInt64(before))
            }
            if after < n, let p = lookup(symbols[i], symbols[after]) {
                heap.push(UInt64(p.rank) << 32 | UInt64(i))
            }
        }
        var out: [Int32] = []
        out.reserveCapacity(n)
        var i = 0
        while i < n { out.append(symbols[i]); i = next[i] }
        symbols = out
    }
}

/// A minimal binary min-heap of packed (rank, position) keys.
private struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ x: UInt64) {
        items.append(x)
        var c = items.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            if items[p] <= items[c] { break }
            items.swapAt(p, c)
            c = p
        }
    }

    mutating func pop() -> UInt64? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var p = 0
            let n = items.count
            while true {
                let l = 2 * p + 1, r = l + 1
                var m = p
                if l < n && items[l] < items[m] { m = l }
                if r < n && items[r] < items[m] { m = r }
                if m == p { break }
                items.swapAt(p, m)
                p = m
            }
        }
        return first
    }
}
