import Foundation
import QKTensor

/// The scalar measures evaluation compares patched runs with: next-token cross-entropy and
/// logit KL for models with an LM head, embedding cosine for sentence encoders.
public enum LossMetrics {
    /// Mean next-token cross-entropy (nats) over positions 0..<length-1 of every sequence.
    /// `logits` is `[batch, length, vocab]`, `tokens` `[batch, length]`.
    public static func crossEntropy(logits: Tensor, tokens: [Int32]) -> Double {
        let (b, n, v) = (logits.shape[0], logits.shape[1], logits.shape[2])
        guard n > 1 else { return 0 }
        var total = 0.0
        logits.data.withUnsafeBufferPointer { l in
            for s in 0..<b {
                for p in 0..<(n - 1) {
                    let row = l.baseAddress! + (s * n + p) * v
                    total += Double(logSumExp(row, v) - row[Int(tokens[s * n + p + 1])])
                }
            }
        }
        return total / Double(b * (n - 1))
    }

    /// Mean over positions of KL(softmax(clean) ‖ softmax(patched)), nats.
    public static func logitKL(clean: Tensor, patched: Tensor) -> Double {
        let v = clean.shape.last!
        let rows = clean.count / v
        var total = 0.0
        clean.data.withUnsafeBufferPointer { c in
            patched.data.withUnsafeBufferPointer { q in
                for r in 0..<rows {
                    let a = c.baseAddress! + r * v, b = q.baseAddress! + r * v
                    let la = logSumExp(a, v), lb = logSumExp(b, v)
                    var kl = 0.0
                    for i in 0..<v {
                        let lpa = Double(a[i] - la)
                        kl += exp(lpa) * (lpa - Double(b[i] - lb))
                    }
                    total += max(kl, 0)
                }
            }
        }
        return total / Double(rows)
    }

    /// Mean cosine similarity between matching rows of two `[batch, d]` embeddings.
    public static func meanCosine(_ a: Tensor, _ b: Tensor) -> Double {
        let d = a.shape.last!
        let rows = a.count / d
        var total = 0.0
        for r in 0..<rows {
            var dot = 0.0, na = 0.0, nb = 0.0
            for i in 0..<d {
                let x = Double(a.data[r * d + i]), y = Double(b.data[r * d + i])
                dot += x * y; na += x * x; nb += y * y
            }
            total += dot / max(sqrt(na * nb), 1e-30)
        }
        return total / Double(rows)
    }

    /// The fraction of the ablation's damage that a patch recovers:
    /// (metric_ablation − metric_patch) / (metric_ablation − metric_clean) for a loss,
    /// which is the same formula for a similarity with clean = 1.
    public static func recovered(clean: Double, ablation: Double, patched: Double) -> Double {
        let gap = ablation - clean
        return abs(gap) < 1e-12 ? .nan : (ablation - patched) / gap
    }

    static func logSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = -Float.infinity
        for i in 0..<n where x[i] > m { m = x[i] }
        var s: Float = 0
        for i in 0..<n { s += expf(x[i] - m) }
        return m + logf(s)
    }
}
