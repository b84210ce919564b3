import XCTest
import QKTensor
@testable import QKModels

/// The harvester writes what the model captures, batch by batch, into one well-formed file.
final class HarvestTests: XCTestCase {
    func testHarvestFileHoldsCapturesOfEveryBatch() throws {
        let model = try loadModel(path: Fixtures.path("tiny-gpt2"))
        let reference = try Reference(Fixtures.path("tiny-gpt2/reference.safetensors"))
        let tokens = try reference.tokens("batch")  // [3, 16]
        let set = SequenceSet(ids: tokens.ids, context: tokens.length)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-harvest-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        // Batches of 2 force a second, partial batch written at an offset.
        let summary = try Harvester(model: model, layer: 1, batchSize: 2).harvest(set, logits: true, to: out)
        XCTAssertEqual(summary.sequences, 3)
        let f = try SafeTensorsFile(path: out)
        XCTAssertEqual(Set(f.names), ["tokens", "blocks.1.hook_attn_in", "blocks.1.attn.hook_q", "blocks.1.attn.hook_k",
                                      "blocks.1.attn.hook_pattern", "logits"])
        XCTAssertEqual(try f.entry("tokens").dtype, .i32)
        XCTAssertEqual(try f.intArray("tokens").values.map { Int32($0) }, tokens.ids)
        for hook in ["blocks.1.hook_attn_in", "blocks.1.attn.hook_q", "blocks.1.attn.hook_k"] {
            try reference.assertClose(try f.floatTensor(hook), "batch.\(hook)")
        }
        try reference.assertPattern(try f.floatTensor("blocks.1.attn.hook_pattern"), "batch.blocks.1.attn.hook_pattern")
        try reference.assertClose(try f.floatTensor("logits"), "batch.logits")
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: (out as NSString).deletingLastPathComponent)
            .contains { $0.hasPrefix((out as NSString).lastPathComponent + ".partial") })
    }

    func testHarvestOfTheBundledMiniLMMatchesTransformers() throws {
        let model = try loadModel(path: Fixtures.miniLM)
        let reference = try Reference(Fixtures.path("minilm-reference.safetensors"))
        for i in 0..<4 {
            let tokens = try reference.tokens("text\(i)")
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-minilm-\(UUID().uuidString).safetensors").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            _ = try Harvester(model: model, layer: 2).harvest(SequenceSet(ids: tokens.ids, context: tokens.length), logits: false, to: out)
            let f = try SafeTensorsFile(path: out)
            XCTAssertEqual(try f.intArray("tokens").values.map { Int32($0) }, tokens.ids)
            for hook in ["blocks.2.hook_attn_in", "blocks.2.attn.hook_q", "blocks.2.attn.hook_k"] {
                try reference.assertClose(try f.floatTensor(hook), "text\(i).\(hook)")
            }
            try reference.assertPattern(try f.floatTensor("blocks.2.attn.hook_pattern"), "text\(i).blocks.2.attn.hook_pattern")
        }
    }

    func testStreamYieldsTheSameCapturesAsDirectCalls() throws {
        let model = try loadModel(path: Fixtures.path("tiny-bert"))
        let reference = try Reference(Fixtures.path("tiny-bert/reference.safetensors"))
        let tokens = try reference.tokens("batch")
        var stream = try Harvester(model: model, layer: 0, batchSize: 2).stream(SequenceSet(ids: tokens.ids, context: tokens.length))
        var seen = 0
        while let (batch, capture) = try stream.next() {
            XCTAssertEqual(capture.layer, 0)
            XCTAssertEqual(capture.pattern.shape, [batch.batch, 3, 16, 16])
            XCTAssertEqual(capture.pattern, try model.capture(batch, layer: 0).pattern)
            seen += batch.batch
        }
        XCTAssertEqual(seen, 3)
    }

    func testBadIdsFailBeforeAnyFileIsCreated() throws {
        let model = try loadModel(path: Fixtures.path("tiny-gpt2"))
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-harvest-\(UUID().uuidString).safetensors").path
        XCTAssertThrowsError(try Harvester(model: model, layer: 0).harvest(SequenceSet(ids: [1, 2, 999], context: 3), logits: false, to: out)) {
            XCTAssertTrue("\($0)".contains("token id 999"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertThrowsError(try Harvester(model: model, layer: 2))
    }
}
