import QKTensor

/// Turns GGML tensor bytes into Float32.
///
/// Block formats (ggml-common.h), 32 values per block, little-endian:
/// - Q8_0: fp16 `d`, then 32 int8 `q`; x = d·q.
/// - Q4_0: fp16 `d`, then 16 bytes; byte j holds value j in its low nibble and value j+16 in its
///   high nibble; x = d·(nibble − 8).
/// - Q4_1: fp16 `d`, fp16 `m`, then 16 bytes laid out as Q4_0; x = d·nibble + m.
enum GGUFDequantize {
    /// Decodes `count` values of `type` from `src` into `dst`. The caller has checked that `src`
    /// holds exactly the bytes `count` values need and that `count` is a whole number of blocks.
    static func decode(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        guard let base = src.baseAddress else { return }
        switch type {
        case .f32:
            UnsafeMutableRawPointer(dst).copyMemory(from: base, byteCount: count * 4)
        case .f16:
            for i in 0..<count { dst[i] = HalfFloat.fromFP16(base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bf16:
            for i in 0..<count { dst[i] = HalfFloat.fromBF16(base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .q8_0:
            for b in 0..<(count / 32) {
                let blk = base + b * 34
                let d = HalfFloat.fromFP16(blk.loadUnaligned(as: UInt16.self))
                let q = (blk + 2).assumingMemoryBound(to: Int8.self)
                let o = dst + b * 32
                for j in 0..<32 { o[j] = d * Float(q[j]) }
            }
        case .q4_0:
            for b in 0..<(count / 32) {
                let blk = base + b * 18
                let d = HalfFloat.fromFP16(blk.loadUnaligned(as: UInt16.self))
                let q = (blk + 2).assumingMemoryBound(to: UInt8.self)
                let o = dst + b * 32
                for j in 0..<16 {
                    o[j] = d * Float(Int(q[j] & 0x0F) - 8)
                    o[j + 16] = d * Float(Int(q[j] >> 4) - 8)
                }
            }
        case .q4_1:
            for b in 0..<(count / 32) {
                let blk = base + b * 20
                let d = HalfFloat.fromFP16(blk.loadUnaligned(as: UInt16.self))
                let m = HalfFloat.fromFP16(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
                let q = (blk + 4).assumingMemoryBound(to: UInt8.self)
                let o = dst + b * 32
                for j in 0..<16 {
                    o[j] = d * Float(q[j] & 0x0F) + m
                    o[j + 16] = d * Float(q[j] >> 4) + m
                }
            }
        default:
            break  // unreachable: GGUFFile.tensor checks `isSupported` first
        }
    }
}
