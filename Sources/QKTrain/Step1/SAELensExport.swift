import Foundation
import QKTensor

/// What SAELens' cfg.json needs beyond the weights: where the dictionary reads and writes.
public struct DictionaryExportInfo: Sendable {
    public var modelName: String
    public var layer: Int
    public var geometry: AttentionGeometry
    public var contextSize: Int
    public var datasetPath: String
    public var prependBOS: Bool
    /// Sparsity coefficients actually used at the end of training (ReLU dictionaries).
    public var lambdaQuery: Float, lambdaKey: Float
    /// How the decoders were fitted after training (`TrainingOptions.decoderFitDescription`), for
    /// cfg.json's `decoder_fit`; nil writes nothing.
    public var decoderFit: String? = nil
    public init(modelName: String, layer: Int, geometry: AttentionGeometry, contextSize: Int, datasetPath: String = "",
                prependBOS: Bool = true, lambdaQuery: Float = 0, lambdaKey: Float = 0) {
        self.modelName = modelName; self.layer = layer; self.geometry = geometry; self.contextSize = contextSize
        self.datasetPath = datasetPath; self.prependBOS = prependBOS; self.lambdaQuery = lambdaQuery; self.lambdaKey = lambdaKey
    }
}

/// Writes the two dictionaries in SAELens' on-disk layout:
///
///     DIR/query/{cfg.json, sae_weights.safetensors, sparsity.safetensors}
///     DIR/key/  {…}
///
/// `sae_weights` holds W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_out], b_dec [d_out];
/// `sparsity` holds `sparsity` [d_sae], log10 of each feature's firing density. The activations
/// are recomputed outside as `act(x @ W_enc + b_enc)` with x the `hook_name` activation (no input
/// centring, no normalisation): ReLU, or for TopK the k largest positive pre-activations.
/// Everything is written to a temporary folder first, so a failure leaves no partial export.
public enum SAELensExport {
    public static func write(query: Transcoder, key: Transcoder, log10DensityQuery: [Float], log10DensityKey: [Float],
                             info: DictionaryExportInfo, to dir: String) throws {
        let fm = FileManager.default
        let tmp = dir.hasSuffix("/") ? String(dir.dropLast()) + ".partial-\(getpid())" : dir + ".partial-\(getpid())"
        try? fm.removeItem(atPath: tmp)
        do {
            for (side, t, density, lambda) in [("query", query, log10DensityQuery, info.lambdaQuery), ("key", key, log10DensityKey, info.lambdaKey)] {
                guard density.count == t.dHidden else {
                    throw TrainError("export to \(dir): \(side) densities have \(density.count) entries for \(t.dHidden) features")
                }
                let sub = tmp + "/" + side
                try fm.createDirectory(atPath: sub, withIntermediateDirectories: true)
                var w = SafeTensorsWriter()
                w.add("W_enc", t.wEnc); w.add("b_enc", t.bEnc); w.add("W_dec", t.wDec); w.add("b_dec", t.bDec)
                try w.write(to: sub + "/sae_weights.safetensors")
                var s = SafeTensorsWriter()
                s.add("sparsity", shape: [t.dHidden], float32: density)
                try s.write(to: sub + "/sparsity.safetensors")
                let cfg = config(side: side, t, info: info, lambda: lambda)
                let data = try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys])
                try data.write(to: URL(fileURLWithPath: sub + "/cfg.json"))
            }
            if !fm.fileExists(atPath: dir) {
                try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            }
            for side in ["query", "key"] {
                let dest = dir + "/" + side
                if fm.fileExists(atPath: dest) { try fm.removeItem(atPath: dest) }
                try fm.moveItem(atPath: tmp + "/" + side, toPath: dest)
            }
            try? fm.removeItem(atPath: tmp)
        } catch let e as TrainError {
            try? fm.removeItem(atPath: tmp); throw e
        } catch {
            try? fm.removeItem(atPath: tmp)
            throw TrainError("export to \(dir): \(error.localizedDescription)")
        }
    }

    static func config(side: String, _ t: Transcoder, info: DictionaryExportInfo, lambda: Float) -> [String: Any] {
        let g = info.geometry
        var activation = "relu", kwargs: [String: Any] = [:], architecture = "standard"
        if case .topK(let k) = t.activation { activation = "topk"; kwargs = ["k": k]; architecture = "topk" }
        var cfg: [String: Any] = [
            "d_in": t.dIn, "d_sae": t.dHidden, "d_out": t.dOut,
            "architecture": architecture, "activation_fn_str": activation, "activation_fn_kwargs": kwargs,
            "apply_b_dec_to_input": false, "normalize_activations": "none", "dtype": "float32", "device": "cpu",
            "model_name": info.modelName, "hook_name": "blocks.\(info.layer).hook_attn_in", "hook_layer": info.layer,
            "hook_head_index": NSNull(),
            "hook_name_out": "blocks.\(info.layer).attn.hook_\(side == "query" ? "q" : "k")",
            "hook_layer_out": info.layer,
            "context_size": info.contextSize, "dataset_path": info.datasetPath, "prepend_bos": info.prependBOS,
            "transcoder": true, "qk_side": side,
            "n_heads": side == "query" ? g.nHead : g.nKVHead, "n_query_heads": g.nHead, "n_kv_heads": g.nKVHead, "d_head": g.dHead,
            "output_layout": "[n_heads, d_head] flattened, pre-RoPE (hook_q / hook_k)",
            "rope_theta": g.ropeTheta.map { Double($0) } ?? NSNull(), "causal": g.causal,
            "produced_by": "qkdb step 1 (query/key transcoders trained on attention-pattern KL)",
        ]
        if let f = t.firstPositionFeature {
            cfg["first_position_feature"] = f
            cfg["first_position_feature_note"] = "qkdb sets feature \(f) rather than encoding it: activation 1 at the first position of each sequence, 0 elsewhere. Its W_enc column and b_enc reproduce that (about 1 on first-position inputs, negative elsewhere) when the first position's inputs stand apart from the rest, as [CLS] and BOS do; otherwise they are zero and -1e4"
        }
        if let d = info.decoderFit { cfg["decoder_fit"] = d }
        if t.activation == .relu {
            cfg["sparsity_penalty"] = "lambda * sum over tokens and active features of (sqrt(a + eps) - sqrt(eps)) * ||W_dec[i]||"
            cfg["l1_coefficient"] = Double(lambda)
        }
        return cfg
    }
}
