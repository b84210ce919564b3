import Foundation
import XCTest
import QKTensor
@testable import QKModels

final class LlamaTokenizerParityTests: XCTestCase {
    /// Text in, the GGUF file's own tokenizer: the same ids transformers gets, then the same top 5.
    func testSmolLM2TextMatchesTransformers() throws {
        let model = try SmolLM2.model.get()
        let tokenizer: any Tokenizer
        do { tokenizer = try model.requireTokenizer() } catch where "\(error)".contains("not built yet") {
            throw XCTSkip("GGUF tokenizer not merged yet")
        }
        let ref = try SafeTensorsFile(path: LlamaFixtures.dir.appendingPathComponent("smollm2_reference.safetensors").path)
        let prompts = try JSONDecoder().decode([String].self, from: Data(try XCTUnwrap(ref.metadata["prompts"]).utf8))
        XCTAssertEqual(prompts.count, 3)
        for (p, text) in prompts.enumerated() {
            let ids = tokenizer.encode(text)
            XCTAssertEqual(ids, try ref.intArray("p\(p).tokens").values.map { Int32($0) }, "prompt \(p): \(text.debugDescription)")
            let logits = try XCTUnwrap(try model.forward(TokenBatch(sequences: [ids]), patch: nil).logits)
            let V = model.config.vocabSize, last = Array(logits.data[((ids.count - 1) * V)..<(ids.count * V)])
            let top5 = last.indices.sorted { last[$0] > last[$1] }.prefix(5).map { Int32($0) }
            XCTAssertEqual(top5, try ref.intArray("p\(p).top5").values.map { Int32($0) }, "prompt \(p) top-5")
        }
        XCTAssertEqual(model.tokenizer.bosID, 1)
    }
}
