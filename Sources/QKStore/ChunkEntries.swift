/// One chunk opened to answer point lookups: a key-feature query wants one or two pairs out of
/// each query-major chunk it touches, so this decompresses the chunk's blobs once but turns only
/// the rows and entries it is asked about into features and floats (byte-shuffled arrays can be
/// read one element at a time: element `n` of width `w` is bytes n, N+n, 2N+n... of the planes).
final class ChunkEntries {
    let reader: PairChunkReader
    /// Trailing-feature deltas, still byte-shuffled (4 planes of `nnz` bytes).
    private let trailPlanes: [UInt8]
    /// The float columns, still byte-shuffled, opened on first use.
    private var floatPlanes: FloatPlanes?
    private let columnCount: Int

    init(reader: PairChunkReader, columnCount: Int) throws {
        self.reader = reader
        self.columnCount = columnCount
        trailPlanes = try reader.zstd.decompressBytes(reader.record.trails, count: 4 * reader.record.nnz,
                                                     what: "\(reader.record.name(run: reader.run)) trailing features")
    }

    @inline(__always) private static func word(_ p: UnsafeBufferPointer<UInt8>, _ n: Int, planes: Int, count: Int, base: Int = 0) -> UInt32 {
        var v: UInt32 = 0
        for b in 0..<planes { v |= UInt32(p[base + b * count + n]) << (8 * b) }
        return v
    }

    /// The entry of row `lead` whose trailing feature is `trail`, if the chunk holds it. The row's
    /// trailing features are rebuilt from their deltas and validated as they go (increasing, in range).
    func entry(lead: Int, trail: Int, extent: Int) throws -> Int? {
        guard let r = reader.row(of: lead) else { return nil }
        let lo = Int(reader.offsets[r]), hi = Int(reader.offsets[r + 1]), nnz = reader.record.nnz
        return try trailPlanes.withUnsafeBufferPointer { p -> Int? in
            var t = -1
            for n in lo..<hi {
                let d = Int(Self.word(p, n, planes: 4, count: nnz))
                let next = n == lo ? d : t + d
                guard next > t, next < extent else { throw StoreError("\(reader.record.name(run: reader.run)): trailing features are inconsistent") }
                if next == trail { return n }
                if next > trail { return nil }
                t = next
            }
            return nil
        }
    }

    /// Absolute trailing features of row `r`, rebuilt from their deltas and validated.
    func rowTrails(_ r: Int, extent: Int) throws -> [Int32] {
        let lo = Int(reader.offsets[r]), hi = Int(reader.offsets[r + 1]), nnz = reader.record.nnz
        var out = [Int32](repeating: 0, count: hi - lo)
        try trailPlanes.withUnsafeBufferPointer { p in
            var t = -1
            for n in lo..<hi {
                let d = Int(Self.word(p, n, planes: 4, count: nnz))
                let next = n == lo ? d : t + d
                guard next > t, next < extent else { throw StoreError("\(reader.record.name(run: reader.run)): trailing features are inconsistent") }
                out[n - lo] = Int32(next); t = next
            }
        }
        return out
    }

    private func openFloats() throws -> FloatPlanes {
        if let p = floatPlanes { return p }
        let p = try FloatPlanes(reader.record.floats, planeCount: reader.codec.byteWidth * columnCount, nnz: reader.record.nnz, zstd: reader.zstd,
                                what: "\(reader.record.name(run: reader.run)) float columns")
        floatPlanes = p
        return p
    }

    /// Column `c`'s values for the entries in `range`.
    func values(column c: Int, range: Range<Int>) throws -> [Float] {
        let planes = try openFloats()
        let codec = reader.codec, width = codec.byteWidth
        return range.map { n in
            let bits = planes.element(n, planes: (c * width)..<((c + 1) * width))
            return codec == .f32 ? Float(bitPattern: bits) : codec.decode16(UInt16(truncatingIfNeeded: bits))
        }
    }

    /// Entry `n` as a full row: every stored column read straight out of the shuffled planes.
    func pair(_ n: Int, slots: ColumnSlots, queryFeature: Int, keyFeature: Int) throws -> PairRow {
        let codec = reader.codec, width = codec.byteWidth
        let planes = try openFloats()
        @inline(__always) func at(_ c: Int?) -> Float? {
            guard let c, c < columnCount else { return nil }
            let bits = planes.element(n, planes: (c * width)..<((c + 1) * width))
            return codec == .f32 ? Float(bitPattern: bits) : codec.decode16(UInt16(truncatingIfNeeded: bits))
        }
        return PairRow(head: reader.record.head, queryFeature: queryFeature, keyFeature: keyFeature, value: at(slots.value) ?? 0,
                       mask: at(slots.mask), importance: at(slots.importance), meanContribution: at(slots.meanContribution),
                       cooccurrence: at(slots.cooccurrence), extra: slots.extra.map { at($0) ?? 0 })
    }
}

/// Where each column of a `PairRow` sits among the float columns an ordering stores (nil: absent),
/// worked out once per query instead of by name for every pair.
struct ColumnSlots {
    let value, mask, importance, meanContribution, cooccurrence: Int?
    let extra: [Int?]

    init(_ stored: [String], extraColumns: [String]) {
        func slot(_ c: PairColumn) -> Int? { stored.firstIndex(of: c.rawValue) }
        value = slot(.value); mask = slot(.mask); importance = slot(.importance)
        meanContribution = slot(.meanContribution); cooccurrence = slot(.cooccurrence)
        extra = extraColumns.map { stored.firstIndex(of: $0) }
    }
}
