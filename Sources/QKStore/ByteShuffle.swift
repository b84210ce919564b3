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
        for b in 0..<width {
            let base = b * n
            for i in 0..<n { dst[i * width + b] = src[base + i] }
        }
    }
}
