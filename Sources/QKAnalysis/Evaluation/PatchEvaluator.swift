import Foundation
import QKTensor
import QKModels

/// Evaluates how faithful a decomposition is by patching patterns into the model (DESIGN §4–5,
/// issue "Step 2 … evaluation"): the layer's attention pattern is replaced by the true one, the
/// transcoders' reconstruction, the pruned pair map's pattern, zero, or uniform attention, and the
/// model's own output measures the damage.
///
/// Models with an LM head are scored by next-token cross-entropy and by KL of the logits to the
/// clean run; sentence encoders (BERT) by the cosine of the mean-pooled embedding to the clean one.
/// In both cases "recovered" = (metric_ablation − metric_patch) / (metric_ablation − metric_clean),
/// with zero-ablation as the ablation.
public struct PatchEvaluator {
    /// A named pattern source: given a batch and its clean capture at the layer, the pattern to patch in.
    public struct Source {
        public var name: String
        public var pattern: (TokenBatch, LayerCapture) throws -> Tensor
        public init(name: String, pattern: @escaping (TokenBatch, LayerCapture) throws -> Tensor) {
            self.name = name; self.pattern = pattern
        }
    }

    /// Per-source results, averaged over the evaluated batches.
    public struct Result: Codable, Sendable {
        public var name: String
        /// Cross-entropy (LM models) or mean embedding cosine to clean (encoders).
        public var metric: Double
        /// KL of the logits to the clean run (LM models only).
        public var logitKL: Double?
        /// Fraction of the zero-ablation damage recovered.
        public var recovered: Double
    }

    public struct Report: Codable, Sendable {
        /// "cross_entropy" or "embedding_cosine".
        public var metricName: String
        public var clean: Double
        public var results: [Result]
        public var tokens: Int
    }

    public let model: any TransformerModel
    public let layer: Int

    public init(model: any TransformerModel, layer: Int) {
        self.model = model; self.layer = layer
    }

    /// Runs every source on every batch. The clean run and zero-ablation are always included
    /// (as "clean" and "zero"); "uniform" is added too.
    public func evaluate(batches: [TokenBatch], sources: [Source], progress: ((Int, Int) -> Void)? = nil) throws -> Report {
        let cfg = model.config
        let lm = cfg.hasLMHead
        let all: [Source] = [
            Source(name: "true") { _, c in c.pattern },
        ] + sources + [
            Source(name: "uniform") { b, _ in ReferencePatterns.uniform(batch: b.batch, heads: cfg.nHead, length: b.length, causal: cfg.architecture.isCausal) },
            Source(name: "zero") { b, _ in ReferencePatterns.zero(batch: b.batch, heads: cfg.nHead, length: b.length) },
        ]
        var cleanSum = 0.0
        var metricSums = [Double](repeating: 0, count: all.count)
        var klSums = [Double](repeating: 0, count: all.count)
        var weight = 0.0
        var tokens = 0
        for (bi, batch) in batches.enumerated() {
            // One pass gives both the clean output and the layer's capture where the model can.
            let (capture, clean): (LayerCapture, ModelOutput)
            if let m = model as? any CapturingTransformer {
                (capture, clean) = try m.forward(batch, patch: nil, capturing: layer)
            } else {
                clean = try model.forward(batch, patch: nil)
                capture = try model.capture(batch, layer: layer)
            }
            let w = Double(batch.batch)
            weight += w
            tokens += batch.batch * batch.length
            if lm, let logits = clean.logits {
                cleanSum += w * LossMetrics.crossEntropy(logits: logits, tokens: batch.ids)
            } else {
                cleanSum += w * 1.0
            }
            for (si, source) in all.enumerated() {
                let pattern = try source.pattern(batch, capture)
                let out = try model.forward(batch, patch: PatternPatch(layer: layer, pattern: pattern))
                if lm, let logits = out.logits, let cleanLogits = clean.logits {
                    metricSums[si] += w * LossMetrics.crossEntropy(logits: logits, tokens: batch.ids)
                    klSums[si] += w * LossMetrics.logitKL(clean: cleanLogits, patched: logits)
                } else {
                    metricSums[si] += w * LossMetrics.meanCosine(out.pooled, clean.pooled)
                }
            }
            progress?(bi + 1, batches.count)
        }
        let clean = cleanSum / max(weight, 1)
        let zeroMetric = metricSums[all.count - 1] / max(weight, 1)
        let results = all.enumerated().map { si, s -> Result in
            let m = metricSums[si] / max(weight, 1)
            return Result(name: s.name, metric: m, logitKL: lm ? klSums[si] / max(weight, 1) : nil,
                          recovered: LossMetrics.recovered(clean: clean, ablation: zeroMetric, patched: m))
        }
        return Report(metricName: lm ? "cross_entropy" : "embedding_cosine", clean: clean, results: results, tokens: tokens)
    }
}
