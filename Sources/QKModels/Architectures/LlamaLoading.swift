import Foundation
import QKTensor

/// Builds a `LlamaModel`'s config and weights from a GGUF file or a Hugging Face directory.
extension LlamaModel {
    /// What `Tokenizer`-independent facts a GGUF file states about its tokens: the BOS id and
    /// whether llama.cpp prepends it by default (`tokenizer.ggml.add_bos_token`).
    struct BOSInfo { var id: Int32?; var addByDefault: Bool }

    static func readGGUF(_ file: GGUFFile) throws -> (ModelConfig, LlamaWeights, BOSInfo) {
        let path = file.path
        let arch = try file.string("general.architecture")
        guard arch == "llama" else {
            throw ModelError("\(path): GGUF architecture '\(arch)' is not supported (only 'llama')")
        }
        let nLayer = try file.int("llama.block_count")
        let d = try file.int("llama.embedding_length")
        let nHead = try file.int("llama.attention.head_count")
        let nKV = file["llama.attention.head_count_kv"]?.int ?? nHead
        let dFF = try file.int("llama.feed_forward_length")
        let epsKey = "llama.attention.layer_norm_rms_epsilon", thetaKey = "llama.rope.freq_base"
        let eps = try ConfigChecks.positive(Float(try file.double(epsKey)), epsKey, source: path, found: try file.double(epsKey))
        let theta = try ConfigChecks.positive(Float(file[thetaKey]?.double ?? 10000), thetaKey, source: path, found: file[thetaKey]?.double ?? 10000)
        let ctx = file["llama.context_length"]?.int ?? 2048
        // Head size: `key_length` when the file states it (it may differ from d_model / n_head).
        let dHead = file["llama.attention.key_length"]?.int ?? (nHead > 0 ? d / nHead : 0)
        guard nLayer > 0, d > 0, nHead > 0, nKV > 0, nHead % nKV == 0, dHead > 0, dHead % 2 == 0,
              file["llama.attention.key_length"] != nil || d % nHead == 0 else {
            throw ModelError("\(path): inconsistent GGUF dimensions (d_model \(d), heads \(nHead), kv heads \(nKV), head size \(dHead), layers \(nLayer))")
        }
        try ConfigChecks.layers(nLayer, "llama.block_count", tensors: file.tensors.count, source: path)
        if let v = file["llama.attention.value_length"]?.int, v != dHead {
            throw ModelError("\(path): value head size \(v) differs from key head size \(dHead); not supported")
        }
        if let ropeDims = file["llama.rope.dimension_count"]?.int, ropeDims != dHead {
            throw ModelError("\(path): partial RoPE (\(ropeDims) of \(dHead) head dims) is not supported")
        }
        let embInfo = try file.info("token_embd.weight")
        guard embInfo.shape.count == 2, embInfo.shape[1] == d else {
            throw ModelError("\(path): tensor 'token_embd.weight' has shape \(embInfo.shape), expected [vocab, \(d)]")
        }
        let vocab = file["llama.vocab_size"]?.int ?? embInfo.shape[0]
        let hasOutput = file.contains("output.weight")

        let reader = LlamaWeightReader(source: path) { name in file.contains(name) ? try file.tensor(name) : nil }
        let qDim = nHead * dHead, kvDim = nKV * dHead
        let layers = try (0..<nLayer).map { l -> LlamaLayerWeights in
            let p = "blk.\(l)."
            let q = LlamaGGUFLayout.unpermuteRows(try reader.tensor(p + "attn_q.weight", [qDim, d]), heads: nHead, dHead: dHead, columns: d)
            let k = LlamaGGUFLayout.unpermuteRows(try reader.tensor(p + "attn_k.weight", [kvDim, d]), heads: nKV, dHead: dHead, columns: d)
            return LlamaLayerWeights(
                attnNorm: try reader.tensor(p + "attn_norm.weight", [d]),
                qkv: q + k + (try reader.tensor(p + "attn_v.weight", [kvDim, d])),
                out: try reader.tensor(p + "attn_output.weight", [d, qDim]),
                ffnNorm: try reader.tensor(p + "ffn_norm.weight", [d]),
                gateUp: try reader.tensor(p + "ffn_gate.weight", [dFF, d]) + (try reader.tensor(p + "ffn_up.weight", [dFF, d])),
                down: try reader.tensor(p + "ffn_down.weight", [d, dFF]))
        }
        let weights = LlamaWeights(
            embedding: try reader.tensor("token_embd.weight", [vocab, d]), layers: layers,
            finalNorm: try reader.tensor("output_norm.weight", [d]),
            lmHead: hasOutput ? try reader.tensor("output.weight", [vocab, d]) : nil, dFF: dFF, rmsEps: eps)
        let config = ModelConfig(architecture: .llama, nLayer: nLayer, dModel: d, nHead: nHead, nKVHead: nKV, dHead: dHead,
                                 vocabSize: vocab, maxPositions: ctx, ropeTheta: theta, hasLMHead: true)
        let bosID = (file["tokenizer.ggml.bos_token_id"]?.int).flatMap { $0 < vocab ? Int32($0) : nil }
        // llama.cpp prepends BOS unless the file says not to (SmolLM2's does: add_bos_token = false).
        let bos = BOSInfo(id: bosID, addByDefault: bosID != nil && (file["tokenizer.ggml.add_bos_token"]?.bool ?? true))
        return (config, weights, bos)
    }

