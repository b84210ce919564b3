/// Byte shuffling: element-wise bytes regrouped by significance (all byte 0s, then all byte 1s...).
/// Sign/exponent bytes of floats and the high bytes of small integers are nearly constant, so
/// grouping them gives zstd long runs to compress, while the noisy low bytes stay together.
enum ByteShuffle {
    static func shuffle(_ src: UnsafeRawBufferPointer, width: Int) -> [UInt8] {
        let n = src.count / width
        var out = [UInt8](repeating: 0, count: src.count)
        out.withUnsafeMutableBufferPointer { dst in
            for b in 0..<width {
                let base = b * n
                for i in 0..<n { dst[base + i] = src[i * width + b] }
            }
        }
        return out
    }

    static func unshuffle(_ src: UnsafeRawBufferPointer, width: Int, into dst: UnsafeMutableRawBufferPointer) {
        let n = src.count / width
        guard let s = src.baseAddress?.assumingMemoryBound(to: UInt8.self), let d = dst.baseAddress, n > 0 else { return }
        switch width {
        case 4:
            // Gather the four byte planes into whole words: one store per element instead of four.
            let out = d.assumingMemoryBound(to: UInt32.self)
            for i in 0..<n {
                out[i] = UInt32(s[i]) | UInt32(s[n + i]) << 8 | UInt32(s[2 * n + i]) << 16 | UInt32(s[3 * n + i]) << 24
            }
        case 2:
            let out = d.assumingMemoryBound(to: UInt16.self)
            for i in 0..<n { out[i] = UInt16(s[i]) | UInt16(s[n + i]) << 8 }
        default:
            for b in 0..<width {
                for i in 0..<n { dst[i * width + b] = src[b * n + i] }
            }
        }
    }
}
