/// The lossy value codecs a user may ask for explicitly (`--values fp16|bf16`).
/// Both round to nearest-even; the store records the largest absolute error they introduced.
public enum ValueCodec: String, Sendable, CaseIterable {
    case f32, fp16, bf16

    var byteWidth: Int { self == .f32 ? 4 : 2 }

    /// The 16-bit pattern of `x` in this codec (fp16 or bf16 only).
    @inline(__always) func encode16(_ x: Float) -> UInt16 {
        switch self {
        case .fp16: return Float16(x).bitPattern
        default:
            let bits = x.bitPattern
            if x.isNaN { return UInt16(bits >> 16) | 0x40 }
            // Round to nearest, ties to even, on the 16 bits that are dropped.
            let rounding: UInt32 = 0x7FFF + ((bits >> 16) & 1)
            return UInt16((bits &+ rounding) >> 16)
        }
    }

    @inline(__always) func decode16(_ h: UInt16) -> Float {
        switch self {
        case .fp16: return Float(Float16(bitPattern: h))
        default: return Float(bitPattern: UInt32(h) << 16)
        }
    }
}
