import QKTensor
import QKModels

/// Builders of the reference patterns that evaluation patches into a layer.
public enum ReferencePatterns {
    /// Uniform attention over allowed keys: 1/(p+1) on causal models, 1/n on BERT.
    public static func uniform(batch: Int, heads: Int, length: Int, causal: Bool) -> Tensor {
        var t = Tensor(zeros: [batch, heads, length, length])
        t.data.withUnsafeMutableBufferPointer { d in
            for bh in 0..<(batch * heads) {
                for p in 0..<length {
                    let row = d.baseAddress! + (bh * length + p) * length
                    let n = causal ? p + 1 : length
                    let v = 1 / Float(n)
                    for s in 0..<n { row[s] = v }
                }
            }
        }
        return t
    }

    /// All-zero pattern: the layer's attention output becomes just its output bias.
    public static func zero(batch: Int, heads: Int, length: Int) -> Tensor {
        Tensor(zeros: [batch, heads, length, length])
    }
}
