/// The (query feature, key feature) pairs that ever co-fire in the training data: i active at a
/// query position p and j at a key position s that p may attend to (s ≤ p on causal models, any
/// s on BERT) in the same sequence.
///
/// Only these pairs ever receive gradient from the KL term; every other mask entry would only
/// decay under the sparsity penalty until it is pruned, so step 2 drops them up front and never
/// holds a dense d_Q × d_K × n_head table. Pairs are stored sorted by (query, key) as CSR over
/// query features. Mask entries (one per pair and head) are ordered by (query feature, head, key
/// feature) — see `entry(pair:head:heads:)` — so that per query feature and head they run in the
/// same order as the key columns of the kernels' dense blocks, and the optimiser's sweep over
/// the entries walks those blocks front to back.
public struct CooccurrenceIndex: Sendable {
    public let queryWidth: Int
    public let keyWidth: Int
    /// `pairStart[i]..<pairStart[i+1]` are the pairs of query feature i.
    public let pairStart: [Int]
    /// Key feature of each pair (ascending within a query feature).
    public let pairKey: [Int32]
    /// Query feature of each pair (so per-pair loops need no search).
    public let pairQuery: [Int32]
    /// Features that fire at least once in the data the index was built from.
    public let liveQuery: Int
    public let liveKey: Int

    public var pairCount: Int { pairKey.count }

    /// Builds the index in one pass over the sequences. Membership is a bitmap over d_Q × d_K
    /// (a few hundred KB for 1536², 32 MB for 16k²), so each co-firing pair costs one bit test.
    public init(sequences: [PairMapSequence], queryWidth: Int, keyWidth: Int, causal: Bool) {
        self.queryWidth = queryWidth; self.keyWidth = keyWidth
        let cells = queryWidth * keyWidth
        var bits = [UInt64](repeating: 0, count: (cells + 63) / 64)
        var lastQuery = [Int](repeating: -1, count: queryWidth)   // last position i fires at
        var firstKey = [Int](repeating: -1, count: keyWidth)      // first position j fires at
        var everQuery = [Bool](repeating: false, count: queryWidth)
        var everKey = [Bool](repeating: false, count: keyWidth)
        var seenQ = [Int](), seenK = [Int]()
        for seq in sequences {
            seenQ.removeAll(keepingCapacity: true); seenK.removeAll(keepingCapacity: true)
            for p in 0..<seq.length {
                for e in seq.query.rowStart[p]..<seq.query.rowStart[p + 1] {
                    let i = Int(seq.query.indices[e])
                    if lastQuery[i] < 0 { seenQ.append(i) }
                    lastQuery[i] = p
                }
                for e in seq.key.rowStart[p]..<seq.key.rowStart[p + 1] {
                    let j = Int(seq.key.indices[e])
                    if firstKey[j] < 0 { seenK.append(j); firstKey[j] = p }
                }
            }
            // i at its last position sees every key that fired at or before it.
            for i in seenQ {
                everQuery[i] = true
                let row = i * keyWidth
                for j in seenK where !causal || firstKey[j] <= lastQuery[i] {
                    bits[(row + j) >> 6] |= 1 << UInt64((row + j) & 63)
                }
            }
            for i in seenQ { lastQuery[i] = -1 }
            for j in seenK { everKey[j] = true; firstKey[j] = -1 }
        }
        var start = [Int](repeating: 0, count: queryWidth + 1)
        var keys = [Int32](), queries = [Int32]()
        for i in 0..<queryWidth {
            let row = i * keyWidth
            var j = 0
            while j < keyWidth {
                let cell = row + j
                let word = bits[cell >> 6] >> UInt64(cell & 63)
                if word == 0 { j += 64 - (cell & 63); continue }   // skip the rest of an empty word
                let skip = word.trailingZeroBitCount
                j += skip
                if j >= keyWidth { break }
                keys.append(Int32(j)); queries.append(Int32(i))
                j += 1
            }
            start[i + 1] = keys.count
        }
        pairStart = start; pairKey = keys; pairQuery = queries
        liveQuery = everQuery.filter { $0 }.count
        liveKey = everKey.filter { $0 }.count
    }

    /// The mask entry of `pair` on `head`: entries of query feature i start at
    /// `pairStart[i] · heads`, one run of its pairs per head.
    @inline(__always)
    public func entry(pair: Int, head: Int, heads: Int) -> Int {
        let i = Int(pairQuery[pair])
        let start = pairStart[i]
        return start * heads + head * (pairStart[i + 1] - start) + (pair - start)
    }

    /// The pair index of (i, j), or nil if they never co-fire.
    public func pair(query i: Int, key j: Int) -> Int? {
        guard i >= 0, i < queryWidth else { return nil }
        var lo = pairStart[i], hi = pairStart[i + 1]
        while lo < hi {
            let mid = (lo + hi) / 2
            let k = Int(pairKey[mid])
            if k == j { return mid }
            if k < j { lo = mid + 1 } else { hi = mid }
        }
        return nil
    }
}
