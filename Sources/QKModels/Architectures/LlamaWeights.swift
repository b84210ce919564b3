import Foundation
import QKTensor

/// The Float32 weights of a Llama-family model, in PyTorch `nn.Linear` layout (`[out, in]`),
/// with Q/K rows in Hugging Face's rotate-half order whatever file they came from.
///
/// Projections that read the same input are stored fused so each is one GEMM:
/// `qkv` = [W_Q; W_K; W_V] (`[(n_head + 2·n_kv_head)·d_head, d_model]`) and
/// `gateUp` = [W_gate; W_up] (`[2·d_ff, d_model]`).
struct LlamaLayerWeights: Sendable {
    var attnNorm: [Float]
    var qkv: [Float]
    var out: [Float]
    var ffnNorm: [Float]
    var gateUp: [Float]
    var down: [Float]
}

struct LlamaWeights: Sendable {
    var embedding: [Float]          // [vocab, d_model]
    var layers: [LlamaLayerWeights]
    var finalNorm: [Float]
    /// `[vocab, d_model]`; nil when the LM head is tied to the embedding.
    var lmHead: [Float]?
    var dFF: Int
    var rmsEps: Float
}

/// Reads weights from a source, checking each tensor's shape against the config so a mismatch
/// is reported by name instead of corrupting the forward pass.
struct LlamaWeightReader {
    let source: String
    let fetch: (String) throws -> Tensor?

    func tensor(_ name: String, _ shape: [Int]) throws -> [Float] {
        guard let t = try fetch(name) else { throw ModelError("\(source): tensor '\(name)' is missing") }
        guard t.shape == shape else {
            throw ModelError("\(source): tensor '\(name)' has shape \(t.shape), expected \(shape)")
        }
        return t.data
    }

    func optional(_ name: String, _ shape: [Int]) throws -> [Float]? {
        guard let t = try fetch(name) else { return nil }
        guard t.shape == shape else {
            throw ModelError("\(source): tensor '\(name)' has shape \(t.shape), expected \(shape)")
        }
        return t.data
    }
}

enum LlamaGGUFLayout {
    /// llama.cpp's converter reorders each head's Q and K rows for its interleaved ("GPT-J")
    /// RoPE, which rotates adjacent pairs (2j, 2j+1). Hugging Face's rotate-half pairs j with
    /// j + d/2. The converter maps HF row `i·d/2 + j` (i ∈ {0,1}, j < d/2) of each head to GGUF
    /// row `2j + i`; this undoes it, so q and k come out exactly as transformers computes them
    /// (pre-RoPE) and the one rotate-half RoPE serves every source. Q uses n_head heads, K
    /// uses n_kv_head.
    static func unpermuteRows(_ w: [Float], heads: Int, dHead: Int, columns: Int) -> [Float] {
        var out = w
        let half = dHead / 2
        w.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for h in 0..<heads {
                    for i in 0..<2 {
                        for j in 0..<half {
                            let from = (h * dHead + 2 * j + i) * columns
                            let to = (h * dHead + i * half + j) * columns
                            (dst.baseAddress! + to).update(from: src.baseAddress! + from, count: columns)
                        }
                    }
                }
            }
        }
        return out
    }
}
