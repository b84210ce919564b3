import Foundation
import QKTensor

/// BERT encoders (e.g. all-MiniLM-L6-v2): word + position + token-type embeddings with a
/// LayerNorm, then post-LayerNorm blocks with bidirectional attention and an erf-GELU MLP.
/// No LM head: the full forward pass ends at the last hidden state and its mean-pooled
/// sentence embedding (sentence-transformers' pooling).
///
/// Hooks: `hook_attn_in` of layer L is the residual stream entering it (layer L-1's output;
/// the embedding LayerNorm's output for L = 0). Token types are all 0.
public final class BertModel: CapturingTransformer, @unchecked Sendable {
    public let config: ModelConfig
    public let tokenizer: any Tokenizer
    public let source: String

    struct Block {
        /// `[d, 3d]`, the separate query/key/value Linears fused so one GEMM computes all three.
        let qkv: Linear
        let attnOut: Linear
        let attnNorm: LayerNormParams
        let intermediate: Linear
        let output: Linear
        let outputNorm: LayerNormParams
    }

    let wordEmbedding: Tensor       // [vocab, d]
    let positionEmbedding: Tensor   // [max_positions, d]
    let tokenType0: [Float]         // row 0 of the token-type table
    let embeddingNorm: LayerNormParams
    let blocks: [Block]
    let activation: Activation

    init(directory: String, configFile: HFConfig) throws {
        let c = configFile
        let d = try c.int("hidden_size"), nHead = try c.int("num_attention_heads")
        let nLayer = try c.int("num_hidden_layers"), vocab = try c.int("vocab_size")
        let nPos = try c.int("max_position_embeddings"), inner = try c.int("intermediate_size")
        let typeVocab = try c.int("type_vocab_size", default: 2)
        let eps = try c.positive("layer_norm_eps", default: 1e-12)
        guard d % nHead == 0 else { throw ModelError("\(c.path): hidden_size \(d) is not divisible by num_attention_heads \(nHead)") }
        let activationName = try c.string("hidden_act", default: "gelu")
        guard let a = Activation(huggingFaceName: activationName) else {
            throw ModelError("\(c.path): hidden_act '\(activationName)' is not supported (\(Activation.supportedNames))")
        }
        activation = a
        let posType = try c.string("position_embedding_type", default: "absolute")
        guard posType == "absolute" else {
            throw ModelError("\(c.path): position_embedding_type '\(posType)' is not supported (absolute)")
        }

        let w = try WeightReader(directory: directory, prefixes: ["bert.", ""], probe: "embeddings.word_embeddings.weight")
        try ConfigChecks.layers(nLayer, "num_hidden_layers", tensors: w.tensorCount, source: c.path)
        wordEmbedding = try w.tensor("embeddings.word_embeddings.weight", shape: [vocab, d])
        positionEmbedding = try w.tensor("embeddings.position_embeddings.weight", shape: [nPos, d])
        tokenType0 = Array(try w.tensor("embeddings.token_type_embeddings.weight", shape: [typeVocab, d]).data.prefix(d))
        embeddingNorm = try w.layerNorm("embeddings.LayerNorm", count: d, eps: eps)
        blocks = try (0..<nLayer).map { i in
            let p = "encoder.layer.\(i)."
            let q = try w.linearTransposed(p + "attention.self.query", inFeatures: d, outFeatures: d)
            let k = try w.linearTransposed(p + "attention.self.key", inFeatures: d, outFeatures: d)
            let v = try w.linearTransposed(p + "attention.self.value", inFeatures: d, outFeatures: d)
            return Block(qkv: fuseColumns([q, k, v]),
                         attnOut: try w.linearTransposed(p + "attention.output.dense", inFeatures: d, outFeatures: d),
                         attnNorm: try w.layerNorm(p + "attention.output.LayerNorm", count: d, eps: eps),
                         intermediate: try w.linearTransposed(p + "intermediate.dense", inFeatures: d, outFeatures: inner),
                         output: try w.linearTransposed(p + "output.dense", inFeatures: inner, outFeatures: d),
                         outputNorm: try w.layerNorm(p + "output.LayerNorm", count: d, eps: eps))
        }
        config = ModelConfig(architecture: .bert, nLayer: nLayer, dModel: d, nHead: nHead, nKVHead: nHead,
                             dHead: d / nHead, vocabSize: vocab, maxPositions: nPos, hasLMHead: false)
        source = directory
        tokenizer = tokenizerOrUnavailable(directory: directory, architecture: .bert, vocabSize: vocab)
    }

    public func capture(_ tokens: TokenBatch, layer: Int) throws -> LayerCapture {
        try ForwardChecks.layer(layer, config: config, source: source)
        return try run(tokens, captureLayer: layer, stopAfterCapture: true, patch: nil).capture!
    }

    public func forward(_ tokens: TokenBatch, patch: PatternPatch?) throws -> ModelOutput {
        try run(tokens, captureLayer: nil, stopAfterCapture: false, patch: patch).output!
    }

    public func forward(_ tokens: TokenBatch, patch: PatternPatch?, capturing layer: Int) throws -> (LayerCapture, ModelOutput) {
        try ForwardChecks.layer(layer, config: config, source: source)
        let r = try run(tokens, captureLayer: layer, stopAfterCapture: false, patch: patch)
        return (r.capture!, r.output!)
    }

