/// One chunk opened to answer point lookups: a key-feature query wants one or two pairs out of
/// each query-major chunk it touches, so this decompresses the chunk's blobs once but turns only
/// the rows and entries it is asked about into features and floats (byte-shuffled arrays can be
/// read one element at a time: element `n` of width `w` is bytes n, N+n, 2N+n... of the planes).
final class ChunkEntries {
    let reader: PairChunkReader
    /// Trailing-feature deltas, still byte-shuffled (4 planes of `nnz` bytes).
    private let trailPlanes: [UInt8]
    /// The float columns, still byte-shuffled, decompressed on first use.
    private var floatPlanes: [UInt8]?
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

    /// Entry `n` as a full row: every stored column read straight out of the shuffled planes.
    func pair(_ n: Int, map: PairMapInfo, queryFeature: Int, keyFeature: Int) throws -> PairRow {
        if floatPlanes == nil {
            let width = reader.codec.byteWidth
            floatPlanes = try reader.zstd.decompressBytes(reader.record.floats, count: width * columnCount * reader.record.nnz,
                                                         what: "\(reader.record.name(run: reader.run)) float columns")
        }
        let names = map.storedColumns(.query)
        let nnz = reader.record.nnz, codec = reader.codec, width = codec.byteWidth
        var values = [Float](repeating: 0, count: names.count)
        floatPlanes?.withUnsafeBufferPointer { p in
            for c in 0..<names.count {
                let bits = Self.word(p, n, planes: width, count: nnz, base: c * width * nnz)
                switch codec {
                case .f32: values[c] = Float(bitPattern: bits)
                case .fp16, .bf16: values[c] = codec.decode16(UInt16(truncatingIfNeeded: bits))
                }
            }
        }
        func at(_ name: String) -> Float? { names.firstIndex(of: name).map { values[$0] } }
        return PairRow(head: reader.record.head, queryFeature: queryFeature, keyFeature: keyFeature, value: at(PairColumn.value.rawValue) ?? 0,
                       mask: at(PairColumn.mask.rawValue), importance: at(PairColumn.importance.rawValue),
                       meanContribution: at(PairColumn.meanContribution.rawValue), cooccurrence: at(PairColumn.cooccurrence.rawValue),
                       extra: map.extraColumns.map { at($0) ?? 0 })
    }
}
