import QKTensor

/// An affine map y = x·W + b with W stored `[in, out]` (GPT-2's Conv1D layout). PyTorch
/// `nn.Linear` weights (`[out, in]`) are transposed once at load time, so every forward
/// product in the runtime is the same untransposed GEMM over all `batch·pos` rows at once.
struct Linear: Sendable {
    let weight: Tensor
    let bias: [Float]?
    var inFeatures: Int { weight.shape[0] }
    var outFeatures: Int { weight.shape[1] }

    init(weight: Tensor, bias: [Float]?) {
        self.weight = weight
        self.bias = bias
    }

    /// `out[rows, outFeatures] = x[rows, inFeatures]·W + b`, or `out += x·W + b` when `accumulate`
    /// (residual additions then cost no extra pass or buffer).
    func apply(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        let n = outFeatures
        if let bias {
            bias.withUnsafeBufferPointer { b in
                let bp = b.baseAddress!
                Parallel.forRanges(rows, minimumPerChunk: 256) { range in
                    for r in range {
                        let row = out + r * n
                        if accumulate { for j in 0..<n { row[j] += bp[j] } } else { row.update(from: bp, count: n) }
                    }
                }
            }
        }
        let beta: Float = (accumulate || bias != nil) ? 1 : 0
        weight.data.withUnsafeBufferPointer { w in
            BLAS.gemm(m: rows, n: n, k: inFeatures, x, w.baseAddress!, beta: beta, out)
        }
    }
}

/// LayerNorm parameters (gamma, beta, eps) applied in place to `[rows, n]`, rows spread over cores.
struct LayerNormParams: Sendable {
    let gamma: [Float]
    let beta: [Float]
    let eps: Float

    func apply(_ x: UnsafeMutablePointer<Float>, rows: Int) {
        let n = gamma.count
        gamma.withUnsafeBufferPointer { g in
            beta.withUnsafeBufferPointer { b in
                Parallel.forRanges(rows, minimumPerChunk: 64) { range in
                    Ops.layerNormRows(x + range.lowerBound * n, rows: range.count, n: n,
                                      gamma: g.baseAddress!, beta: b.baseAddress!, eps: eps)
                }
            }
        }
    }
}

/// Element-wise activations over a whole buffer, split across cores.
enum Activation: String, Sendable {
    /// GPT-2's `gelu_new` (tanh approximation).
    case geluTanh
    /// BERT's `gelu` (exact, erf).
    case geluErf

    func apply(_ x: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count, minimumPerChunk: 16_384) { range in
            switch self {
            case .geluTanh: VectorMath.geluTanh(x + range.lowerBound, count: range.count)
            case .geluErf: VectorMath.geluErf(x + range.lowerBound, count: range.count)
            }
        }
    }
}
