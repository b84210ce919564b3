/// One chunk of one ordering of a pair map, as stored in a `pair_chunks` row: its zone map
/// (head, first and last leading feature), its count, and one compressed blob per column.
struct PairChunkRecord {
    var ordering: Int
    var seq: Int
    var head: Int
    var firstLead: Int
    var lastLead: Int
    var nnz: Int
    var checksum: Int64
    var leads: [UInt8]
    var trails: [UInt8]
    /// Every float column the ordering holds (see `PairMapInfo.storedColumns`), each byte-shuffled,
    /// one after another, in one zstd frame: one frame of a few KB compresses better than many tiny
    /// ones and decodes in one call.
    var floats: [UInt8]

    /// The checksum over everything the chunk's meaning depends on, zone map included,
    /// so a damaged header is caught as surely as a damaged blob.
    func computeChecksum() -> Int64 {
        var c = Checksum()
        c.add(Int64(ordering)); c.add(Int64(head)); c.add(Int64(firstLead)); c.add(Int64(lastLead)); c.add(Int64(nnz))
        c.add(leads); c.add(trails)
        c.add(floats)
        return c.value
    }

    /// "chunk 12 (run 3, key-major)" — how errors name a chunk.
    func name(run: Int64) -> String {
        "chunk \(seq) of run \(run) (\(ordering == 0 ? "query-major" : "key-major"))"
    }
}

/// Encodes sorted pairs into chunk records. Leading features become CSR rows (distinct leads as
/// deltas from the chunk's first lead, then row offsets); trailing features become deltas that
/// restart at each row; every array is byte-shuffled and zstd-compressed on its own, so a query
/// decodes only what it needs.
struct PairChunkEncoder {
    let zstd: Zstd
    let codec: ValueCodec

    func encodeUInt32(_ values: [UInt32]) -> [UInt8] {
        let shuffled = values.withUnsafeBytes { ByteShuffle.shuffle($0, width: 4) }
        return zstd.compress(shuffled)
    }

    /// Columns (each `count` long) shuffled one by one, concatenated, stored as `FloatPlanes`.
    func encodeFloats(_ columns: [ArraySlice<Float>]) -> [UInt8] {
        var bytes: [UInt8] = []
        for values in columns {
            switch codec {
            case .f32:
                bytes += values.withUnsafeBytes { ByteShuffle.shuffle($0, width: 4) }
            case .fp16, .bf16:
                let halves = values.map { codec.encode16($0) }
                bytes += halves.withUnsafeBytes { ByteShuffle.shuffle($0, width: 2) }
            }
        }
        let nnz = columns.first?.count ?? 0
        return FloatPlanes.encode(bytes, planeCount: columns.count * codec.byteWidth, nnz: nnz, zstd: zstd)
    }

    /// Builds one chunk from entries `range` of an ordering given as parallel sorted arrays.
    func encode(ordering: Int, seq: Int, head: Int, leads: UnsafeBufferPointer<Int32>, trails: UnsafeBufferPointer<Int32>,
                range: Range<Int>, columns: [[Float]]) -> PairChunkRecord {
        let first = Int(leads[range.lowerBound]), last = Int(leads[range.upperBound - 1])
        var rowLeads: [UInt32] = []
        var offsets: [UInt32] = []
        var trailDeltas = [UInt32](repeating: 0, count: range.count)
        var previousLead = -1, previousTrail: Int32 = 0
        for (k, n) in range.enumerated() {
            let lead = Int(leads[n])
            if lead != previousLead {
                rowLeads.append(UInt32(lead - first))
                offsets.append(UInt32(k))
                previousLead = lead
                trailDeltas[k] = UInt32(trails[n])
            } else {
                trailDeltas[k] = UInt32(trails[n] - previousTrail)
            }
            previousTrail = trails[n]
        }
        offsets.append(UInt32(range.count))
        let csr = [UInt32(rowLeads.count)] + rowLeads + offsets
        var record = PairChunkRecord(
            ordering: ordering, seq: seq, head: head, firstLead: first, lastLead: last, nnz: range.count, checksum: 0,
            leads: encodeUInt32(csr), trails: encodeUInt32(trailDeltas),
            floats: encodeFloats(columns.map { $0[range] }))
        record.checksum = record.computeChecksum()
        return record
    }
}

