import Foundation

/// Rotary position embeddings in the Hugging Face "rotate half" layout: dimension f < d/2 is
/// paired with f + d/2 and the pair is rotated by the angle pos · ω_f, ω_f = θ^(-2f/d).
///
///     out[f]       = x[f] cos − x[f+d/2] sin
///     out[f + d/2] = x[f+d/2] cos + x[f] sin
///
/// The rotation is orthogonal, so the backward pass is the same rotation by −angle.
/// (GGUF files store Q/K rows permuted for llama.cpp's interleaved layout; the loader undoes
/// that permutation so this one layout serves every source.)
public struct RoPE: Sendable {
    public let dHead: Int
    public let theta: Float
    /// ω_f for f in 0..<d/2.
    public let frequencies: [Float]

    public init(dHead: Int, theta: Float) {
        precondition(dHead % 2 == 0, "RoPE needs an even head size")
        self.dHead = dHead
        self.theta = theta
        let half = dHead / 2
        // Computed in Double then rounded, as inv_freq is in float32 in the reference code.
        frequencies = (0..<half).map { Float(1.0 / pow(Double(theta), Double(2 * $0) / Double(dHead))) }
    }

    /// cos and sin tables `[positions, d/2]` for positions 0..<n.
    public func tables(positions n: Int) -> (cos: [Float], sin: [Float]) {
        let half = dHead / 2
        var c = [Float](repeating: 0, count: n * half), s = c
        for p in 0..<n {
            for f in 0..<half {
                let a = Float(p) * frequencies[f]
                c[p * half + f] = cosf(a); s[p * half + f] = sinf(a)
            }
        }
        return (c, s)
    }

    /// Rotates in place `x` laid out `[positions, heads, d_head]` (one sequence), position p
    /// taken as `positionOffset + p`. `inverse` rotates by the negative angle (the backward pass).
    public func apply(_ x: UnsafeMutablePointer<Float>, positions: Int, heads: Int,
                      positionOffset: Int = 0, inverse: Bool = false,
                      tables: (cos: [Float], sin: [Float])? = nil) {
        let half = dHead / 2
        let t = tables ?? self.tables(positions: positionOffset + positions)
        let sign: Float = inverse ? -1 : 1
        for p in 0..<positions {
            let tp = (positionOffset + p) * half
            for h in 0..<heads {
                let v = x + (p * heads + h) * dHead
                for f in 0..<half {
                    let c = t.cos[tp + f], s = sign * t.sin[tp + f]
                    let a = v[f], b = v[f + half]
                    v[f] = a * c - b * s
                    v[f + half] = b * c + a * s
                }
            }
        }
    }
}
