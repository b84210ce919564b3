/// Turns a COO pair map (any order) into the chunk records of both orderings.
/// Validation happens first, entirely in memory, so a bad map is rejected before anything is
/// written and never leaves a half-made store behind.
struct PairMapBuilder {
    let coo: PairCOO
    let shape: PairMapShape
    let options: PairMapOptions

    /// The ordered float columns (indexed like `PairColumn.allCases`) after the codec's rounding,
    /// and the largest absolute error the rounding introduced per column.
    private(set) var columns: [[Float]?] = []
    private(set) var extra: [[Float]] = []
    private(set) var maxAbsError: [String: Double] = [:]

    init(coo: PairCOO, shape: PairMapShape, options: PairMapOptions) throws {
        self.coo = coo; self.shape = shape; self.options = options
        try validate()
        let codec = options.codec
        func rounded(_ values: [Float], name: String) throws -> [Float] {
            guard codec != .f32 else { return values }
            var worst = 0.0
            let out = try values.enumerated().map { (i, x) -> Float in
                let y = codec.decode16(codec.encode16(x))
                // fp16 tops out at 65504: a larger value would be stored as inf, with no error to show.
                guard y.isFinite else {
                    throw StoreError("pair map column \(name) entry \(i) is \(x), beyond the range of \(codec.rawValue) (use --values bf16 or f32)")
                }
                worst = max(worst, Double(abs(y - x)))
                return y
            }
            maxAbsError[name] = worst
            return out
        }
        for c in PairColumn.allCases {
            if let values = coo.columns[c] {
                columns.append(try rounded(values, name: c.rawValue))
                if codec == .f32 { maxAbsError[c.rawValue] = 0 }
            } else {
                columns.append(nil)
            }
        }
        for (name, values) in coo.extra {
            extra.append(try rounded(values, name: name))
            if codec == .f32 { maxAbsError[name] = 0 }
        }
    }