/// A chunk opened for reading: checksum verified and CSR decoded and validated on construction;
/// trailing features and float columns decoded on demand.
struct PairChunkReader {
    let record: PairChunkRecord
    let run: Int64
    let codec: ValueCodec
    let zstd: Zstd
    /// Absolute leading feature of each row, and row `r` spanning entries offsets[r]..<offsets[r+1].
    let rowLeads: [Int32]
    let offsets: [Int32]

    init(record: PairChunkRecord, run: Int64, codec: ValueCodec, zstd: Zstd, shape: PairMapShape) throws {
        self.record = record; self.run = run; self.codec = codec; self.zstd = zstd
        var name: String { record.name(run: run) }   // built only for an error message
        guard record.computeChecksum() == record.checksum else { throw StoreError("\(name): checksum mismatch (the chunk is corrupt)") }
        let leadSide: FeatureSide = record.ordering == 0 ? .query : .key
        let nnz = record.nnz
        guard nnz > 0, record.head >= 0, record.head < shape.nHead, record.firstLead >= 0, record.firstLead <= record.lastLead,
              record.lastLead < shape.extent(leadSide) else {
            throw StoreError("\(name): zone map (head \(record.head), features \(record.firstLead)...\(record.lastLead)) is outside the run's shape")
        }
        // The CSR blob's size follows from its row count: 4 * (1 + rows + rows + 1) bytes.
        let declared = record.leads.withUnsafeBytes { ZSTD_frameSize($0) }
        guard let bytes = declared, bytes % 8 == 0, bytes >= 16, (bytes / 8 - 1) <= nnz else {
            throw StoreError("\(name): row index blob is damaged")
        }
        let rows = bytes / 8 - 1
        let shuffled = try zstd.decompressBytes(record.leads, count: bytes, what: "\(name) row index")
        var csr = [UInt32](repeating: 0, count: bytes / 4)
        shuffled.withUnsafeBytes { s in csr.withUnsafeMutableBytes { ByteShuffle.unshuffle(s, width: 4, into: $0) } }
        guard Int(csr[0]) == rows else { throw StoreError("\(name): row index is inconsistent") }
        var leads = [Int32](repeating: 0, count: rows)
        var offs = [Int32](repeating: 0, count: rows + 1)
        var previous = -1
        for r in 0..<rows {
            let lead = record.firstLead + Int(csr[1 + r])
            guard lead > previous, lead <= record.lastLead else { throw StoreError("\(name): row index is inconsistent") }
            leads[r] = Int32(lead); previous = lead
        }
        var previousOffset = -1
        for r in 0...rows {
            let o = Int(csr[1 + rows + r])
            guard o > previousOffset || (r == rows && o == nnz && o > previousOffset) else { throw StoreError("\(name): row offsets are inconsistent") }
            offs[r] = Int32(o); previousOffset = o
        }
        guard offs[0] == 0, Int(offs[rows]) == nnz, leads.first.map(Int.init) == record.firstLead, leads.last.map(Int.init) == record.lastLead else {
            throw StoreError("\(name): row offsets are inconsistent")
        }
        rowLeads = leads; offsets = offs
    }

