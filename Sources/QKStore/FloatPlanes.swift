import CZstd

/// How a chunk's float columns are laid out in its `floats` blob.
///
/// The columns are byte-shuffled: column after column, each split into byte planes (all lowest
/// bytes of the column, then all next bytes...). Format 1 compressed all planes as one zstd frame.
/// But the low mantissa planes of trained weights are noise that zstd cannot shrink, and a key
/// query reads one or two entries out of each query-major chunk it touches: decompressing all
/// planes for them cost ~11 µs a chunk, half of a warm key query. So format 2 keeps each plane
/// that zstd would not shrink (by at least 1/32) as raw bytes, readable in place, and compresses
/// only the others, together, in one frame:
///
///     0x02 | plane bitmask (bit p set: plane p is raw), ceil(planes / 8) bytes
///          | one zstd frame of the compressed planes, in order (absent when none is)
///          | the raw planes, in order, `nnz` bytes each
///
/// A format-1 blob is one zstd frame and so starts with zstd's magic number (0x28 first), never
/// 0x02: a reader tells the two apart from the blob itself, so a store holding runs written by
/// both versions reads correctly.
struct FloatPlanes {
    static let tag: UInt8 = 0x02

    /// Encodes `shuffled` (`planeCount` planes of `nnz` bytes) in the format-2 layout.
    static func encode(_ shuffled: [UInt8], planeCount: Int, nnz: Int, zstd: Zstd) -> [UInt8] {
        var raw = [Bool](repeating: false, count: planeCount)
        shuffled.withUnsafeBytes { all in
            for p in 0..<planeCount {
                let plane = UnsafeRawBufferPointer(rebasing: all[(p * nnz)..<((p + 1) * nnz)])
                raw[p] = zstd.compress(plane).count >= nnz - nnz / 32
            }
        }
        var packed: [UInt8] = [], rawBytes: [UInt8] = []
        for p in 0..<planeCount {
            if raw[p] { rawBytes += shuffled[(p * nnz)..<((p + 1) * nnz)] } else { packed += shuffled[(p * nnz)..<((p + 1) * nnz)] }
        }
        var mask = [UInt8](repeating: 0, count: (planeCount + 7) / 8)
        for p in 0..<planeCount where raw[p] { mask[p / 8] |= 1 << UInt8(p % 8) }
        return [tag] + mask + (packed.isEmpty ? [] : zstd.compress(packed)) + rawBytes
    }

    /// Where each plane's bytes are: in the decompressed frame or in place in the blob.
    private let blob: [UInt8]
    private let unpacked: [UInt8]
    /// Per plane: (true: in `blob`, false: in `unpacked`) and the byte offset there.
    private let location: [(inBlob: Bool, offset: Int)]
    let nnz: Int

    /// Opens a blob of either format holding `planeCount` planes of `nnz` bytes; throws (naming
    /// `what`) when its layout does not add up. Format 1 is decompressed whole.
    init(_ blob: [UInt8], planeCount: Int, nnz: Int, zstd: Zstd, what: @autoclosure () -> String) throws {
        self.blob = blob; self.nnz = nnz
        let total = planeCount * nnz
        guard let first = blob.first, first == Self.tag else {
            // Format 1: one frame of every plane.
            unpacked = try zstd.decompressBytes(blob, count: total, what: what())
            location = (0..<planeCount).map { (false, $0 * nnz) }
            return
        }
        let maskBytes = (planeCount + 7) / 8
        guard blob.count >= 1 + maskBytes else { throw StoreError("\(what()): float column blob is damaged (too short)") }
        let raw = (0..<planeCount).map { p in blob[1 + p / 8] & (1 << UInt8(p % 8)) != 0 }
        let rawCount = raw.filter { $0 }.count
        let packedCount = planeCount - rawCount
        let frameStart = 1 + maskBytes
        var frameLength = 0
        if packedCount > 0 {
            frameLength = blob.withUnsafeBytes { b in
                guard let base = b.baseAddress, frameStart < b.count else { return 0 }
                let n = ZSTD_findFrameCompressedSize(base + frameStart, b.count - frameStart)
                return ZSTD_isError(n) == 0 ? n : 0
            }
            guard frameLength > 0, frameStart + frameLength <= blob.count else {
                throw StoreError("\(what()): float column blob is damaged (no valid frame)")
            }
            unpacked = try zstd.decompressBytes(Array(blob[frameStart..<(frameStart + frameLength)]), count: packedCount * nnz, what: what())
        } else {
            unpacked = []
        }
        let rawStart = frameStart + frameLength
        guard blob.count == rawStart + rawCount * nnz else {
            throw StoreError("\(what()): float column blob is damaged (\(blob.count) bytes, its layout describes \(rawStart + rawCount * nnz))")
        }
        var nextRaw = rawStart, nextPacked = 0
        location = raw.map { isRaw in
            if isRaw { defer { nextRaw += nnz }; return (true, nextRaw) }
            defer { nextPacked += nnz }; return (false, nextPacked)
        }
    }

    /// Byte `n` of every plane in `planes`, little-endian assembled (planes of one element, low byte first).
    @inline(__always) func element(_ n: Int, planes: Range<Int>) -> UInt32 {
        var v: UInt32 = 0
        for (b, p) in planes.enumerated() {
            let at = location[p]
            v |= UInt32(at.inBlob ? blob[at.offset + n] : unpacked[at.offset + n]) << (8 * UInt32(b))
        }
        return v
    }

    /// Every plane, in order: the shuffled bytes format 1 stored in one frame.
    func allPlanes() -> [UInt8] {
        if location.allSatisfy({ !$0.inBlob }) && location.enumerated().allSatisfy({ $0.element.offset == $0.offset * nnz }) { return unpacked }
        var out = [UInt8]()
        out.reserveCapacity(location.count * nnz)
        for at in location { out += at.inBlob ? blob[at.offset..<(at.offset + nnz)] : unpacked[at.offset..<(at.offset + nnz)] }
        return out
    }
}
