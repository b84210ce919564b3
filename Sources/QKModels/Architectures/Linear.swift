import Foundation
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
    /// (residual additions then cost no extra pass or buffer). With `columns`, only those output
    /// columns are computed (in place within the full-width `out` rows): a capture that stops at
    /// layer L needs q and k from the fused projection, not v.
    func apply(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>,
               accumulate: Bool = false, columns: Range<Int>? = nil) {
        let ld = outFeatures
        let cols = columns ?? 0..<ld
        let n = cols.count
        if let bias {
            bias.withUnsafeBufferPointer { b in
                let bp = b.baseAddress! + cols.lowerBound
                Parallel.forRanges(rows, minimumPerChunk: 256) { range in
                    for r in range {
                        let row = out + r * ld + cols.lowerBound
                        if accumulate { for j in 0..<n { row[j] += bp[j] } } else { row.update(from: bp, count: n) }
                    }
                }
            }
        }
        let beta: Float = (accumulate || bias != nil) ? 1 : 0
        weight.data.withUnsafeBufferPointer { w in
            BLAS.gemm(m: rows, n: n, k: inFeatures, x, lda: inFeatures, w.baseAddress! + cols.lowerBound, ldb: ld,
                      beta: beta, out + cols.lowerBound, ldc: ld)
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
    /// `quick_gelu`: x·sigmoid(1.702·x).
    case quickGelu
    case relu
    /// `silu` / `swish`: x·sigmoid(x).
    case silu

    /// The activation a Hugging Face config names (`activation_function`, `hidden_act`).
    init?(huggingFaceName name: String) {
        switch name {
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": self = .geluTanh
        case "gelu", "gelu_python": self = .geluErf
        case "quick_gelu": self = .quickGelu
        case "relu": self = .relu
        case "silu", "swish": self = .silu
        default: return nil
        }
    }

    static let supportedNames = "gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, quick_gelu, relu, silu, swish"

    func apply(_ x: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count, minimumPerChunk: 16_384) { range in
            let p = x + range.lowerBound, n = range.count
            switch self {
            case .geluTanh: VectorMath.geluTanh(p, count: n)
            case .geluErf: VectorMath.geluErf(p, count: n)
            case .quickGelu: for i in 0..<n { let v = p[i]; p[i] = v / (1 + expf(-1.702 * v)) }
            case .relu: for i in 0..<n where p[i] < 0 { p[i] = 0 }
            case .silu: Ops.silu(p, count: n)
            }
        }
    }
}
