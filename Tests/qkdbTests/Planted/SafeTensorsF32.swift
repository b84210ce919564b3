import XCTest
import Foundation

/// Just enough of a safetensors reader for the planted fixtures and exported dictionaries: F32 and
/// F16 tensors, returned as Float (the test target links no qkdb library, so it reads the files
/// the way any outside tool would).
struct SafeTensorsF32 {
    let data: Data
    let header: [String: Any]
    let start: Int

    init(url: URL) throws {
        data = try Data(contentsOf: url)
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        header = try XCTUnwrap(JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any])
        start = 8 + n
    }

    func contains(_ name: String) -> Bool { header[name] != nil }

    func tensor(_ name: String) throws -> (shape: [Int], values: [Float]) {
        let entry = try XCTUnwrap(header[name] as? [String: Any], "no tensor \(name)")
        let dtype = try XCTUnwrap(entry["dtype"] as? String)
        let shape = try XCTUnwrap(entry["shape"] as? [Int])
        let offsets = try XCTUnwrap(entry["data_offsets"] as? [Int])
        let bytes = data.subdata(in: (start + offsets[0])..<(start + offsets[1]))
        let values: [Float] = try bytes.withUnsafeBytes { raw in
            switch dtype {
            case "F32": return (0..<(bytes.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
            case "F16": return (0..<(bytes.count / 2)).map { Self.half(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
            default: throw XCTSkip("tensor \(name): dtype \(dtype) not readable here")
            }
        }
        return (shape, values)
    }

    /// IEEE half → Float by hand (Float16 is not available on every platform Swift runs on).
    static func half(_ h: UInt16) -> Float {
        let sign: UInt32 = UInt32(h >> 15) << 31
        let exponent = Int((h >> 10) & 0x1f), mantissa = UInt32(h & 0x3ff)
        if exponent == 0 {
            let v = Float(mantissa) * Float(sign == 0 ? 1 : -1) / Float(1 << 24)   // zero or subnormal
            return v
        }
        if exponent == 31 { return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13)) }
        return Float(bitPattern: sign | (UInt32(exponent - 15 + 127) << 23) | (mantissa << 13))
    }
}

/// SplitMix64: a tiny seeded generator, so a planted corpus is the same on every run.
struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func pick<T>(_ xs: [T]) -> T { xs[Int(next() % UInt64(xs.count))] }
}
