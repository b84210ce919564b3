import Foundation
import XCTest
import QKTensor
@testable import QKModels

final class GGUFReaderTests: XCTestCase {
    var typesPath: String { LlamaFixtures.dir.appendingPathComponent("gguf_types.gguf").path }

    func testEveryMetadataValueType() throws {
        let f = try GGUFFile(path: typesPath)
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f["test.u8"], .uint8(200))
        XCTAssertEqual(f["test.i8"], .int8(-100))
        XCTAssertEqual(f["test.u16"], .uint16(60000))
        XCTAssertEqual(f["test.i16"], .int16(-30000))
        XCTAssertEqual(f["test.u32"], .uint32(4_000_000_000))
        XCTAssertEqual(f["test.i32"], .int32(-2_000_000_000))
        XCTAssertEqual(f["test.u64"], .uint64((1 << 40) + 7))
        XCTAssertEqual(f["test.i64"], .int64(-(1 << 40) - 7))
        XCTAssertEqual(f["test.f32"], .float32(1.5))
        XCTAssertEqual(f["test.f64"], .float64(-2.25))
        XCTAssertEqual(f["test.bool"], .bool(true))
        XCTAssertEqual(f["test.string"]?.string, "héllo ✓")
        XCTAssertEqual(f["test.ints"]?.ints, [1, -2, 3])
        XCTAssertEqual(f["test.strings"]?.strings, ["a", "bc", ""])
        let nested = try XCTUnwrap(f["test.nested"]?.array)
        XCTAssertEqual(nested.map { $0.ints ?? [] }, [[1, 2], [3, 4, 5]])
        XCTAssertEqual(try f.string("general.architecture"), "llama")
        XCTAssertEqual(f.alignment, 32)
    }

    /// Each supported tensor type decodes to exactly what gguf-py's dequantiser produced.
    func testDequantisationMatchesGGUFPy() throws {
        let f = try GGUFFile(path: typesPath)
        let expected = try SafeTensorsFile(path: LlamaFixtures.dir.appendingPathComponent("gguf_types.safetensors").path)
        for name in ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"] {
            let t = try f.tensor(name)
            let e = try expected.floatTensor(name)
            XCTAssertEqual(t.shape, [3, 64], name)
            XCTAssertEqual(t.maxAbsDifference(e), 0, accuracy: 1e-6, name)
        }
        XCTAssertEqual(try f.info("q4_1").type, .q4_1)
    }

    /// The real SmolLM2 file: Q8_0 embeddings and Q4_1 matrices match gguf-py, in GGUF row order.
    func testRealFileDequantisesLikeGGUFPy() throws {
        let f = try GGUFFile(path: LlamaFixtures.smolGGUF)
        let ref = try SafeTensorsFile(path: LlamaFixtures.dir.appendingPathComponent("smollm2_reference.safetensors").path)
        for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight"] {
            let t = try f.tensor(name)
            let head = try ref.floatTensor("dequant.\(name).head"), tail = try ref.floatTensor("dequant.\(name).tail")
            XCTAssertEqual(t.rows(0, 3).maxAbsDifference(head), 0, accuracy: 1e-6, name)
            XCTAssertEqual(t.rows(t.shape[0] - 2, 2).maxAbsDifference(tail), 0, accuracy: 1e-6, name)
        }
        XCTAssertEqual(try f.info("blk.0.ffn_down.weight").shape, [576, 1536])
    }

    /// Version 2 has the same layout as 3 (v3 only added big-endian files).
    func testVersion2IsRead() throws {
        var b = GGUFBuilder(); b.version = 2
        b.add("general.architecture", string: "llama")
        b.addF32("w", shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let f = try GGUFFile(path: try b.write(self))
        XCTAssertEqual(f.version, 2)
        XCTAssertEqual(try f.tensor("w"), Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]))
    }

    func testCustomAlignmentIsHonoured() throws {
        // gguf-py writes general.alignment as u32; with 64 the data section starts on a 64-byte boundary.
        var b = GGUFBuilder()
        b.add("general.alignment", u32: 64)
        b.addF32("w", shape: [4], values: [1, 2, 3, 4])
        var bytes = b.bytes()
        // The builder pads to 32; re-pad the header to 64 so the file follows its own alignment.
        let headerEnd = bytes.count - 32
        if headerEnd % 64 != 0 { bytes.insert(contentsOf: [UInt8](repeating: 0, count: 32), at: headerEnd) }
        let path = try b.write(self)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let f = try GGUFFile(path: path)
        XCTAssertEqual(f.alignment, 64)
        XCTAssertEqual(try f.tensor("w").data, [1, 2, 3, 4])
    }

    func testBigEndianIsNamed() throws {
        var b = GGUFBuilder(); b.version = UInt32(3).byteSwapped
        let path = try b.write(self)
        assertOneLineError([path, "big-endian"]) { _ = try GGUFFile(path: path) }
    }

    func testBadMagic() throws {
        var b = GGUFBuilder(); b.magic = Array("GGML".utf8)
        let path = try b.write(self)
        assertOneLineError([path, "not a GGUF file", "GGML"]) { _ = try GGUFFile(path: path) }
    }

    func testUnsupportedVersion() throws {
        var b = GGUFBuilder(); b.version = 1
        let path = try b.write(self)
        assertOneLineError([path, "version 1"]) { _ = try GGUFFile(path: path) }
    }

    /// Cutting the real fixture anywhere — inside the metadata, the tensor table or the data —
    /// gives one clear line, never a crash.
    func testTruncatedFiles() throws {
        let full = try Data(contentsOf: URL(fileURLWithPath: typesPath))
        for cut in [2, 10, 30, 200, 600, 1000, full.count - 100, full.count - 9] {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-trunc-\(UUID().uuidString).gguf").path
            try full.prefix(cut).write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            assertOneLineError([path]) { _ = try GGUFFile(path: path) }
        }
    }

    func testUnsupportedQuantisationIsNamed() throws {
        var b = GGUFBuilder()
        b.addF32("ok", shape: [32], values: [Float](repeating: 1, count: 32))
        b.tensors.append((name: "blk.0.attn_q.weight", dims: [32, 1], type: 12, data: [UInt8](repeating: 0, count: 144)))  // Q4_K
        let path = try b.write(self)
        let f = try GGUFFile(path: path)
        XCTAssertEqual(try f.tensor("ok").count, 32)
        assertOneLineError([path, "blk.0.attn_q.weight", "Q4_K", "not supported"]) { _ = try f.tensor("blk.0.attn_q.weight") }
    }

    func testOffsetOutsideFile() throws {
        var b = GGUFBuilder()
        b.addF32("w", shape: [8], values: [Float](repeating: 1, count: 8))
        b.offsetOverride[0] = 1 << 20
        let path = try b.write(self)
        assertOneLineError([path, "'w'", "outside"]) { _ = try GGUFFile(path: path) }
    }

    func testTensorDataPastEndOfFile() throws {
        var b = GGUFBuilder()
        b.addF32("w", shape: [8], values: [Float](repeating: 1, count: 8))
        b.tensors[0].dims = [1000]  // claims 4000 bytes, file holds 32
        let path = try b.write(self)
        assertOneLineError([path, "'w'", "past the end"]) { _ = try GGUFFile(path: path) }
    }

    func testHugeCountsAreRejectedWithoutAllocating() throws {
        var bytes = GGUFBuilder().bytes()
        // Metadata count field (bytes 16..<24) claims 2^60 entries.
        bytes.replaceSubrange(16..<24, with: GGUFBuilder.le(UInt64(1) << 60))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-huge-\(UUID().uuidString).gguf").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        assertOneLineError([path, "metadata count"]) { _ = try GGUFFile(path: path) }
    }

    /// Names come from the file: a newline in a corrupt key is escaped, so the error stays one line.
    func testControlCharactersInNamesAreEscaped() throws {
        var b = GGUFBuilder()
        b.kv.append(("bad\nkey", 99, [0, 0, 0, 0]))
        let path = try b.write(self)
        assertOneLineError([path, "bad\\nkey", "99"]) { _ = try GGUFFile(path: path) }
    }

    func testUnknownMetadataTypeIsNamed() throws {
        var b = GGUFBuilder()
        b.kv.append(("weird.key", 99, [0, 0, 0, 0]))
        let path = try b.write(self)
        assertOneLineError([path, "weird.key", "99"]) { _ = try GGUFFile(path: path) }
    }
}
