import Foundation

/// Row-wise numerical kernels shared by the model runtime and the trainers.
/// Each works in place on a contiguous `[rows, n]` buffer.
public enum Ops {
    /// Softmax over each row of `[rows, n]`. Entries equal to `-Float.infinity` get probability
    /// exactly zero (masking is always done with -inf, never a finite fill). A row that is
    /// entirely -inf becomes all zeros rather than NaN.
    public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        for r in 0..<rows {
            let row = x + r * n
            var m = -Float.infinity
            for i in 0..<n where row[i] > m { m = row[i] }
            if m == -Float.infinity { for i in 0..<n { row[i] = 0 }; continue }
            var s: Float = 0
            for i in 0..<n { let e = expf(row[i] - m); row[i] = e; s += e }
            let inv = 1 / s
            for i in 0..<n { row[i] *= inv }
        }
    }

    /// Causal (lower-triangular) mask for a `[q, k]` score block whose query i sits at absolute
    /// position `qOffset + i` and key j at `j`: keys after the query get -inf.
    public static func applyCausalMask(_ x: UnsafeMutablePointer<Float>, q: Int, k: Int, qOffset: Int = 0) {
        for i in 0..<q {
            let row = x + i * k
            let last = qOffset + i
            if last + 1 < k { for j in (last + 1)..<k { row[j] = -Float.infinity } }
        }
    }

    /// LayerNorm over rows: y = (x - mean) / sqrt(var + eps) * gamma + beta (biased variance).
    public static func layerNormRows(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int,
                                     gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>?, eps: Float) {
        for r in 0..<rows {
            let row = x + r * n
            var mean: Float = 0
            for i in 0..<n { mean += row[i] }
            mean /= Float(n)
            var v: Float = 0
            for i in 0..<n { let d = row[i] - mean; v += d * d }
            let inv = 1 / sqrtf(v / Float(n) + eps)
            if let beta {
                for i in 0..<n { row[i] = (row[i] - mean) * inv * gamma[i] + beta[i] }
            } else {
                for i in 0..<n { row[i] = (row[i] - mean) * inv * gamma[i] }
            }
        }
    }

    /// RMSNorm over rows: y = x / sqrt(mean(x²) + eps) * gamma.
    public static func rmsNormRows(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int,
                                   gamma: UnsafePointer<Float>, eps: Float) {
        for r in 0..<rows {
            let row = x + r * n
            var ss: Float = 0
            for i in 0..<n { ss += row[i] * row[i] }
            let inv = 1 / sqrtf(ss / Float(n) + eps)
            for i in 0..<n { row[i] = row[i] * inv * gamma[i] }
        }
    }

    /// GELU, tanh approximation (GPT-2's `gelu_new`).
    public static func geluTanh(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let c: Float = 0.7978845608028654 // sqrt(2/pi)
        for i in 0..<count {
            let v = x[i]
            x[i] = 0.5 * v * (1 + tanhf(c * (v + 0.044715 * v * v * v)))
        }
    }

    /// GELU, exact erf form (BERT's `gelu`).
    public static func geluErf(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let inv: Float = 0.7071067811865476 // 1/sqrt(2)
        for i in 0..<count {
            let v = x[i]
            x[i] = 0.5 * v * (1 + erff(v * inv))
        }
    }

    /// SiLU (x · sigmoid(x)), Llama's MLP activation.
    public static func silu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { let v = x[i]; x[i] = v / (1 + expf(-v)) }
    }
}

/// IEEE half and bfloat16 decoding/encoding.
public enum HalfFloat {
    /// Decodes an IEEE 754 binary16 bit pattern.
    @inlinable
    public static func fromFP16(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int((h >> 10) & 0x1f)
        let mant = UInt32(h & 0x3ff)
        var bits: UInt32
        if exp == 0 {
            if mant == 0 { bits = sign }
            else { // subnormal: value = mant · 2^-24
                let f = Float(mant) * 5.9604644775390625e-8
                return sign != 0 ? -f : f
            }
        } else if exp == 31 {
            bits = sign | 0x7f80_0000 | (mant << 13)
        } else {
            bits = sign | (UInt32(exp + 112) << 23) | (mant << 13)
        }
        return Float(bitPattern: bits)
    }

    /// Encodes to binary16 with round-to-nearest-even (Swift's Float16 conversion).
    @inlinable
    public static func toFP16(_ f: Float) -> UInt16 {
        #if arch(x86_64) || arch(arm64)
        return Float16(f).bitPattern
        #else
        fatalError("Float16 unavailable")
        #endif
    }

    @inlinable
    public static func fromBF16(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// Encodes to bfloat16 with round-to-nearest-even; NaN stays NaN.
    @inlinable
    public static func toBF16(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        if f.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounding = UInt32(0x7fff) + ((bits >> 16) & 1)
        return UInt16((bits &+ rounding) >> 16)
    }
}
