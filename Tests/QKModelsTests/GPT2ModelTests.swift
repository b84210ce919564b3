import XCTest
import QKTensor
@testable import QKModels

/// The GPT-2 runtime against transformers on a tiny random checkpoint (tools/fixtures/make_model_fixtures.py).
final class GPT2ModelTests: XCTestCase {
    let dir = Fixtures.path("tiny-gpt2")
    lazy var reference = try! Reference(Fixtures.path("tiny-gpt2/reference.safetensors"))

    func testLoadsDimensionsFromConfig() throws {
        let m = try loadModel(path: dir)
        XCTAssertTrue(m is GPT2Model)
        XCTAssertEqual(m.config.architecture, .gpt2)
        XCTAssertEqual([m.config.nLayer, m.config.dModel, m.config.nHead, m.config.nKVHead, m.config.dHead], [2, 64, 4, 4, 16])
        XCTAssertEqual(m.config.maxPositions, 64)
        XCTAssertTrue(m.config.hasLMHead)
    }

    func testCaptureMatchesTransformersAtEveryLayer() throws {
        let m = try loadModel(path: dir)
        for i in 0..<5 {
            let tokens = try reference.tokens("text\(i)")
            for layer in 0..<2 {
                try reference.assertCapture(try m.capture(tokens, layer: layer), prefix: "text\(i)")
            }
        }
    }

    func testBatchedCaptureAndForwardMatchTransformers() throws {
        let m = try loadModel(path: dir) as! GPT2Model
        let tokens = try reference.tokens("batch")
        XCTAssertEqual(tokens.batch, 3)
        let (capture, out) = try m.forward(tokens, patch: nil, capturing: 1)
        try reference.assertCapture(capture, prefix: "batch")
        try reference.assertClose(try XCTUnwrap(out.logits), "batch.logits")
        try reference.assertClose(out.hidden, "batch.hidden")
        try reference.assertClose(out.pooled, "batch.pooled")
        try reference.assertCapture(try m.capture(tokens, layer: 0), prefix: "batch")
    }

    func testLogitsMatchTransformers() throws {
        let m = try loadModel(path: dir)
        for i in 0..<5 {
            let out = try m.forward(try reference.tokens("text\(i)"), patch: nil)
            try reference.assertClose(try XCTUnwrap(out.logits), "text\(i).logits")
        }
    }

    func testPatchedPatternChangesLogitsAsTransformersDoes() throws {
        let m = try loadModel(path: dir)
        let tokens = try reference.tokens("text0")
        let uniform = uniformPattern(batch: 1, heads: 4, length: tokens.length, causal: true)
        let out = try m.forward(tokens, patch: PatternPatch(layer: 1, pattern: uniform))
        try reference.assertClose(try XCTUnwrap(out.logits), "text0.patched.logits")
        // Patching in the model's own pattern must change nothing.
        let own = try m.capture(tokens, layer: 1).pattern
        let same = try m.forward(tokens, patch: PatternPatch(layer: 1, pattern: own))
        try reference.assertClose(try XCTUnwrap(same.logits), "text0.logits")
    }

    func testTextIsTokenizedWithBOSLikeTransformers() throws {
        let m = try loadModel(path: dir)
        let tok = try requireTokenizer(m)
        let texts = try JSONDecoder().decode([String].self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/texts.json")))
        for (i, text) in texts.enumerated() {
            let want = try reference.tokens("text\(i)").ids
            XCTAssertEqual([try XCTUnwrap(tok.bosID)] + tok.encode(text), want, text)
        }
    }

    func testShardedCheckpointWithoutPrefixLoadsTheSameModel() throws {
        // Re-save the fixture as two shards + index, names without "transformer.", as
        // GPT2Model.save_pretrained with a small max_shard_size would.
        let dst = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-sharded-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dst) }
        try FileManager.default.copyItem(atPath: dir + "/config.json", toPath: dst.appendingPathComponent("config.json").path)
        let source = try SafeTensorsFile(path: dir + "/model.safetensors")
        var shards = [SafeTensorsWriter(), SafeTensorsWriter()]
        var map: [String: String] = [:]
        for (i, name) in source.names.enumerated() {
            let short = String(name.dropFirst("transformer.".count))
            shards[i % 2].add(short, try source.floatTensor(name))
            map[short] = "model-0000\(i % 2 + 1)-of-00002.safetensors"
        }
        for (i, w) in shards.enumerated() { try w.write(to: dst.appendingPathComponent("model-0000\(i + 1)-of-00002.safetensors").path) }
        try JSONSerialization.data(withJSONObject: ["weight_map": map]).write(to: dst.appendingPathComponent("model.safetensors.index.json"))
        let m = try loadModel(path: dst.path)
        let out = try m.forward(try reference.tokens("text1"), patch: nil)
        try reference.assertClose(try XCTUnwrap(out.logits), "text1.logits")
    }

    func testBadInputsAreNamedErrors() throws {
        let m = try loadModel(path: dir)
        XCTAssertThrowsError(try m.capture(TokenBatch(ids: [0, 1], batch: 1, length: 2), layer: 2)) {
            XCTAssertTrue("\($0)".contains("layer 2 is out of range"), "\($0)")
        }
        XCTAssertThrowsError(try m.capture(TokenBatch(ids: [0, 400], batch: 1, length: 2), layer: 0)) {
            XCTAssertTrue("\($0)".contains("token id 400"), "\($0)")
        }
        XCTAssertThrowsError(try m.capture(TokenBatch(ids: [], batch: 1, length: 0), layer: 0)) {
            XCTAssertTrue("\($0)".contains("empty input"), "\($0)")
        }
        XCTAssertThrowsError(try m.capture(TokenBatch(ids: [Int32](repeating: 1, count: 65), batch: 1, length: 65), layer: 0)) {
            XCTAssertTrue("\($0)".contains("exceeds the model's 64 positions"), "\($0)")
        }
        let wrong = PatternPatch(layer: 0, pattern: Tensor(zeros: [1, 4, 3, 3]))
        XCTAssertThrowsError(try m.forward(TokenBatch(ids: [0, 1], batch: 1, length: 2), patch: wrong)) {
            XCTAssertTrue("\($0)".contains("replacement pattern"), "\($0)")
        }
    }
}
