import Foundation
import XCTest
import QKTensor
@testable import QKModels

final class LlamaHFConfigTests: XCTestCase {
    /// A copy of the tiny checkpoint with its config.json edited.
    private func tinyCopy(editing edit: (inout [String: Any]) -> Void) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-llama-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: LlamaFixtures.dir.appendingPathComponent("tiny"), to: dir)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("config.json")
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        return dir.path
    }

    func testUnsupportedSettingsAreNamed() throws {
        let scaled = try tinyCopy { $0["rope_parameters"] = ["rope_type": "llama3", "rope_theta": 500.0] }
        assertOneLineError(["config.json", "RoPE type 'llama3'"]) { _ = try loadModel(path: scaled) }
        let biased = try tinyCopy { $0["attention_bias"] = true }
        assertOneLineError(["config.json", "attention_bias"]) { _ = try loadModel(path: biased) }
        let wrongHeads = try tinyCopy { $0["num_key_value_heads"] = 4 }
        assertOneLineError(["model.safetensors", "k_proj.weight", "shape"]) { _ = try loadModel(path: wrongHeads) }
    }

    /// `tie_word_embeddings: true` uses the embedding as the head even though lm_head.weight is present.
    func testTiedHeadUsesTheEmbedding() throws {
        let tied = try tinyCopy { $0["tie_word_embeddings"] = true }
        let a = try XCTUnwrap(try loadModel(path: tied) as? LlamaModel)
        let b = try XCTUnwrap(try loadModel(path: LlamaFixtures.dir.appendingPathComponent("tiny").path) as? LlamaModel)
        XCTAssertNil(a.weights.lmHead)
        XCTAssertNotNil(b.weights.lmHead)
        let batch = TokenBatch(sequences: [[1, 2, 3]])
        let la = try XCTUnwrap(try a.forward(batch, patch: nil).logits), lb = try XCTUnwrap(try b.forward(batch, patch: nil).logits)
        XCTAssertGreaterThan(la.maxAbsDifference(lb), 1e-3)
    }
}
