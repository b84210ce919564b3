import QKTensor
/// A set of equal-length token sequences (`[count, context]`, flattened), with the
/// deterministic split, shuffle and batching the harvester and trainers share.
public struct SequenceSet: Sendable, Equatable {
    public private(set) var ids: [Int32]
    public let context: Int
    public var count: Int { context == 0 ? 0 : ids.count / context }

    public init(ids: [Int32], context: Int) {
        self.ids = ids; self.context = context
    }

    public func sequence(_ i: Int) -> ArraySlice<Int32> { ids[(i * context)..<((i + 1) * context)] }

    /// The first `n` sequences.
    public func prefix(_ n: Int) -> SequenceSet {
        SequenceSet(ids: Array(ids.prefix(max(0, n) * context)), context: context)
    }

    /// Sequences by index, in the given order.
    public func subset(_ indices: some Sequence<Int>) -> SequenceSet {
        var out: [Int32] = []
        for i in indices { out += sequence(i) }
        return SequenceSet(ids: out, context: context)
    }

    /// Training and held-out parts: the held-out part is the last `fraction` of the
    /// sequences in corpus order (at least one when there are two or more), taken before
    /// any shuffling, so it never changes with the seed and never overlaps training.
    /// Sequences cut from one document may straddle the boundary; no text is in both.
    public func split(heldOutFraction fraction: Double = 0.05) -> (train: SequenceSet, heldOut: SequenceSet) {
        let n = count
        var held = Int((Double(n) * fraction).rounded(.up))
        if n >= 2 { held = min(max(held, 1), n - 1) } else { held = 0 }
        return (prefix(n - held), subset((n - held)..<n))
    }

    /// The same sequences in a seeded random order (Fisher–Yates with SplitMix64, so the
    /// order is identical on every platform and Swift version).
    public func shuffled(seed: UInt64) -> SequenceSet {
        var order = Array(0..<count)
        var rng = SplitMix64(seed: seed)
        if order.count > 1 {
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        return subset(order)
    }

    /// Consecutive batches of up to `size` sequences (the last may be smaller).
    public func batches(size: Int) -> TokenBatches { TokenBatches(set: self, size: max(1, size)) }
}

/// An iterator of `TokenBatch` over a `SequenceSet`: what the harvester and the trainer's
/// on-the-fly harvesting consume.
public struct TokenBatches: Sequence, IteratorProtocol, Sendable {
    let set: SequenceSet
    let size: Int
    private var position = 0

    init(set: SequenceSet, size: Int) { self.set = set; self.size = size }

    /// Number of batches in all.
    public var batchCount: Int { (set.count + size - 1) / size }

    public mutating func next() -> TokenBatch? {
        guard position < set.count else { return nil }
        let n = Swift.min(size, set.count - position)
        let ids = Array(set.ids[(position * set.context)..<((position + n) * set.context)])
        position += n
        return TokenBatch(ids: ids, batch: n, length: set.context)
    }
}

