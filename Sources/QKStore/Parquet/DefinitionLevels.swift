/// A page's definition levels for a flat optional column (1 = value present, 0 = null), in the
/// RLE/bit-packed hybrid encoding at bit width 1, behind the 4-byte little-endian length that
/// version-1 data pages put before them.
///
/// Collect one bit per row with `add`, then `encode`. A page without nulls (or of nulls only)
/// becomes one RLE run, 6 to 9 bytes whatever its length; a mixed page one bit-packed run, one
/// bit a row, LSB first — which zstd then squeezes when the nulls are rare:
///
///     rows present, null, present  →  02 00 00 00 | 03 05
///     (length 2 | header (1 group of 8) << 1 | 1 = 0x03, bits 0b101; the padding bits are ignored
///      since the page header gives the row count)
struct DefinitionLevels {
    private var bits: [UInt8] = []
    private(set) var count = 0
    private(set) var nullCount = 0

    init(capacity: Int) { bits.reserveCapacity(capacity / 8 + 1) }

    mutating func reset() {
        bits.removeAll(keepingCapacity: true)
        count = 0
        nullCount = 0
    }

    @inline(__always)
    mutating func add(present: Bool) {
        if count & 7 == 0 { bits.append(0) }
        if present { bits[bits.count - 1] |= 1 << UInt8(count & 7) } else { nullCount += 1 }
        count += 1
    }

    /// Appends the length-prefixed levels to `out`.
    func encode(into out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: [0, 0, 0, 0])
        if nullCount == 0 || nullCount == count {
            // RLE run: header count << 1, then the repeated value in one byte (the width rounded up).
            varint(UInt64(count) << 1, into: &out)
            out.append(nullCount == 0 ? 1 : 0)
        } else {
            // Bit-packed run: header (groups of 8 values) << 1 | 1, then the groups' bits.
            varint(UInt64(bits.count) << 1 | 1, into: &out)
            out.append(contentsOf: bits)
        }
        let length = UInt32(out.count - start - 4)
        withUnsafeBytes(of: length.littleEndian) { b in
            for i in 0..<4 { out[start + i] = b[i] }
        }
    }

    private func varint(_ value: UInt64, into out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
}
