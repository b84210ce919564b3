import Foundation
import XCTest
import QKTensor
@testable import QKModels

final class LlamaParityTests: XCTestCase {
    /// A random 2-layer HF Llama with grouped-query attention (4 query heads, 2 kv heads),
    /// untied LM head and random norm weights: every hook and the logits match transformers.
    func testTinySafetensorsModelMatchesTransformers() throws {
        let dir = LlamaFixtures.dir.appendingPathComponent("tiny").path
        let model = try LlamaModel(huggingFaceDirectory: dir, tokenizer: NoTextTokenizer(vocabSize: 101))
        XCTAssertEqual(model.config.nHead, 4)
        XCTAssertEqual(model.config.nKVHead, 2)
        XCTAssertEqual(model.config.ropeTheta, 500)
        let ref = try SafeTensorsFile(path: LlamaFixtures.dir.appendingPathComponent("tiny_reference.safetensors").path)
        let tok = try ref.intArray("tokens")
        let batch = TokenBatch(ids: tok.values.map { Int32($0) }, batch: tok.shape[0], length: tok.shape[1])
        for layer in 0..<2 {
            let cap = try model.capture(batch, layer: layer)
            try assertClose(cap.attnIn, ref.floatTensor(LayerCapture.hookName(layer, "attn_in")), 1e-5, "attn_in L\(layer)")
            try assertClose(cap.q, ref.floatTensor(LayerCapture.hookName(layer, "q")), 1e-5, "q L\(layer)")
            try assertClose(cap.k, ref.floatTensor(LayerCapture.hookName(layer, "k")), 1e-5, "k L\(layer)")
            try assertClose(cap.pattern, ref.floatTensor(LayerCapture.hookName(layer, "pattern")), 1e-5, "pattern L\(layer)")
        }
        let out = try model.forward(batch, patch: nil)
        try assertClose(try XCTUnwrap(out.logits), ref.floatTensor("logits"), 1e-4, "logits")
    }

    /// SmolLM2 from its Q4_1 GGUF (Q/K rows un-permuted at load) against transformers'
    /// dequantised model: hooks at layers 2 and 15 within 1e-3, last-position logits within
    /// 1e-2 with the same top 5.
    func testSmolLM2MatchesTransformers() throws {
        let model = try SmolLM2.model.get()
        XCTAssertEqual(model.config.nLayer, 30)
        XCTAssertEqual(model.config.nKVHead, 3)
        XCTAssertEqual(model.config.ropeTheta, 100_000)
        XCTAssertEqual(model.bosID, 1)
        XCTAssertFalse(model.addsBOSByDefault)
        let ref = try SafeTensorsFile(path: LlamaFixtures.dir.appendingPathComponent("smollm2_reference.safetensors").path)
        for p in 0..<3 {
            let ids = try ref.intArray("p\(p).tokens").values.map { Int32($0) }
            let batch = TokenBatch(sequences: [ids])
            for layer in [2, 15] {
                let cap = try model.capture(batch, layer: layer)
                let name = { (hook: String) in "p\(p).\(LayerCapture.hookName(layer, hook))" }
                try assertClose(cap.attnIn, ref.floatTensor(name("attn_in")), 1e-3, "prompt \(p) attn_in L\(layer)")
                try assertClose(cap.q, ref.floatTensor(name("q")), 1e-3, "prompt \(p) q L\(layer)")
                try assertClose(cap.k, ref.floatTensor(name("k")), 1e-3, "prompt \(p) k L\(layer)")
                try assertClose(cap.pattern, ref.floatTensor(name("pattern")), 1e-3, "prompt \(p) pattern L\(layer)")
            }
            let logits = try XCTUnwrap(try model.forward(batch, patch: nil).logits)
            let V = model.config.vocabSize
            let last = Array(logits.data[((ids.count - 1) * V)..<(ids.count * V)])
            let top5 = last.indices.sorted { last[$0] > last[$1] }.prefix(5).map { Int32($0) }
            XCTAssertEqual(top5, try ref.intArray("p\(p).top5").values.map { Int32($0) }, "prompt \(p) top-5")
            let sel = try ref.intArray("p\(p).logit_ids").values, vals = try ref.floatTensor("p\(p).logit_values").data
            var worst: Float = 0
            for (i, id) in sel.enumerated() { worst = max(worst, abs(last[id] - vals[i])) }
            XCTAssertLessThan(worst, 1e-2, "prompt \(p) logits")
        }
    }

