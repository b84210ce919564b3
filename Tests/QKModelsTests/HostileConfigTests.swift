import XCTest
import Foundation
import QKTensor
@testable import QKModels

/// Hostile config.json values and GGUF metadata (issue 15's fuzzing cases): each is one clear
/// line at load, fast, before anything large is allocated.
final class HostileConfigTests: XCTestCase {
    static let tinyGPT2 = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models/tiny-gpt2")

    /// A copy of the tiny GPT-2 with `edit` applied to its config.json.
    func gpt2(_ edit: (inout [String: Any]) -> Void) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-hostile-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: Self.tinyGPT2, to: dir)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let configURL = dir.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        return dir.path
    }

    func testHugeLayerCountIsRefusedBeforeAllocating() throws {
        let path = try gpt2 { $0["n_layer"] = 1_000_000_000 }
        let started = Date()
        assertOneLineError(["n_layer", "1000000000 layers", "tensors"]) { _ = try loadModel(path: path) }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    }

    func testNegativeOrNaNEpsilonIsRefused() throws {
        for bad: Any in [-1, 0, "1e-5"] {
            let path = try gpt2 { $0["layer_norm_epsilon"] = bad }
            assertOneLineError(["layer_norm_epsilon", "finite number > 0"]) { _ = try loadModel(path: path) }
        }
    }

    func testBooleanHeadCountIsNotOne() throws {
        let path = try gpt2 { $0["n_head"] = true }
        assertOneLineError(["n_head", "positive integer"]) { _ = try loadModel(path: path) }
    }

    func testHeadCountThatDoesNotDivideTheWidthIsRefused() throws {
        let path = try gpt2 { $0["n_head"] = 7 }
        assertOneLineError(["not divisible"]) { _ = try loadModel(path: path) }
    }

    /// GGUF metadata for a Llama with no tensors: enough for `readGGUF` to reach its checks.
    func llamaMetadata(blockCount: UInt32 = 2, epsilon: Float = 1e-5, freqBase: Float? = 10000) -> GGUFBuilder {
        var b = GGUFBuilder()
        b.add("general.architecture", string: "llama")
        b.add("llama.block_count", u32: blockCount)
        b.add("llama.embedding_length", u32: 16)
        b.add("llama.attention.head_count", u32: 2)
        b.add("llama.feed_forward_length", u32: 32)
        b.add("llama.attention.layer_norm_rms_epsilon", f32: epsilon)
        if let freqBase { b.add("llama.rope.freq_base", f32: freqBase) }
        return b
    }

    func testGGUFHugeBlockCountIsRefused() throws {
        let path = try llamaMetadata(blockCount: 1_000_000_000).write(self)
        assertOneLineError(["llama.block_count", "1000000000 layers"]) { _ = try LlamaModel.readGGUF(try GGUFFile(path: path)) }
    }

    func testGGUFZeroRopeBaseAndNaNEpsilonAreRefused() throws {
        let zeroBase = try llamaMetadata(freqBase: 0).write(self)
        assertOneLineError(["llama.rope.freq_base", "finite number > 0"]) { _ = try LlamaModel.readGGUF(try GGUFFile(path: zeroBase)) }
        let nanEps = try llamaMetadata(epsilon: .nan).write(self)
        assertOneLineError(["layer_norm_rms_epsilon", "finite number > 0"]) { _ = try LlamaModel.readGGUF(try GGUFFile(path: nanEps)) }
    }

    /// One corrupted key-length byte made a file-sized key that every later message copied
    /// (36 s, a 43 MB error line).
    func testCorruptKeyLengthFailsFastInOneShortLine() throws {
        var b = llamaMetadata()
        b.add("pad", string: String(repeating: "z", count: 200_000))
        var bytes = b.bytes()
        bytes[24 + 2] = 0x02   // the first key's length grows by 2^17: still inside the file
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-key-\(UUID().uuidString).gguf").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        let started = Date()
        do { _ = try GGUFFile(path: path); XCTFail("opened") } catch {
            XCTAssertTrue("\(error)".contains("names are at most 65536"), "\(error)")
            XCTAssertLessThan("\(error)".count, 400, "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
    }

    /// A token array claiming a huge count reserves no gigabytes before it fails.
    func testHugeArrayCountIsRefusedWithoutAReservation() throws {
        var b = llamaMetadata()
        // An array of 2^40 uint8: more than the file holds, refused by the length bound.
        b.kv.append(("tokenizer.ggml.scores", 9, GGUFBuilder.le(UInt32(0)) + GGUFBuilder.le(UInt64(1) << 40)))
        let path = try b.write(self)
        assertOneLineError(["element count", "exceeds what the"]) { _ = try GGUFFile(path: path) }
    }
}