    static func readHuggingFace(directory: String) throws -> (ModelConfig, LlamaWeights, BOSInfo) {
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw ModelError("\(configPath): cannot read the model's config.json")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError("\(configPath): not a JSON object")
        }
        func int(_ key: String) throws -> Int {
            guard let v = JSONNumber.exactInt(json[key]) else { throw ModelError("\(configPath): '\(key)' is missing or not an integer") }
            return v
        }
        let d = try int("hidden_size"), nLayer = try int("num_hidden_layers"), nHead = try int("num_attention_heads")
        let nKV = json["num_key_value_heads"] == nil ? nHead : try int("num_key_value_heads")
        let dFF = try int("intermediate_size"), vocab = try int("vocab_size")
        let dHead = json["head_dim"] == nil ? d / max(nHead, 1) : try int("head_dim")
        guard nLayer > 0, d > 0, nHead > 0, nKV > 0, nHead % nKV == 0, dHead > 0, dHead % 2 == 0 else {
            throw ModelError("\(configPath): inconsistent dimensions (d_model \(d), heads \(nHead), kv heads \(nKV), head dim \(dHead))")
        }
        // transformers ≥ 5 nests RoPE settings in `rope_parameters`; older files use `rope_theta`/`rope_scaling`.
        let rope = (json["rope_parameters"] as? [String: Any]) ?? (json["rope_scaling"] as? [String: Any]) ?? [:]
        let ropeType = (rope["rope_type"] as? String) ?? (rope["type"] as? String) ?? "default"
        guard ropeType == "default" else {
            throw ModelError("\(configPath): RoPE type '\(ropeType)' is not supported (only the default RoPE)")
        }
        let thetaRaw: Any = rope["rope_theta"] ?? json["rope_theta"] ?? 10000
        let theta = try ConfigChecks.positive(JSONNumber.finite(thetaRaw).map(Float.init), "rope_theta", source: configPath, found: thetaRaw)
        let eps = try ConfigChecks.positive(JSONNumber.finite(json["rms_norm_eps"] ?? 1e-6).map(Float.init), "rms_norm_eps", source: configPath, found: json["rms_norm_eps"] ?? 1e-6)
        for flag in ["attention_bias", "mlp_bias"] where (json[flag] as? Bool) == true {
            throw ModelError("\(configPath): '\(flag)' is true; Llama models with biases are not supported")
        }
        if let act = json["hidden_act"] as? String, act != "silu" {
            throw ModelError("\(configPath): hidden_act '\(act)' is not supported (Llama uses silu)")
        }
        let tied = (json["tie_word_embeddings"] as? Bool) ?? false
        let weightsPath = (directory as NSString).appendingPathComponent("model.safetensors")
        let st = try SafeTensorsFile(path: weightsPath)
        try ConfigChecks.layers(nLayer, "num_hidden_layers", tensors: st.entries.count, source: configPath)
        let reader = LlamaWeightReader(source: weightsPath) { name in st.contains(name) ? try st.floatTensor(name) : nil }
        let qDim = nHead * dHead, kvDim = nKV * dHead
        let layers = try (0..<nLayer).map { l -> LlamaLayerWeights in
            let p = "model.layers.\(l)."
            return LlamaLayerWeights(
                attnNorm: try reader.tensor(p + "input_layernorm.weight", [d]),
                qkv: try reader.tensor(p + "self_attn.q_proj.weight", [qDim, d]) + (try reader.tensor(p + "self_attn.k_proj.weight", [kvDim, d]))
                    + (try reader.tensor(p + "self_attn.v_proj.weight", [kvDim, d])),
                out: try reader.tensor(p + "self_attn.o_proj.weight", [d, qDim]),
                ffnNorm: try reader.tensor(p + "post_attention_layernorm.weight", [d]),
                gateUp: try reader.tensor(p + "mlp.gate_proj.weight", [dFF, d]) + (try reader.tensor(p + "mlp.up_proj.weight", [dFF, d])),
                down: try reader.tensor(p + "mlp.down_proj.weight", [d, dFF]))
        }
        // An untied model must ship its head (transformers would otherwise start it at random).
        let head: [Float]? = tied ? nil : try reader.tensor("lm_head.weight", [vocab, d])
        let weights = LlamaWeights(embedding: try reader.tensor("model.embed_tokens.weight", [vocab, d]), layers: layers,
                                   finalNorm: try reader.tensor("model.norm.weight", [d]), lmHead: head, dFF: dFF, rmsEps: eps)
        let config = ModelConfig(architecture: .llama, nLayer: nLayer, dModel: d, nHead: nHead, nKVHead: nKV, dHead: dHead,
                                 vocabSize: vocab, maxPositions: (json["max_position_embeddings"] as? NSNumber)?.intValue ?? 2048,
                                 ropeTheta: theta, hasLMHead: true)
        let bosID = (json["bos_token_id"] as? NSNumber).flatMap { (0..<vocab).contains($0.intValue) ? Int32($0.intValue) : nil }
        let bos = BOSInfo(id: bosID, addByDefault: bosID != nil)
        return (config, weights, bos)
    }
}