    private func validate() throws {
        let n = coo.count
        guard shape.nHead > 0, shape.nHead < (1 << 21), shape.dQuery >= 0, shape.dQuery < (1 << 21), shape.dKey >= 0, shape.dKey < (1 << 21) else {
            throw StoreError("pair map shape [d_query \(shape.dQuery), d_key \(shape.dKey), n_head \(shape.nHead)] is out of range (each at most 2097151, n_head at least 1)")
        }
        guard options.chunkNNZ > 0, options.keyChunkNNZ > 0 else { throw StoreError("chunk sizes must be positive, got \(options.chunkNNZ) and \(options.keyChunkNNZ)") }
        guard coo.queryFeature.count == n, coo.keyFeature.count == n else {
            throw StoreError("pair map arrays disagree in length: head \(n), query_feature \(coo.queryFeature.count), key_feature \(coo.keyFeature.count)")
        }
        guard coo.columns[.value] != nil else { throw StoreError("pair map has no value column") }
        for (c, values) in coo.columns {
            guard values.count == n else { throw StoreError("pair map column \(c.rawValue) has \(values.count) entries, expected \(n)") }
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw StoreError("pair map column \(c.rawValue) entry \(bad) is \(values[bad]) (values must be finite)")
            }
        }
        var seen = Set<String>(PairColumn.allCases.map(\.rawValue))
        for (name, values) in coo.extra {
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), name.first?.isNumber == false else {
                throw StoreError("extra pair column name '\(name)' must be letters, digits and underscores")
            }
            guard seen.insert(name).inserted else { throw StoreError("extra pair column '\(name)' is given twice") }
            guard values.count == n else { throw StoreError("pair map column \(name) has \(values.count) entries, expected \(n)") }
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw StoreError("pair map column \(name) entry \(bad) is \(values[bad]) (values must be finite)")
            }
        }
        for i in 0..<n {
            let h = coo.head[i], q = coo.queryFeature[i], k = coo.keyFeature[i]
            if h < 0 || Int(h) >= shape.nHead { throw StoreError("pair map entry \(i): head \(h) is out of range (n_head \(shape.nHead))") }
            if q < 0 || Int(q) >= shape.dQuery { throw StoreError("pair map entry \(i): query feature \(q) is out of range (d_query \(shape.dQuery))") }
            if k < 0 || Int(k) >= shape.dKey { throw StoreError("pair map entry \(i): key feature \(k) is out of range (d_key \(shape.dKey))") }
        }
    }

    /// The entry order of one ordering: sorted by (head, lead, trail).
    /// Two stable counting-sort passes (by trail, then by head × lead) when the bucket array is
    /// small enough, which is linear in the number of pairs; a comparison sort otherwise.
    func permutation(_ side: FeatureSide) -> [Int32] {
        let n = coo.count
        let lead = side == .query ? coo.queryFeature : coo.keyFeature
        let trail = side == .query ? coo.keyFeature : coo.queryFeature
        let dLead = shape.extent(side), dTrail = shape.extent(side.other)
        if shape.nHead * dLead <= 1 << 24 && dTrail <= 1 << 24 {
            let byTrail = countingSort(Array(0..<Int32(n)), buckets: dTrail) { Int(trail[Int($0)]) }
            return countingSort(byTrail, buckets: shape.nHead * dLead) { Int(coo.head[Int($0)]) * dLead + Int(lead[Int($0)]) }
        }
        let keys = (0..<n).map { i in (UInt64(coo.head[i]) << 42) | (UInt64(lead[i]) << 21) | UInt64(trail[i]) }
        return (0..<Int32(n)).sorted { keys[Int($0)] < keys[Int($1)] }
    }

    private func countingSort(_ order: [Int32], buckets: Int, key: (Int32) -> Int) -> [Int32] {
        var starts = [Int](repeating: 0, count: buckets + 1)
        for i in order { starts[key(i) + 1] += 1 }
        for b in 0..<buckets { starts[b + 1] += starts[b] }
        var out = [Int32](repeating: 0, count: order.count)
        for i in order { let b = key(i); out[starts[b]] = i; starts[b] += 1 }
        return out
    }

    /// Rejects a map that gives the same (head, query, key) twice, naming both entries.
    func checkNoDuplicates(queryMajor perm: [Int32]) throws {
        for p in 1..<max(perm.count, 1) {
            let a = Int(perm[p - 1]), b = Int(perm[p])
            if coo.head[a] == coo.head[b] && coo.queryFeature[a] == coo.queryFeature[b] && coo.keyFeature[a] == coo.keyFeature[b] {
                throw StoreError("pair map has a duplicate coordinate (head \(coo.head[a]), query feature \(coo.queryFeature[a]), key feature \(coo.keyFeature[a])) at entries \(min(a, b)) and \(max(a, b))")
            }
        }
    }

    /// The chunk records of one ordering. Chunks never cross heads and, where a row fits, never
    /// split a row, so a single-feature query usually decodes one chunk per head.
    func chunks(_ side: FeatureSide, perm: [Int32], zstd: Zstd, emit: (PairChunkRecord) throws -> Void) throws {
        let n = perm.count
        guard n > 0 else { return }
        let leadAll = side == .query ? coo.queryFeature : coo.keyFeature
        let trailAll = side == .query ? coo.keyFeature : coo.queryFeature
        var heads = [Int32](repeating: 0, count: n), leads = heads, trails = heads
        for (k, i) in perm.enumerated() { heads[k] = coo.head[Int(i)]; leads[k] = leadAll[Int(i)]; trails[k] = trailAll[Int(i)] }
        // Query-major holds every column; key-major only its ranking column(s).
        let present = PairColumn.allCases.enumerated().filter { columns[$0.offset] != nil }.map(\.element)
        let keep = side == .query ? Set(present) : Set(PairMapInfo.keyColumns(for: present))
        var stored: [[Float]] = zip(PairColumn.allCases, columns).compactMap { (c, col) in
            keep.contains(c) ? col.map { values in perm.map { values[Int($0)] } } : nil
        }
        if side == .query { stored += extra.map { c in perm.map { c[Int($0)] } } }
        // Key-major floats are only a ranking key: bf16 keeps their order (rounding is monotonic).
        let encoder = PairChunkEncoder(zstd: zstd, codec: side == .query ? options.codec : .bf16)
        let target = side == .query ? options.chunkNNZ : options.keyChunkNNZ
        var seq = 0
        try leads.withUnsafeBufferPointer { leadBuf in
            try trails.withUnsafeBufferPointer { trailBuf in
                var start = 0
                while start < n {
                    // Grow the chunk row by row while it fits; split only a row longer than a chunk.
                    let head = heads[start]
                    var end = start
                    while end < n && heads[end] == head {
                        var rowEnd = end + 1
                        while rowEnd < n && heads[rowEnd] == head && leads[rowEnd] == leads[end] { rowEnd += 1 }
                        if rowEnd - start <= target { end = rowEnd; continue }
                        if end == start { end = start + target }
                        break
                    }
                    try emit(encoder.encode(ordering: side.ordering, seq: seq, head: Int(head), leads: leadBuf, trails: trailBuf,
                                            range: start..<end, columns: stored))
                    seq += 1
                    start = end
                }
            }
        }
    }
}
