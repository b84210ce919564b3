import Foundation
import QKTensor
import QKModels

/// Reads a `qkdb harvest` file: `tokens [batch, pos]` and, for layer L, `blocks.L.hook_attn_in`,
/// `blocks.L.attn.hook_q`, `blocks.L.attn.hook_k`, `blocks.L.attn.hook_pattern` (F32, F16 or BF16).
///
/// The file is memory-mapped and each sequence is decoded only when asked for, so harvests larger
/// than memory train fine. Head counts and size come from the shapes; whether the model is causal
/// and its RoPE base come from `config` if given, else from the file's metadata (`architecture`,
/// `rope_theta`), else the file is refused with a message saying what is missing.
public final class HarvestFileSource: ActivationSource {
    public let path: String
    public let layer: Int
    public let geometry: AttentionGeometry
    public let sequences: Int
    public let length: Int
    public let dModel: Int
    private let file: SafeTensorsFile
    private let names: [String]
    private var cursor = 0

    public init(path: String, layer: Int? = nil, config: ModelConfig? = nil) throws {
        file = try SafeTensorsFile(path: path)
        self.path = path
        let fail = { (m: String) in TrainError("harvest file \(path): \(m)") }
        let layers = Set(file.names.compactMap { n -> Int? in
            guard n.hasPrefix("blocks."), n.hasSuffix(".hook_attn_in") else { return nil }
            return Int(n.dropFirst("blocks.".count).prefix { $0 != "." })
        })
        guard let l = layer ?? (layers.count == 1 ? layers.first : nil) else {
            throw fail(layers.isEmpty ? "no blocks.L.hook_attn_in tensor (not a qkdb harvest file?)"
                                      : "holds layers \(layers.sorted()); say which with --layer")
        }
        self.layer = l
        names = ["attn_in", "q", "k", "pattern"].map { LayerCapture.hookName(l, $0) }
        for n in names where !file.contains(n) { throw fail("tensor \(n) is missing (harvested a different layer?)") }
        let a = try file.entry(names[0]).shape, q = try file.entry(names[1]).shape
        let k = try file.entry(names[2]).shape, p = try file.entry(names[3]).shape
        for n in names {
            let e = try file.entry(n)
            if !e.dtype.isFloat { throw fail("tensor \(n) has dtype \(e.dtype.rawValue), expected a float type") }
        }
        guard a.count == 3, q.count == 4, k.count == 4, p.count == 4 else {
            throw fail("hook shapes \(a), \(q), \(k), \(p) are not [b,pos,d], [b,pos,h,dh], [b,pos,kv,dh], [b,h,pos,pos]")
        }
        let b = a[0], t = a[1]
        guard b > 0, t > 0, q[0] == b, q[1] == t, k[0] == b, k[1] == t, k[3] == q[3], p == [b, q[2], t, t] else {
            throw fail("hook shapes disagree: attn_in \(a), q \(q), k \(k), pattern \(p)")
        }
        let causal: Bool, theta: Float?
        if let config {
            causal = config.architecture.isCausal; theta = config.ropeTheta
        } else if let archName = file.metadata["architecture"], let arch = Architecture(rawValue: archName) {
            causal = arch.isCausal; theta = file.metadata["rope_theta"].flatMap { Float($0) }
        } else {
            throw fail("metadata has no architecture (gpt2, bert or llama); pass the model so causal masking and RoPE are known")
        }
        geometry = AttentionGeometry(nHead: q[2], nKVHead: k[2], dHead: q[3], causal: causal, ropeTheta: theta)
        try geometry.validate()
        sequences = b; length = t; dModel = a[2]
    }

    public func nextSequence() throws -> TrainingBatch? {
        guard cursor < sequences else { return nil }
        defer { cursor += 1 }
        return try sequence(cursor)
    }

    public func rewind() throws { cursor = 0 }

    /// Sequence `i` decoded to Float32.
    public func sequence(_ i: Int) throws -> TrainingBatch {
        func slice(_ name: String) throws -> [Float] {
            let e = try file.entry(name)
            let per = e.count / sequences
            let raw = try file.rawBytes(name)
            var out = [Float](repeating: 0, count: per)
            let base = i * per
            switch e.dtype {
            case .f32:
                out.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[(4 * base)..<(4 * (base + per))])) }
            case .f16:
                for j in 0..<per { out[j] = HalfFloat.fromFP16(raw.loadUnaligned(fromByteOffset: 2 * (base + j), as: UInt16.self)) }
            case .bf16:
                for j in 0..<per { out[j] = HalfFloat.fromBF16(raw.loadUnaligned(fromByteOffset: 2 * (base + j), as: UInt16.self)) }
            case .f64:
                for j in 0..<per { out[j] = Float(raw.loadUnaligned(fromByteOffset: 8 * (base + j), as: Double.self)) }
            default:
                throw TrainError("harvest file \(path): tensor \(name) is not a float tensor")
            }
            return out
        }
        return TrainingBatch(x: try slice(names[0]), q: try slice(names[1]), k: try slice(names[2]),
                             pattern: try slice(names[3]), sequences: 1, length: length, dModel: dModel)
    }
}
