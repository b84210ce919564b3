import Foundation
import QKTensor

/// The trainer's random source: qkdb's SplitMix64 plus the uniform and normal draws training needs.
/// Its whole state is one UInt64, so a checkpoint can store it and `--resume` continues with
/// exactly the draws an uninterrupted run would make.
public struct TrainingRandom: RandomNumberGenerator, Sendable, Equatable {
    private var generator: SplitMix64
    public var state: UInt64 { generator.state }
    public init(seed: UInt64) { generator = SplitMix64(seed: seed &+ 0x9E37_79B9_7F4A_7C15) }
    public init(state: UInt64) { generator = SplitMix64(seed: state) }

    public mutating func next() -> UInt64 { generator.next() }

    /// Uniform in [0, 1).
    public mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / Float(1 << 24)) }

    /// Standard normal (Box–Muller; one draw per call keeps the state simple to reason about).
    public mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) * (1.0 / Double(1 << 53)), 1e-300)
        let u2 = Double(next() >> 11) * (1.0 / Double(1 << 53))
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}
