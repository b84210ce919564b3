import QKTensor
import QKModels

/// Whole sequences of one layer's activations, contiguous and row-major, ready for the loss:
/// x `[sequences·length, d_model]`, q `[…, n_head·d_head]`, k `[…, n_kv_head·d_head]` (pre-RoPE),
/// pattern `[sequences, n_head, length, length]`.
public struct TrainingBatch: Sendable {
    public var x: [Float], q: [Float], k: [Float], pattern: [Float]
    public var sequences: Int, length: Int, dModel: Int
    public var tokens: Int { sequences * length }

    public init(x: [Float], q: [Float], k: [Float], pattern: [Float], sequences: Int, length: Int, dModel: Int) {
        self.x = x; self.q = q; self.k = k; self.pattern = pattern
        self.sequences = sequences; self.length = length; self.dModel = dModel
    }

    /// Checks a capture's shapes against the geometry and flattens it (no copy of the storage).
    public init(_ c: LayerCapture, geometry g: AttentionGeometry) throws {
        let a = c.attnIn.shape, q = c.q.shape, k = c.k.shape, p = c.pattern.shape
        guard a.count == 3, a[0] > 0, a[1] > 0 else {
            throw TrainError("layer \(c.layer) capture: hook_attn_in has shape \(a), expected [batch, pos, d_model]")
        }
        let b = a[0], t = a[1]
        guard q == [b, t, g.nHead, g.dHead] else {
            throw TrainError("layer \(c.layer) capture: hook_q has shape \(q), expected \([b, t, g.nHead, g.dHead])")
        }
        guard k == [b, t, g.nKVHead, g.dHead] else {
            throw TrainError("layer \(c.layer) capture: hook_k has shape \(k), expected \([b, t, g.nKVHead, g.dHead])")
        }
        guard p == [b, g.nHead, t, t] else {
            throw TrainError("layer \(c.layer) capture: hook_pattern has shape \(p), expected \([b, g.nHead, t, t])")
        }
        self.init(x: c.attnIn.data, q: c.q.data, k: c.k.data, pattern: c.pattern.data, sequences: b, length: t, dModel: a[2])
    }

    /// Sequence `i` alone.
    public func sequence(_ i: Int) -> TrainingBatch {
        let t = length, qw = q.count / max(tokens, 1), kw = k.count / max(tokens, 1), pp = pattern.count / max(sequences, 1)
        return TrainingBatch(x: Array(x[(i * t * dModel)..<((i + 1) * t * dModel)]),
                             q: Array(q[(i * t * qw)..<((i + 1) * t * qw)]),
                             k: Array(k[(i * t * kw)..<((i + 1) * t * kw)]),
                             pattern: Array(pattern[(i * pp)..<((i + 1) * pp)]),
                             sequences: 1, length: t, dModel: dModel)
    }

    /// Sequences of equal length stacked into one batch.
    public static func stacking(_ parts: [TrainingBatch]) -> TrainingBatch {
        guard let f = parts.first else { return TrainingBatch(x: [], q: [], k: [], pattern: [], sequences: 0, length: 0, dModel: 0) }
        var out = TrainingBatch(x: [], q: [], k: [], pattern: [], sequences: 0, length: f.length, dModel: f.dModel)
        out.x.reserveCapacity(parts.count * f.x.count); out.q.reserveCapacity(parts.count * f.q.count)
        out.k.reserveCapacity(parts.count * f.k.count); out.pattern.reserveCapacity(parts.count * f.pattern.count)
        for p in parts {
            out.x += p.x; out.q += p.q; out.k += p.k; out.pattern += p.pattern; out.sequences += p.sequences
        }
        return out
    }
}
