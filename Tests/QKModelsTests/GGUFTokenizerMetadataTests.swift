import Foundation
import XCTest
import QKTensor
@testable import QKModels

final class GGUFTokenizerMetadataTests: XCTestCase {
    func testSmolLM2TokenizerMetadata() throws {
        let meta = try GGUFTokenizerMetadata(GGUFFile(path: LlamaFixtures.smolGGUF))
        XCTAssertEqual(meta.tokens.count, 49152)
        XCTAssertEqual(meta.merges.count, 48900)
        XCTAssertEqual(meta.tokenTypes?.count, 49152)
        XCTAssertEqual(meta.bosID, 1)
        XCTAssertEqual(meta.eosID, 2)
        XCTAssertEqual(meta.pre, "smollm")
        XCTAssertFalse(meta.addsBOS)
        XCTAssertEqual(meta.tokens[1], "<|im_start|>")
    }

    /// A Llama GGUF without tokenizer metadata fails at load with one line naming the key.
    func testMissingTokenizerMetadataIsNamed() throws {
        var b = GGUFBuilder()
        b.add("general.architecture", string: "llama")
        b.add("tokenizer.ggml.model", string: "gpt2")
        let path = try b.write(self, name: "no-tokens.gguf")
        assertOneLineError([path, "tokenizer.ggml.tokens", "missing"]) { _ = try loadLlamaModel(path: path) }
        var c = GGUFBuilder()
        c.add("general.architecture", string: "llama")
        let p2 = try c.write(self, name: "no-tokenizer.gguf")
        assertOneLineError([p2, "tokenizer.ggml.model", "missing"]) { _ = try loadLlamaModel(path: p2) }
    }
}
