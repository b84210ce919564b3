import XCTest
import QKTensor
@testable import QKModels

/// The BERT runtime against transformers: a tiny random checkpoint saved with the `bert.`
/// prefix, and the bundled all-MiniLM-L6-v2 (no prefix) on a few real sentences.
final class BertModelTests: XCTestCase {
    let dir = Fixtures.path("tiny-bert")
    lazy var reference = try! Reference(Fixtures.path("tiny-bert/reference.safetensors"))

    func testLoadsDimensionsFromConfig() throws {
        let m = try loadModel(path: dir)
        XCTAssertTrue(m is BertModel)
        XCTAssertEqual([m.config.nLayer, m.config.dModel, m.config.nHead, m.config.dHead, m.config.vocabSize], [2, 48, 3, 16, 400])
        XCTAssertFalse(m.config.hasLMHead)
        XCTAssertFalse(m.config.architecture.isCausal)
    }

    func testCaptureMatchesTransformersAtEveryLayer() throws {
        let m = try loadModel(path: dir)
        for i in 0..<5 {
            let tokens = try reference.tokens("text\(i)")
            for layer in 0..<2 { try reference.assertCapture(try m.capture(tokens, layer: layer), prefix: "text\(i)") }
            let out = try m.forward(tokens, patch: nil)
            XCTAssertNil(out.logits)
            try reference.assertClose(out.hidden, "text\(i).hidden")
            try reference.assertClose(out.pooled, "text\(i).pooled")
        }
    }

    func testBatchedForwardMatchesTransformers() throws {
        let m = try loadModel(path: dir) as! BertModel
        let tokens = try reference.tokens("batch")
        let (capture, out) = try m.forward(tokens, patch: nil, capturing: 1)
        try reference.assertCapture(capture, prefix: "batch")
        try reference.assertClose(out.hidden, "batch.hidden")
        try reference.assertClose(out.pooled, "batch.pooled")
        try reference.assertCapture(try m.capture(tokens, layer: 0), prefix: "batch")
    }

    func testPatchedPatternMatchesTransformers() throws {
        let m = try loadModel(path: dir)
        let tokens = try reference.tokens("text0")
        let out = try m.forward(tokens, patch: PatternPatch(layer: 1, pattern: uniformPattern(batch: 1, heads: 3, length: tokens.length, causal: false)))
        try reference.assertClose(out.hidden, "text0.patched.hidden")
    }

    func testMiniLMLayer2MatchesTransformers() throws {
        let m = try loadModel(path: Fixtures.miniLM)
        XCTAssertEqual([m.config.nLayer, m.config.dModel, m.config.nHead, m.config.dHead], [6, 384, 12, 32])
        let ref = try Reference(Fixtures.path("minilm-reference.safetensors"))
        for i in 0..<4 {
            let tokens = try ref.tokens("text\(i)")
            let (capture, out) = try (m as! BertModel).forward(tokens, patch: nil, capturing: 2)
            try ref.assertCapture(capture, prefix: "text\(i)")
            try ref.assertClose(out.hidden, "text\(i).hidden")
            try ref.assertClose(out.pooled, "text\(i).pooled")
        }
    }

    func testMiniLMTextIsTokenizedLikeTransformers() throws {
        let m = try loadModel(path: Fixtures.miniLM)
        let tok = try requireTokenizer(m)
        let ref = try Reference(Fixtures.path("minilm-reference.safetensors"))
        let texts = try JSONDecoder().decode([String].self, from: Data(contentsOf: Fixtures.models.appendingPathComponent("minilm-texts.json")))
        for (i, text) in texts.enumerated() {
            let ids = [try XCTUnwrap(tok.bosID)] + tok.encode(text) + [try XCTUnwrap(tok.eosID)]
            XCTAssertEqual(ids, try ref.tokens("text\(i)").ids, text)
        }
    }
}
