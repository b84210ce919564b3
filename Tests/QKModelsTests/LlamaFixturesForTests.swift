import Foundation
import XCTest
import QKTensor
@testable import QKModels

/// Paths shared by the GGUF and Llama tests (located from this file, so any working directory works).
enum LlamaFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let dir = root.appendingPathComponent("Tests/Fixtures/llama")
    static let smolGGUF = root.appendingPathComponent("models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf").path
}

/// Stands in for the model's tokenizer where a test feeds token ids directly (these tests
/// compare the runtime on ids; tokenisation has its own tests).
struct NoTextTokenizer: Tokenizer {
    var vocabSize: Int
    func encode(_ text: String) -> [Int32] { [] }
    func tokenString(_ id: Int32) -> String { "<\(id)>" }
    func decode(_ ids: [Int32]) -> String { ids.map { "<\($0)>" }.joined() }
    var bosID: Int32? { nil }
    var eosID: Int32? { nil }
}

/// Loaded once, as `qkdb` loads it (tokenizer from the GGUF metadata): dequantising SmolLM2
/// takes a few seconds in a debug build.
enum SmolLM2 {
    static let model: Result<LlamaModel, Error> = Result {
        guard let m = try loadLlamaModel(path: LlamaFixtures.smolGGUF) else { throw ModelError("SmolLM2 GGUF not recognised") }
        return m
    }
}