    /// Patching layer L's pattern with the model's own pattern changes nothing; patching a
    /// uniform pattern changes the logits (so the patch is really applied).
    func testPatternPatch() throws {
        let dir = LlamaFixtures.dir.appendingPathComponent("tiny").path
        let model = try LlamaModel(huggingFaceDirectory: dir, tokenizer: NoTextTokenizer(vocabSize: 101))
        let batch = TokenBatch(sequences: [[3, 9, 27, 81, 43], [1, 1, 2, 3, 5]])
        let clean = try XCTUnwrap(try model.forward(batch, patch: nil).logits)
        let own = try model.capture(batch, layer: 1).pattern
        let same = try XCTUnwrap(try model.forward(batch, patch: PatternPatch(layer: 1, pattern: own)).logits)
        XCTAssertLessThan(same.maxAbsDifference(clean), 1e-5)
        var uniform = Tensor(zeros: own.shape)
        for b in 0..<2 { for h in 0..<4 { for q in 0..<5 { for k in 0...q { uniform[b, h, q, k] = 1 / Float(q + 1) } } } }
        let changed = try XCTUnwrap(try model.forward(batch, patch: PatternPatch(layer: 1, pattern: uniform)).logits)
        XCTAssertGreaterThan(changed.maxAbsDifference(clean), 1e-3)
        assertOneLineError(["pattern patch", "[2, 4, 5, 5]"]) {
            _ = try model.forward(batch, patch: PatternPatch(layer: 1, pattern: Tensor(zeros: [2, 4, 5, 4])))
        }
    }

    func testBadTokensAndLayers() throws {
        let dir = LlamaFixtures.dir.appendingPathComponent("tiny").path
        let model = try LlamaModel(huggingFaceDirectory: dir, tokenizer: NoTextTokenizer(vocabSize: 101))
        assertOneLineError(["token id 101", "position 1"]) { _ = try model.forward(TokenBatch(sequences: [[1, 101]]), patch: nil) }
        assertOneLineError(["layer 2", "0…1"]) { _ = try model.capture(TokenBatch(sequences: [[1, 2]]), layer: 2) }
        assertOneLineError(["exceeds the model's context of 64"]) {
            _ = try model.forward(TokenBatch(sequences: [[Int32](repeating: 1, count: 65)]), patch: nil)
        }
    }

    /// A GGUF file that is valid but lacks the Llama keys names the missing key.
    func testMissingModelMetadataIsNamed() throws {
        var b = GGUFBuilder()
        b.add("general.architecture", string: "llama")
        b.addF32("token_embd.weight", shape: [4, 8], values: [Float](repeating: 0, count: 32))
        let path = try b.write(self)
        assertOneLineError([path, "llama.block_count", "missing"]) { _ = try LlamaModel(ggufPath: path, tokenizer: NoTextTokenizer(vocabSize: 4)) }
        var other = GGUFBuilder()
        other.add("general.architecture", string: "gpt2")
        let p2 = try other.write(self)
        assertOneLineError([p2, "'gpt2'", "not supported"]) { _ = try LlamaModel(ggufPath: p2, tokenizer: NoTextTokenizer(vocabSize: 4)) }
    }

    /// The un-permutation inverts llama.cpp's converter permutation exactly.
    func testGGUFRowPermutationRoundTrip() {
        let heads = 3, dh = 8, cols = 2
        let hf = (0..<(heads * dh * cols)).map(Float.init)
        // llama.cpp: reshape(heads, 2, dh/2, cols).swapaxes(1, 2) — HF row h·dh + i·dh/2 + j → GGUF row h·dh + 2j + i.
        var gguf = hf
        for h in 0..<heads { for i in 0..<2 { for j in 0..<(dh / 2) { for c in 0..<cols {
            gguf[(h * dh + 2 * j + i) * cols + c] = hf[(h * dh + i * dh / 2 + j) * cols + c]
        } } } }
        XCTAssertNotEqual(gguf, hf)
        XCTAssertEqual(LlamaGGUFLayout.unpermuteRows(gguf, heads: heads, dHead: dh, columns: cols), hf)
    }

    private func assertClose(_ a: Tensor, _ b: Tensor, _ tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(a.shape, b.shape, what, file: file, line: line)
        guard a.shape == b.shape else { return }
        XCTAssertLessThan(a.maxAbsDifference(b), tol, what, file: file, line: line)
    }
}
