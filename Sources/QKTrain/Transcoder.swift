import QKTensor

/// How a transcoder turns pre-activations into sparse codes.
public enum TranscoderActivation: Sendable, Equatable, Codable {
    /// ReLU, trained with the decoder-norm-weighted sqrt penalty of the reference code.
    case relu
    /// Keep the k largest pre-activations (after ReLU): fixes L0 at ≤ k.
    case topK(Int)
}

/// A sparse transcoder: reads the attention input x (d_model) and reconstructs q or k (d_out).
///
///     a    = act(x · W_enc + b_enc)      W_enc [d_model, d_hidden]
///     out  = a · W_dec + b_dec            W_dec [d_hidden, d_out]
///
/// For the query transcoder d_out = n_head·d_head; for the key transcoder n_kv_head·d_head.
/// Shapes follow SAELens' layout, so export is a direct copy.
public struct Transcoder: Sendable, Equatable {
    public var wEnc: Tensor
    public var bEnc: Tensor
    public var wDec: Tensor
    public var bDec: Tensor
    public var activation: TranscoderActivation
    /// The key dictionary's first-position feature, when it has one: fixed to activation 1 at the
    /// first position of every sequence and 0 elsewhere (its encoder weights are unused).
    public var firstPositionFeature: Int?

    public var dIn: Int { wEnc.shape[0] }
    public var dHidden: Int { wEnc.shape[1] }
    public var dOut: Int { wDec.shape[1] }

    public init(wEnc: Tensor, bEnc: Tensor, wDec: Tensor, bDec: Tensor, activation: TranscoderActivation,
                firstPositionFeature: Int? = nil) {
        precondition(wEnc.rank == 2 && wDec.rank == 2 && wEnc.shape[1] == wDec.shape[0])
        precondition(bEnc.count == wEnc.shape[1] && bDec.count == wDec.shape[1])
        precondition(firstPositionFeature.map { $0 >= 0 && $0 < wEnc.shape[1] } ?? true)
        self.wEnc = wEnc; self.bEnc = bEnc; self.wDec = wDec; self.bDec = bDec; self.activation = activation
        self.firstPositionFeature = firstPositionFeature
    }

    /// Encodes `[rows, d_in]` inputs, whole sequences of `sequenceLength` positions back to back,
    /// into sparse activations (one dense GEMM, then sparsify; then the first-position feature).
    public func encode(_ x: Tensor, sequenceLength: Int) -> SparseActivations {
        let codes = encodeRows(x)
        guard let f = firstPositionFeature else { return codes }
        return codes.fixingFirstPosition(feature: f, sequenceLength: sequenceLength)
    }

    /// The encoder alone, row by row, without the first-position feature.
    private func encodeRows(_ x: Tensor) -> SparseActivations {
        let pre = x.reshaped([x.count / dIn, dIn]).matmul(wEnc, bias: bEnc)
        var out = SparseActivations(width: dHidden)
        out.indices.reserveCapacity(pre.shape[0] * 32); out.values.reserveCapacity(pre.shape[0] * 32)
        pre.data.withUnsafeBufferPointer { p in
            switch activation {
            case .relu:
                for r in 0..<pre.shape[0] { out.appendRow(dense: p.baseAddress! + r * dHidden) }
            case .topK(let k):
                var row = [Float](repeating: 0, count: dHidden)
                for r in 0..<pre.shape[0] {
                    let base = p.baseAddress! + r * dHidden
                    let order = (0..<dHidden).sorted { base[$0] > base[$1] }
                    for i in 0..<dHidden { row[i] = 0 }
                    for i in order.prefix(k) where base[i] > 0 { row[i] = base[i] }
                    row.withUnsafeBufferPointer { out.appendRow(dense: $0.baseAddress!) }
                }
            }
        }
        return out
    }

    /// Decodes sparse activations to `[rows, d_out]` (touches only active decoder rows).
    public func decode(_ a: SparseActivations) -> Tensor {
        var out = Tensor(zeros: [a.rows, dOut])
        let n = dOut
        out.data.withUnsafeMutableBufferPointer { o in
            wDec.data.withUnsafeBufferPointer { w in
                bDec.data.withUnsafeBufferPointer { b in
                    for r in 0..<a.rows {
                        let dst = o.baseAddress! + r * n
                        dst.update(from: b.baseAddress!, count: n)
                        for e in a.rowStart[r]..<a.rowStart[r + 1] {
                            BLAS.axpy(n, a.values[e], w.baseAddress! + Int(a.indices[e]) * n, dst)
                        }
                    }
                }
            }
        }
        return out
    }
}
