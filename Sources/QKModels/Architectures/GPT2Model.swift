import Foundation
import QKTensor

/// GPT-2 (Hugging Face layout): learned absolute positions, pre-LayerNorm blocks, fused QKV
/// `Conv1D` (`[d, 3d]`), `gelu_new` MLP, final LayerNorm, LM head tied to the token embedding.
///
/// Hooks: `hook_attn_in` is the output of `ln_1` (what W_Q and W_K multiply); q and k include
/// their biases; the pattern is the causal softmax of q·kᵀ/sqrt(d_head).
public final class GPT2Model: CapturingTransformer, @unchecked Sendable {
    public let config: ModelConfig
    public let tokenizer: any Tokenizer
    public let source: String

    struct Block {
        let ln1: LayerNormParams
        /// `[d, 3d]`: columns are q | k | v.
        let qkv: Linear
        let attnOut: Linear
        let ln2: LayerNormParams
        let fc: Linear
        let proj: Linear
    }

    let tokenEmbedding: Tensor      // [vocab, d]
    /// `[vocab, d]`: `lm_head.weight` when the checkpoint has its own, else the tied `wte`.
    let lmHead: Tensor
    let positionEmbedding: Tensor   // [n_positions, d]
    let blocks: [Block]
    let finalNorm: LayerNormParams
    let activation: Activation
    /// GPT-2 option: layer i's scores are further divided by (i + 1).
    let scaleByInverseLayer: Bool
    let scaleWeights: Bool

    /// Loads `config.json` + `model.safetensors` from a Hugging Face GPT-2 directory.
    init(directory: String, configFile: HFConfig) throws {
        let c = configFile
        let d = try c.int("n_embd", "hidden_size"), nHead = try c.int("n_head", "num_attention_heads")
        let nLayer = try c.int("n_layer", "num_hidden_layers"), vocab = try c.int("vocab_size")
        let nPos = try c.int("n_positions", "n_ctx", "max_position_embeddings")
        let inner = try c.int("n_inner", default: 4 * d)
        let eps = try c.positive("layer_norm_epsilon", default: 1e-5)
        guard d % nHead == 0 else { throw ModelError("\(c.path): n_embd \(d) is not divisible by n_head \(nHead)") }
        let activationName = try c.string("activation_function", default: "gelu_new")
        guard let a = Activation(huggingFaceName: activationName) else {
            throw ModelError("\(c.path): activation_function '\(activationName)' is not supported (\(Activation.supportedNames))")
        }
        activation = a
        scaleByInverseLayer = c.bool("scale_attn_by_inverse_layer_idx", default: false)
        scaleWeights = c.bool("scale_attn_weights", default: true)

        let w = try WeightReader(directory: directory, prefixes: ["transformer.", ""], probe: "wte.weight")
        try ConfigChecks.layers(nLayer, "n_layer", tensors: w.tensorCount, source: c.path)
        tokenEmbedding = try w.tensor("wte.weight", shape: [vocab, d])
        positionEmbedding = try w.tensor("wpe.weight", shape: [nPos, d])
        if w.contains("lm_head.weight") {
            let holder = try w.fileHolding("lm_head.weight")
            let head = try holder.floatTensor("lm_head.weight")
            guard head.shape == [vocab, d] else {
                throw ModelError("\(holder.path): tensor 'lm_head.weight' has shape \(head.shape), config.json implies \([vocab, d])")
            }
            lmHead = head
        } else {
            lmHead = tokenEmbedding
        }
        blocks = try (0..<nLayer).map { i in
            let p = "h.\(i)."
            return Block(ln1: try w.layerNorm(p + "ln_1", count: d, eps: eps),
                         qkv: try w.conv1D(p + "attn.c_attn", inFeatures: d, outFeatures: 3 * d),
                         attnOut: try w.conv1D(p + "attn.c_proj", inFeatures: d, outFeatures: d),
                         ln2: try w.layerNorm(p + "ln_2", count: d, eps: eps),
                         fc: try w.conv1D(p + "mlp.c_fc", inFeatures: d, outFeatures: inner),
                         proj: try w.conv1D(p + "mlp.c_proj", inFeatures: inner, outFeatures: d))
        }
        finalNorm = try w.layerNorm("ln_f", count: d, eps: eps)
        config = ModelConfig(architecture: .gpt2, nLayer: nLayer, dModel: d, nHead: nHead, nKVHead: nHead,
                             dHead: d / nHead, vocabSize: vocab, maxPositions: nPos, hasLMHead: true)
        source = directory
        tokenizer = tokenizerOrUnavailable(directory: directory, architecture: .gpt2, vocabSize: vocab)
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
        let hidden = ScratchBuffer(rows * (blocks.first?.fc.outFeatures ?? 0))

        // Embeddings: token + learned position.
        tokenEmbedding.data.withUnsafeBufferPointer { wte in
            positionEmbedding.data.withUnsafeBufferPointer { wpe in
                Parallel.forRanges(rows, minimumPerChunk: 256) { range in
                    for r in range {
                        let dst = x.pointer + r * d, tok = wte.baseAddress! + Int(tokens.ids[r]) * d
                        let pos = wpe.baseAddress! + (r % T) * d
                        for j in 0..<d { dst[j] = tok[j] + pos[j] }
                    }
                }
            }
        }

        var captured: LayerCapture?
        for (l, block) in blocks.enumerated() {
            a.pointer.update(from: x.pointer, count: rows * d)
            block.ln1.apply(a.pointer, rows: rows)
            let stopping = stopAfterCapture && l == captureLayer && patch?.layer != l
            block.qkv.apply(a.pointer, rows: rows, into: qkv.pointer, columns: stopping ? 0..<(2 * d) : nil)
            var scale: Float = scaleWeights ? 1 / Float(dh).squareRoot() : 1
            if scaleByInverseLayer { scale /= Float(l + 1) }
            let kernel = AttentionKernel(batch: B, length: T, nHead: H, nKVHead: H, dHead: dh, causal: true, scale: scale)
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
                    attnIn: Tensor(shape: [B, T, d], data: a.array()),
                    q: Tensor(shape: [B, T, H, dh], data: copyColumns(qkv.pointer, rows: rows, stride: 3 * d, from: 0, columns: d)),
                    k: Tensor(shape: [B, T, H, dh], data: copyColumns(qkv.pointer, rows: rows, stride: 3 * d, from: d, columns: d)),
                    pattern: Tensor(shape: [B, H, T, T], data: pattern.array()))
                if stopping { return (captured, nil) }
            }
            block.attnOut.apply(z.pointer, rows: rows, into: x.pointer, accumulate: true)
            a.pointer.update(from: x.pointer, count: rows * d)
            block.ln2.apply(a.pointer, rows: rows)
            block.fc.apply(a.pointer, rows: rows, into: hidden.pointer)
            activation.apply(hidden.pointer, count: rows * block.fc.outFeatures)
            block.proj.apply(hidden.pointer, rows: rows, into: x.pointer, accumulate: true)
        }
        finalNorm.apply(x.pointer, rows: rows)
        var logits = Tensor(zeros: [B, T, config.vocabSize])
        lmHead.data.withUnsafeBufferPointer { wte in
            logits.data.withUnsafeMutableBufferPointer { lg in
                BLAS.gemm(transB: true, m: rows, n: config.vocabSize, k: d, x.pointer, wte.baseAddress!, beta: 0, lg.baseAddress!)
            }
        }
        let output = ModelOutput(logits: logits, hidden: Tensor(shape: [B, T, d], data: x.array()),
                                 pooled: meanPool(x.pointer, batch: B, length: T, width: d))
        return (captured, output)
    }
}
