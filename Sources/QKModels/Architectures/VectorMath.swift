import Foundation

/// Vectorised exp, erf-GELU and masked softmax for the forward pass. libm's `expf`/`erff` are
/// scalar calls and took a fifth of a MiniLM harvest; these process eight lanes at a time with
/// errors far below the runtime's tolerances (exp: a few ulp; erf: < 5e-7 absolute in Float32).
enum VectorMath {
    typealias V = SIMD8<Float>

    /// e^x: range reduction x = n·ln2 + r (ln2 split in two for precision, after Cephes),
    /// a degree-6 polynomial for e^r on |r| ≤ ln2/2, and 2^n built in the exponent bits.
    /// Inputs below -87.3 (including -inf) give exactly 0, so masked scores get zero weight.
    ///
    /// Rounding and the float→int step use the 1.5·2²³ "magic number" trick rather than
    /// `rounded()` and `SIMD8<Int32>(_:)`, which Swift does not lower to vector instructions.
    @inline(__always)
    static func exp(_ x: V) -> V {
        let lo = V(repeating: -87.3), hi = V(repeating: 88.7)
        var c = x.replacing(with: lo, where: x .< lo)
        c = c.replacing(with: hi, where: c .> hi)
        let magic = V(repeating: 12_582_912)  // 1.5·2^23: adding it rounds to an integer
        let n = (c * 1.442_695_04 + magic) - magic
        let r = c - n * 0.693_359_375 + n * 2.121_944_4e-4
        var p = V(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        let y = p * r * r + r + 1
        // n + 127 + 2^23 has the biased exponent n + 127 in its low mantissa bits.
        let biased = unsafeBitCast(n + 8_388_735, to: SIMD8<Int32>.self) &- 0x4B00_0000
        let scale = unsafeBitCast(biased &<< 23, to: V.self)
        return (y * scale).replacing(with: 0, where: x .< lo)
    }

    /// erf(x), Abramowitz & Stegun 7.1.26: 1 - (a1·t + … + a5·t⁵)·e^(-x²), t = 1/(1 + p|x|).
    @inline(__always)
    static func erf(_ x: V) -> V {
        let a = x.replacing(with: -x, where: x .< 0)
        let t = 1 / (1 + 0.327_591_1 * a)
        var poly = V(repeating: 1.061_405_429)
        poly = poly * t - 1.453_152_027
        poly = poly * t + 1.421_413_741
        poly = poly * t - 0.284_496_736
        poly = poly * t + 0.254_829_592
        let y = 1 - poly * t * exp(-a * a)
        return y.replacing(with: -y, where: x .< 0)
    }

    /// In-place exact-form GELU, x·½(1 + erf(x/√2)) (BERT's `gelu`).
    static func geluErf(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            let g = 0.5 * v * (1 + erf(v * 0.707_106_781_186_547_6))
            UnsafeMutableRawPointer(x + i).storeBytes(of: g, as: V.self)
            i += 8
        }
        while i < count { let v = x[i]; x[i] = 0.5 * v * (1 + Foundation.erff(v * 0.707_106_781_186_547_6)); i += 1 }
    }

    /// In-place tanh-approximation GELU (GPT-2's `gelu_new`), tanh(u) = 1 - 2/(e^(2u) + 1).
    static func geluTanh(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let c: Float = 0.797_884_560_802_865_4
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            let u = c * (v + 0.044_715 * v * v * v)
            let th = 1 - 2 / (exp(2 * u) + 1)  // exp saturates: u → ±∞ gives ±1
            UnsafeMutableRawPointer(x + i).storeBytes(of: 0.5 * v * (1 + th), as: V.self)
            i += 8
        }
        while i < count {
            let v = x[i]; x[i] = 0.5 * v * (1 + tanhf(c * (v + 0.044_715 * v * v * v))); i += 1
        }
    }

    /// Softmax over each row of `[rows, n]`; -inf entries get exactly 0, an all -inf row all 0s
    /// (the same contract as `Ops.softmaxRows`).
    static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        let vecEnd = n & ~7
        for r in 0..<rows {
            let row = x + r * n
            var mv = V(repeating: -.infinity)
            var j = 0
            while j < vecEnd {
                let v = UnsafeRawPointer(row + j).loadUnaligned(as: V.self)
                mv = mv.replacing(with: v, where: v .> mv)
                j += 8
            }
            var m = mv.max()
            while j < n { m = Swift.max(m, row[j]); j += 1 }
            if m == -.infinity { row.update(repeating: 0, count: n); continue }
            var sv = V.zero
            j = 0
            while j < vecEnd {
                let e = exp(UnsafeRawPointer(row + j).loadUnaligned(as: V.self) - m)
                UnsafeMutableRawPointer(row + j).storeBytes(of: e, as: V.self)
                sv += e
                j += 8
            }
            var s = sv.sum()
            while j < n { let e = expf(row[j] - m); row[j] = e; s += e; j += 1 }
            let inv = 1 / s
            j = 0
            while j < vecEnd {
                let e = UnsafeRawPointer(row + j).loadUnaligned(as: V.self) * inv
                UnsafeMutableRawPointer(row + j).storeBytes(of: e, as: V.self)
                j += 8
            }
            while j < n { row[j] *= inv; j += 1 }
        }
    }
}
