import Foundation
import QKTensor
import QKModels

/// A pair's bilinear weight on a RoPE model, as a function of the offset Δ = p − s.
///
/// RoPE rotates each 2-D slice (f, f + d/2) of q at position p by p·ω_f and of k at s by s·ω_f,
/// so their dot product depends on Δ only:
///
///     <R_p u, R_s v> = Σ_f (u_f v_f + u_g v_g) cos(Δ ω_f) + (u_f v_g − u_g v_f) sin(Δ ω_f),  g = f + d/2
///
/// With C_f and S_f the two brackets divided by sqrt(d_head), M(Δ) = Σ_f C_f cos(Δ ω_f) + S_f sin(Δ ω_f):
/// d_head numbers per pair and head are enough to evaluate its contribution at any offset.
public struct RoPEPairProfile: Sendable, Equatable {
    public var cosine: [Float]
    public var sine: [Float]
    public let frequencies: [Float]

    /// `u`: the query decoder row's slice for the head, `v`: the key decoder row's slice for its
    /// kv head (d_head values each, pre-RoPE).
    public init(query u: UnsafePointer<Float>, key v: UnsafePointer<Float>, rope: RoPE) {
        let half = rope.dHead / 2, scale = 1 / Float(rope.dHead).squareRoot()
        frequencies = rope.frequencies
        cosine = (0..<half).map { f in (u[f] * v[f] + u[f + half] * v[f + half]) * scale }
        sine = (0..<half).map { f in (u[f] * v[f + half] - u[f + half] * v[f]) * scale }
    }

    /// M(Δ) for Δ = p − s.
    public func value(offset: Int) -> Float {
        var m: Float = 0
        for f in 0..<cosine.count {
            let a = Float(offset) * frequencies[f]
            m += cosine[f] * cosf(a) + sine[f] * sinf(a)
        }
        return m
    }

    /// The offset in 0..<offsets where |M(Δ)| is largest, with M there.
    public func peak(offsets: Int) -> (offset: Int, value: Float) {
        var best = (offset: 0, value: value(offset: 0))
        for d in 1..<max(offsets, 1) {
            let v = value(offset: d)
            if abs(v) > abs(best.value) { best = (d, v) }
        }
        return best
    }
}

extension PairMapResult {
    /// For RoPE models: each surviving entry's offset profile and its peak over 0..<offsets
    /// (value scaled by the entry's mask), in the result's order.
    public func ropePeaks(query: Transcoder, key: Transcoder, config: ModelConfig, offsets: Int) throws -> [(offset: Int, value: Float)] {
        guard let theta = config.ropeTheta else {
            throw PairMapError("pair map: \(config.architecture.rawValue) has no RoPE (rope_theta unset)")
        }
        guard config.dHead % 2 == 0, query.dOut == config.nHead * config.dHead, key.dOut == config.nKVHead * config.dHead else {
            throw PairMapError("pair map: decoders (\(query.dOut), \(key.dOut) outputs) do not match \(config.nHead)/\(config.nKVHead) heads of \(config.dHead)")
        }
        let rope = RoPE(dHead: config.dHead, theta: theta), dh = config.dHead
        return try query.wDec.data.withUnsafeBufferPointer { wq in
            try key.wDec.data.withUnsafeBufferPointer { wk in
                try (0..<count).map { e in
                    let h = Int(head[e]), i = Int(queryFeature[e]), j = Int(keyFeature[e])
                    guard h < config.nHead, i < query.dHidden, j < key.dHidden else {
                        throw PairMapError("pair map: entry \(e) (head \(h), query \(i), key \(j)) is outside the decoders")
                    }
                    let profile = RoPEPairProfile(query: wq.baseAddress! + i * query.dOut + h * dh,
                                                  key: wk.baseAddress! + j * key.dOut + config.kvHead(of: h) * dh, rope: rope)
                    let p = profile.peak(offsets: offsets)
                    return (p.offset, p.value * mask[e])
                }
            }
        }
    }
}