    /// The row index of leading feature `lead`, if this chunk holds it.
    func row(of lead: Int) -> Int? {
        var lo = 0, hi = rowLeads.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if Int(rowLeads[mid]) < lead { lo = mid + 1 } else { hi = mid }
        }
        return lo < rowLeads.count && Int(rowLeads[lo]) == lead ? lo : nil
    }

    /// Absolute trailing features of every entry, validated (strictly increasing within a row, in range).
    func trails(extent: Int) throws -> [Int32] {
        let name = record.name(run: run)
        let shuffled = try zstd.decompressBytes(record.trails, count: 4 * record.nnz, what: "\(name) trailing features")
        var deltas = [UInt32](repeating: 0, count: record.nnz)
        shuffled.withUnsafeBytes { s in deltas.withUnsafeMutableBytes { ByteShuffle.unshuffle(s, width: 4, into: $0) } }
        var out = [Int32](repeating: 0, count: record.nnz)
        for r in 0..<rowLeads.count {
            var t = -1
            for n in Int(offsets[r])..<Int(offsets[r + 1]) {
                let d = Int(deltas[n])
                let next = n == Int(offsets[r]) ? d : t + d
                guard next > t, next < extent else { throw StoreError("\(name): trailing features are inconsistent") }
                out[n] = Int32(next); t = next
            }
        }
        return out
    }

    /// All `columnCount` float columns of the chunk, column after column (`nnz` values each).
    func floats(columnCount: Int) throws -> [Float] {
        let count = columnCount * record.nnz
        let width = codec.byteWidth
        let shuffled = try FloatPlanes(record.floats, planeCount: width * columnCount, nnz: record.nnz, zstd: zstd,
                                       what: "\(record.name(run: run)) float columns").allPlanes()
        let n = record.nnz
        let codec = self.codec
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            shuffled.withUnsafeBytes { s in
                for c in 0..<columnCount {
                    let src = UnsafeRawBufferPointer(rebasing: s[(c * n * width)..<((c + 1) * n * width)])
                    let dst = UnsafeMutableBufferPointer(rebasing: out[(c * n)..<((c + 1) * n)])
                    if width == 4 {
                        ByteShuffle.unshuffle(src, width: 4, into: UnsafeMutableRawBufferPointer(dst))
                    } else {
                        var halves = [UInt16](repeating: 0, count: n)
                        halves.withUnsafeMutableBytes { ByteShuffle.unshuffle(src, width: 2, into: $0) }
                        halves.withUnsafeBufferPointer { h in
                            if codec == .bf16 {
                                for i in 0..<n { dst[i] = Float(bitPattern: UInt32(h[i]) << 16) }
                            } else {
                                for i in 0..<n { dst[i] = codec.decode16(h[i]) }
                            }
                        }
                    }
                }
            }
            initialized = count
        }
    }
}

import CZstd

/// The decompressed size a zstd frame declares, or nil when it declares none or is not a frame.
func ZSTD_frameSize(_ bytes: UnsafeRawBufferPointer) -> Int? {
    let size = ZSTD_getFrameContentSize(bytes.baseAddress, bytes.count)
    if size >= ZSTD_CONTENTSIZE_ERROR || size > UInt64(Int32.max) { return nil }
    return Int(size)
}

/// The decoded float columns of one chunk, addressable by name.
struct ChunkFloats {
    let values: [Float]
    let names: [String]
    let nnz: Int

    func column(_ name: String) -> ArraySlice<Float>? {
        guard let i = names.firstIndex(of: name) else { return nil }
        return values[(i * nnz)..<((i + 1) * nnz)]
    }

    func column(_ c: PairColumn) -> ArraySlice<Float>? { column(c.rawValue) }

    /// Entry `n` as a pair row; columns this ordering does not hold stay nil.
    func pair(_ n: Int, head: Int, queryFeature: Int, keyFeature: Int, extraColumns: [String]) -> PairRow {
        func at(_ c: PairColumn) -> Float? { column(c).map { $0[$0.startIndex + n] } }
        return PairRow(head: head, queryFeature: queryFeature, keyFeature: keyFeature, value: at(.value) ?? 0, mask: at(.mask),
                       importance: at(.importance), meanContribution: at(.meanContribution), cooccurrence: at(.cooccurrence),
                       extra: extraColumns.map { name in column(name).map { $0[$0.startIndex + n] } ?? 0 })
    }
}

extension PairChunkReader {
    /// Decodes the chunk's float columns, which the catalog says are `names` (in order).
    func floats(names: [String]) throws -> ChunkFloats {
        ChunkFloats(values: try floats(columnCount: names.count), names: names, nnz: record.nnz)
    }
}
