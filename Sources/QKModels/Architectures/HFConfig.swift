import Foundation
import QKTensor

/// A Hugging Face `config.json`, read leniently (only the keys an architecture asks for) but
/// strictly typed: a missing or mistyped key is an error naming the file and the key.
struct HFConfig {
    let path: String
    let values: [String: Any]

    init(path: String) throws {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError("\(path): cannot read the model's config.json")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data), let dict = obj as? [String: Any] else {
            throw ModelError("\(path): not a JSON object")
        }
        values = dict
    }

    var modelType: String? { values["model_type"] as? String }

    /// A positive integer under any of `keys` (GPT-2 configs use both `n_embd` and `hidden_size`).
    func int(_ keys: String..., default fallback: Int? = nil) throws -> Int {
        for key in keys {
            guard let raw = values[key], !(raw is NSNull) else { continue }
            // `true` is not 1 here, nor is 2^64 + 1 (which Foundation would wrap to 1).
            guard let n = JSONNumber.exactInt(raw), n >= 1, n < 1_000_000_000_000 else {
                throw ModelError("\(path): '\(key)' must be a positive integer, found \(JSONNumber.quoted(raw))")
            }
            return n
        }
        if let fallback { return fallback }
        throw ModelError("\(path): missing '\(keys[0])'")
    }

    /// A finite number > 0 (an epsilon, a RoPE base): -1 or NaN would only show up later as NaN.
    func positive(_ key: String, default fallback: Float) throws -> Float {
        guard let raw = values[key], !(raw is NSNull) else { return fallback }
        return try ConfigChecks.positive(JSONNumber.finite(raw).map(Float.init), key, source: path, found: raw)
    }

    func bool(_ key: String, default fallback: Bool) -> Bool {
        (values[key] as? NSNumber)?.boolValue ?? fallback
    }

    func string(_ key: String, default fallback: String) throws -> String {
        guard let raw = values[key], !(raw is NSNull) else { return fallback }
        guard let s = raw as? String else { throw ModelError("\(path): '\(key)' must be a string, found \(raw)") }
        return s
    }
}

/// Reads named weights out of a safetensors checkpoint (one `model.safetensors`, or the shards
/// listed by `model.safetensors.index.json`), checking each shape against what the config
/// promised, so a mismatched file fails at load with the tensor named rather than producing
/// garbage later. Accepts names with or without a model prefix (`transformer.`, `bert.`):
/// Hugging Face saves both depending on which head class wrote the file.
struct WeightReader {
    let files: [SafeTensorsFile]
    let prefix: String
    /// For messages: the single file, or the index of a sharded checkpoint.
    let path: String

    /// Opens the checkpoint in a model directory.
    init(directory: String, prefixes: [String], probe: String) throws {
        let single = (directory as NSString).appendingPathComponent("model.safetensors")
        let index = (directory as NSString).appendingPathComponent("model.safetensors.index.json")
        if !FileManager.default.fileExists(atPath: single), FileManager.default.fileExists(atPath: index) {
            guard let data = FileManager.default.contents(atPath: index),
                  let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = obj["weight_map"] as? [String: String] else {
                throw ModelError("\(index): not a safetensors index (no \"weight_map\" object)")
            }
            files = try Set(map.values).sorted().map { shard in
                guard !shard.contains("/") else { throw ModelError("\(index): shard name '\(shard)' must be a plain file name") }
                return try SafeTensorsFile(path: (directory as NSString).appendingPathComponent(shard))
            }
            path = index
        } else {
            files = [try SafeTensorsFile(path: single)]
            path = single
        }
        let all = files
        prefix = prefixes.first { p in all.contains { $0.contains(p + probe) } } ?? ""
    }

    var file: SafeTensorsFile { files[0] }

    /// Tensors in the checkpoint: a bound on the layers a config may claim (see `ConfigChecks`).
    var tensorCount: Int { files.reduce(0) { $0 + $1.entries.count } }

    func contains(_ name: String) -> Bool { files.contains { $0.contains(name) } }

    /// The file holding a tensor (by full name).
    func fileHolding(_ full: String) throws -> SafeTensorsFile {
        guard let f = files.first(where: { $0.contains(full) }) else {
            throw ModelError("\(path): tensor '\(full)' not found (the checkpoint does not match its config.json)")
        }
        return f
    }

    func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        let full = prefix + name
        let f = try fileHolding(full)
        let t = try f.floatTensor(full)
        guard t.shape == shape else {
            throw ModelError("\(f.path): tensor '\(full)' has shape \(t.shape), config.json implies \(shape)")
        }
        return t
    }

    func vector(_ name: String, count: Int) throws -> [Float] { try tensor(name, shape: [count]).data }

    /// An `nn.Linear` weight (`[out, in]`) with its bias, turned into `[in, out]`.
    func linearTransposed(_ name: String, inFeatures: Int, outFeatures: Int) throws -> Linear {
        let w = try tensor(name + ".weight", shape: [outFeatures, inFeatures])
        return Linear(weight: transpose(w), bias: try vector(name + ".bias", count: outFeatures))
    }

    /// A GPT-2 `Conv1D` weight (already `[in, out]`) with its bias.
    func conv1D(_ name: String, inFeatures: Int, outFeatures: Int) throws -> Linear {
        Linear(weight: try tensor(name + ".weight", shape: [inFeatures, outFeatures]),
               bias: try vector(name + ".bias", count: outFeatures))
    }

    /// LayerNorm weights, under today's names (`weight`/`bias`) or old BERT ones (`gamma`/`beta`).
    func layerNorm(_ name: String, count: Int, eps: Float) throws -> LayerNormParams {
        let old = !contains("\(prefix)\(name).weight") && contains("\(prefix)\(name).gamma")
        return LayerNormParams(gamma: try vector("\(name).\(old ? "gamma" : "weight")", count: count),
                               beta: try vector("\(name).\(old ? "beta" : "bias")", count: count), eps: eps)
    }
}

/// `[r, c]` → `[c, r]`.
func transpose(_ t: Tensor) -> Tensor {
    let r = t.shape[0], c = t.shape[1]
    var out = [Float](repeating: 0, count: r * c)
    t.data.withUnsafeBufferPointer { s in
        out.withUnsafeMutableBufferPointer { d in
            for i in 0..<r { for j in 0..<c { d[j * r + i] = s[i * c + j] } }
        }
    }
    return Tensor(shape: [c, r], data: out)
}
