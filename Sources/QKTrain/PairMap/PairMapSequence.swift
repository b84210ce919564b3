import QKTensor
import QKModels

/// One sequence as step 2 sees it: the sparse codes of both transcoders at every position and
/// the model's own attention pattern at the layer being decomposed.
///
/// Step 2 never needs the model, the text or the dense activations: everything it computes is a
/// sum over (query position, key position) of products of these codes, so the caller harvests
/// and encodes once and hands the codes over.
public struct PairMapSequence: Sendable {
    /// Query-transcoder codes, one row per position.
    public var query: SparseActivations
    /// Key-transcoder codes, one row per position.
    public var key: SparseActivations
    /// The model's pattern `[n_head, length, length]` (rows are query positions).
    public var pattern: Tensor

    public init(query: SparseActivations, key: SparseActivations, pattern: Tensor) {
        self.query = query; self.key = key; self.pattern = pattern
    }

    public var length: Int { query.rows }

    /// Checks shapes and feature indices once, so the hot loops can trust them.
    func validate(index: Int, queryWidth: Int, keyWidth: Int, nHead: Int) throws {
        let t = query.rows
        guard key.rows == t else {
            throw PairMapError("pair map: sequence \(index) has \(t) query rows but \(key.rows) key rows")
        }
        guard pattern.shape == [nHead, t, t] else {
            throw PairMapError("pair map: sequence \(index) pattern has shape \(pattern.shape), expected [\(nHead), \(t), \(t)]")
        }
        for (name, a, width) in [("query", query, queryWidth), ("key", key, keyWidth)] {
            guard a.width == width else {
                throw PairMapError("pair map: sequence \(index) \(name) codes have width \(a.width), the \(name) transcoder has \(width) features")
            }
            guard a.rowStart.count == t + 1, a.rowStart.first == 0, a.rowStart.last == a.indices.count,
                  a.values.count == a.indices.count else {
                throw PairMapError("pair map: sequence \(index) \(name) codes are not a valid CSR table")
            }
            for r in 0..<t where a.rowStart[r] > a.rowStart[r + 1] {
                throw PairMapError("pair map: sequence \(index) \(name) codes have a decreasing row start at position \(r)")
            }
            for f in a.indices where f < 0 || Int(f) >= width {
                throw PairMapError("pair map: sequence \(index) \(name) feature \(f) is outside 0..<\(width)")
            }
            for v in a.values where !v.isFinite {
                throw PairMapError("pair map: sequence \(index) \(name) codes contain a non-finite activation")
            }
        }
        for v in pattern.data where !(v >= 0 && v <= 1.0001) {
            throw PairMapError("pair map: sequence \(index) pattern has a value \(v) outside [0, 1]")
        }
    }
}

extension PairMapSequence {
    /// One `PairMapSequence` per batch row of a harvested layer: both transcoders encode the
    /// attention input (one GEMM each for the whole batch) and each row keeps its slice of the
    /// model's pattern.
    public static func sequences(from capture: LayerCapture, query: Transcoder, key: Transcoder) throws -> [PairMapSequence] {
        let x = capture.attnIn, pattern = capture.pattern
        guard x.rank == 3, pattern.rank == 4, pattern.shape[0] == x.shape[0],
              pattern.shape[2] == x.shape[1], pattern.shape[3] == x.shape[1] else {
            throw PairMapError("pair map: layer \(capture.layer) capture has attn_in \(x.shape) and pattern \(pattern.shape), which do not match")
        }
        guard x.shape[2] == query.dIn, x.shape[2] == key.dIn else {
            throw PairMapError("pair map: layer \(capture.layer) attn_in has width \(x.shape[2]), the transcoders read \(query.dIn) and \(key.dIn)")
        }
        let (batch, t) = (x.shape[0], x.shape[1])
        return sequences(rows: x.reshaped([batch * t, x.shape[2]]), patterns: pattern, length: t, query: query, key: key)
    }

    /// One `PairMapSequence` per sequence of a step-1 batch (the decoder fit's pair-map term).
    static func sequences(from batch: TrainingBatch, nHead: Int, query: Transcoder, key: Transcoder) -> [PairMapSequence] {
        let t = batch.length
        return sequences(rows: Tensor(shape: [batch.tokens, batch.dModel], data: batch.x),
                         patterns: Tensor(shape: [batch.sequences, nHead, t, t], data: batch.pattern),
                         length: t, query: query, key: key)
    }

    /// `rows` `[sequences·length, d_in]`, `patterns` `[sequences, n_head, length, length]`.
    private static func sequences(rows: Tensor, patterns: Tensor, length t: Int, query: Transcoder, key: Transcoder) -> [PairMapSequence] {
        let aq = query.encode(rows, sequenceLength: t), ak = key.encode(rows, sequenceLength: t)
        func slice(_ a: SparseActivations, _ b: Int) -> SparseActivations {
            let lo = a.rowStart[b * t], hi = a.rowStart[(b + 1) * t]
            return SparseActivations(rowStart: a.rowStart[(b * t)...((b + 1) * t)].map { $0 - lo },
                                     indices: Array(a.indices[lo..<hi]), values: Array(a.values[lo..<hi]), width: a.width)
        }
        return (0..<patterns.shape[0]).map { b in
            PairMapSequence(query: slice(aq, b), key: slice(ak, b), pattern: patterns.row(b))
        }
    }
}