    private func run(_ tokens: TokenBatch, captureLayer: Int?, stopAfterCapture: Bool,
                     patch: PatternPatch?) throws -> (capture: LayerCapture?, output: ModelOutput?) {
        try ForwardChecks.tokens(tokens, config: config, source: source)
        try ForwardChecks.patch(patch, tokens: tokens, config: config, source: source)
        let B = tokens.batch, T = tokens.length, d = config.dModel, H = config.nHead, dh = config.dHead
        let rows = B * T
        let x = ScratchBuffer(rows * d), a = ScratchBuffer(rows * d), qkv = ScratchBuffer(rows * 3 * d)
        let z = ScratchBuffer(rows * d), pattern = ScratchBuffer(B * H * T * T)
        let hidden = ScratchBuffer(rows * (blocks.first?.intermediate.outFeatures ?? 0))

        wordEmbedding.data.withUnsafeBufferPointer { we in
            positionEmbedding.data.withUnsafeBufferPointer { pe in
                tokenType0.withUnsafeBufferPointer { te in
                    Parallel.forRanges(rows, minimumPerChunk: 256) { range in
                        for r in range {
                            let dst = x.pointer + r * d, tok = we.baseAddress! + Int(tokens.ids[r]) * d
                            let pos = pe.baseAddress! + (r % T) * d, typ = te.baseAddress!
                            for j in 0..<d { dst[j] = tok[j] + pos[j] + typ[j] }
                        }
                    }
                }
            }
        }
        embeddingNorm.apply(x.pointer, rows: rows)

        var captured: LayerCapture?
        let scale = 1 / Float(dh).squareRoot()
        for (l, block) in blocks.enumerated() {
            let stopping = stopAfterCapture && l == captureLayer && patch?.layer != l
            block.qkv.apply(x.pointer, rows: rows, into: qkv.pointer, columns: stopping ? 0..<(2 * d) : nil)
            let kernel = AttentionKernel(batch: B, length: T, nHead: H, nKVHead: H, dHead: dh, causal: false, scale: scale)
            if let replacement = patch?.layer == l ? patch : nil {
                replacement.pattern.data.withUnsafeBufferPointer { rp in
                    kernel.run(q: qkv.pointer, qStride: 3 * d, k: qkv.pointer + d, kStride: 3 * d,
                               v: qkv.pointer + 2 * d, vStride: 3 * d, pattern: pattern.pointer,
                               replacement: rp.baseAddress!, z: z.pointer)
                }
            } else {
                kernel.run(q: qkv.pointer, qStride: 3 * d, k: qkv.pointer + d, kStride: 3 * d,
                           v: qkv.pointer + 2 * d, vStride: 3 * d, pattern: pattern.pointer,
                           replacement: nil, z: stopping ? nil : z.pointer)
            }
            if l == captureLayer {
                captured = LayerCapture(
                    layer: l,
                    attnIn: Tensor(shape: [B, T, d], data: x.array()),
                    q: Tensor(shape: [B, T, H, dh], data: copyColumns(qkv.pointer, rows: rows, stride: 3 * d, from: 0, columns: d)),
                    k: Tensor(shape: [B, T, H, dh], data: copyColumns(qkv.pointer, rows: rows, stride: 3 * d, from: d, columns: d)),
                    pattern: Tensor(shape: [B, H, T, T], data: pattern.array()))
                if stopping { return (captured, nil) }
            }
            // Post-LN: a = LN(z·Wo + bo + x); x = LN(gelu(a·Wi + bi)·Wo2 + bo2 + a).
            a.pointer.update(from: x.pointer, count: rows * d)
            block.attnOut.apply(z.pointer, rows: rows, into: a.pointer, accumulate: true)
            block.attnNorm.apply(a.pointer, rows: rows)
            block.intermediate.apply(a.pointer, rows: rows, into: hidden.pointer)
            activation.apply(hidden.pointer, count: rows * block.intermediate.outFeatures)
            x.pointer.update(from: a.pointer, count: rows * d)
            block.output.apply(hidden.pointer, rows: rows, into: x.pointer, accumulate: true)
            block.outputNorm.apply(x.pointer, rows: rows)
        }
        let output = ModelOutput(logits: nil, hidden: Tensor(shape: [B, T, d], data: x.array()),
                                 pooled: meanPool(x.pointer, batch: B, length: T, width: d))
        return (captured, output)
    }
}

/// Places several `[in, out_i]` Linears side by side as one `[in, Σ out_i]` Linear.
func fuseColumns(_ parts: [Linear]) -> Linear {
    let rows = parts[0].inFeatures, total = parts.reduce(0) { $0 + $1.outFeatures }
    var w = [Float](repeating: 0, count: rows * total)
    var bias: [Float] = []
    var col = 0
    for p in parts {
        let n = p.outFeatures
        for r in 0..<rows { for j in 0..<n { w[r * total + col + j] = p.weight.data[r * n + j] } }
        bias += p.bias ?? [Float](repeating: 0, count: n)
        col += n
    }
    return Linear(weight: Tensor(shape: [rows, total], data: w), bias: bias)
}
