import Foundation
import QKTensor

/// Runs a model over token sequences and collects one layer's hook tensors (DESIGN §3).
public struct Harvester {
    public let model: any TransformerModel
    public let layer: Int
    /// Sequences per forward pass: one GEMM covers `batchSize · context` rows.
    public let batchSize: Int

    public init(model: any TransformerModel, layer: Int, batchSize: Int = 32) throws {
        try ForwardChecks.layer(layer, config: model.config, source: model.source)
        guard batchSize >= 1 else { throw ModelError("batch size must be at least 1, got \(batchSize)") }
        self.model = model; self.layer = layer; self.batchSize = batchSize
    }

    /// On-the-fly harvesting: each call to `next()` runs one batch to `layer` and returns its
    /// tokens and capture (the trainer consumes this instead of a file).
    public func stream(_ sequences: SequenceSet) -> CaptureStream {
        CaptureStream(model: model, layer: layer, batches: sequences.batches(size: batchSize))
    }

    public struct Summary: Sendable {
        public var sequences: Int
        public var context: Int
        public var seconds: Double
        public var tokensPerSecond: Double { seconds > 0 ? Double(sequences * context) / seconds : 0 }
    }

    /// Harvests every sequence into a `.safetensors` file at `path`: `tokens` `[n, ctx]` I32,
    /// `blocks.L.hook_attn_in`, `blocks.L.attn.hook_q`, `blocks.L.attn.hook_k`,
    /// `blocks.L.attn.hook_pattern` (F32, shapes of DESIGN §3), and `logits` `[n, ctx, vocab]`
    /// when `logits` is set. Written batch by batch; no file is left behind on failure. An existing
    /// file other than an earlier harvest is refused unless `force`.
    /// `progress` is called after each batch with the number of sequences done so far.
    public func harvest(_ sequences: SequenceSet, logits: Bool, to path: String, force: Bool = false,
                        progress: ((Int) -> Void)? = nil) throws -> Summary {
        let c = model.config, n = sequences.count, T = sequences.context
        guard n > 0 else { throw ModelError("nothing to harvest: no sequences") }
        if logits && !c.hasLMHead {
            throw ModelError("\(model.source): the model has no LM head, so --logits cannot be written")
        }
        // Check every id before creating the output, so bad input fails without touching disk.
        try ForwardChecks.tokens(TokenBatch(ids: sequences.ids, batch: n, length: T), config: c, source: model.source)
        var columns: [HarvestWriter.Column] = [
            .init(name: "tokens", dtype: .i32, shape: [n, T]),
            .init(name: LayerCapture.hookName(layer, "attn_in"), dtype: .f32, shape: [n, T, c.dModel]),
            .init(name: LayerCapture.hookName(layer, "q"), dtype: .f32, shape: [n, T, c.nHead, c.dHead]),
            .init(name: LayerCapture.hookName(layer, "k"), dtype: .f32, shape: [n, T, c.nKVHead, c.dHead]),
            .init(name: LayerCapture.hookName(layer, "pattern"), dtype: .f32, shape: [n, c.nHead, T, T]),
        ]
        if logits { columns.append(.init(name: "logits", dtype: .f32, shape: [n, T, c.vocabSize])) }
        // Logits dominate memory (GPT-2: 50257 floats per token, 0.8 GB for a 32×128 batch), so
        // with --logits the batch shrinks to keep each batch's logits near 256 MB.
        let logitBytesPerSequence = T * c.vocabSize * 4
        let effectiveBatch = logits ? max(1, min(batchSize, (256 << 20) / max(1, logitBytesPerSequence))) : batchSize
        let writer = try HarvestWriter(path: path, columns: columns, force: force)
        let start = Date()
        do {
            var first = 0
            for batch in sequences.batches(size: effectiveBatch) {
                let capture: LayerCapture
                var output: ModelOutput?
                if logits {
                    if let both = model as? CapturingTransformer {
                        (capture, output) = try both.forward(batch, patch: nil, capturing: layer)
                    } else {
                        capture = try model.capture(batch, layer: layer)
                        output = try model.forward(batch, patch: nil)
                    }
                } else {
                    capture = try model.capture(batch, layer: layer)
                }
                try writer.write("tokens", firstSequence: first, int32: batch.ids)
                try writer.write(columns[1].name, firstSequence: first, floats: capture.attnIn.data)
                try writer.write(columns[2].name, firstSequence: first, floats: capture.q.data)
                try writer.write(columns[3].name, firstSequence: first, floats: capture.k.data)
                try writer.write(columns[4].name, firstSequence: first, floats: capture.pattern.data)
                if let l = output?.logits { try writer.write("logits", firstSequence: first, floats: l.data) }
                first += batch.batch
                progress?(first)
            }
            try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
        return Summary(sequences: n, context: T, seconds: Date().timeIntervalSince(start))
    }
}

/// Batches of captures computed on demand (see `Harvester.stream`).
public struct CaptureStream {
    let model: any TransformerModel
    let layer: Int
    var batches: TokenBatches

    /// The next batch's tokens and capture, or nil when the sequences are exhausted.
    public mutating func next() throws -> (tokens: TokenBatch, capture: LayerCapture)? {
        guard let batch = batches.next() else { return nil }
        return (batch, try model.capture(batch, layer: layer))
    }
}
