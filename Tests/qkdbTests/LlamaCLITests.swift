import XCTest
import Foundation

/// `qkdb harvest` on Llama-family models: the bundled SmolLM2 GGUF end to end, and every kind
/// of broken GGUF file giving one clean error line and no output.
final class LlamaCLITests: XCTestCase {
    let smolDir = CLI.root.appendingPathComponent("models/SmolLM2-135M-Instruct").path
    var smolFile: String { smolDir + "/SmolLM2-135M-Instruct.Q4_1.gguf" }
    let fixtures = CLI.root.appendingPathComponent("Tests/Fixtures/llama")

    /// The tokens of the first parity prompt (transformers' tokenizer, no BOS).
    let promptIDs: [Int32] = [504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30]

    func testHarvestSmolLM2MatchesTransformers() throws {
        let dir = CLI.temporaryDirectory(self)
        let tokens = try npy([promptIDs], in: dir)
        let out = dir.appendingPathComponent("h.safetensors").path
        let r = try CLI.run(["harvest", "--model", smolDir, "--layer", "2", "--tokens", tokens, "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let got = try SafetensorsFloats(out), ref = try SafetensorsFloats(fixtures.appendingPathComponent("smollm2_reference.safetensors").path)
        XCTAssertEqual(got.shape("blocks.2.attn.hook_q"), [1, 10, 9, 64])
        XCTAssertEqual(got.shape("blocks.2.attn.hook_k"), [1, 10, 3, 64])
        for hook in ["blocks.2.hook_attn_in", "blocks.2.attn.hook_q", "blocks.2.attn.hook_k", "blocks.2.attn.hook_pattern"] {
            let a = try got.floats(hook), b = try ref.floats("p0." + hook)
            XCTAssertEqual(a.count, b.count, hook)
            XCTAssertLessThan(zip(a, b).map { abs($0 - $1) }.max() ?? 1, 1e-3, hook)
        }
    }

    /// Text through the GGUF's own tokenizer: no BOS by default (the file says so), BOS id 1
    /// in front with `--bos yes`.
    func testHarvestTextBOSFollowsTheFile() throws {
        let dir = CLI.temporaryDirectory(self)
        let text = "The quick brown fox jumps over the lazy dog."
        let plain = dir.appendingPathComponent("plain.safetensors").path, bos = dir.appendingPathComponent("bos.safetensors").path
        var r = try CLI.run(["harvest", "--model", smolDir, "--layer", "0", "--text", text, "--out", plain])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try CLI.run(["harvest", "--model", smolDir, "--layer", "0", "--text", text, "--out", bos, "--bos", "yes"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try SafetensorsFloats(plain).int32s("tokens"), promptIDs)
        XCTAssertEqual(try SafetensorsFloats(bos).int32s("tokens"), [1] + promptIDs)
        XCTAssertEqual(try SafetensorsFloats(bos).shape("blocks.0.attn.hook_pattern"), [1, 9, 11, 11])
    }

    func testBadMagic() throws {
        let dir = CLI.temporaryDirectory(self)
        var bytes = try Data(contentsOf: fixtures.appendingPathComponent("gguf_types.gguf"))
        bytes.replaceSubrange(0..<4, with: Array("GGJT".utf8))
        let model = dir.appendingPathComponent("bad.gguf")
        try bytes.write(to: model)
        try assertHarvestFails(model.path, mentioning: "not a GGUF file", dir: dir)
    }

    func testTruncatedGGUF() throws {
        let dir = CLI.temporaryDirectory(self)
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: smolFile))
        let head = handle.readData(ofLength: 1_000_000)  // cuts through the tokenizer's vocabulary
        try handle.close()
        let model = dir.appendingPathComponent("cut.gguf")
        try head.write(to: model)
        try assertHarvestFails(model.path, mentioning: "truncated", dir: dir)
    }

    func testUnsupportedQuantisationType() throws {
        let dir = CLI.temporaryDirectory(self)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: smolFile))
        // Tensor info: name, n_dims (u32), dims (u64 each), type (u32): retype blk.0.attn_q.weight as Q4_K (12).
        let name = Data("blk.0.attn_q.weight".utf8)
        let at = try XCTUnwrap(bytes.range(of: name)).upperBound
        let typeOffset = at + 4 + 2 * 8
        bytes.replaceSubrange(typeOffset..<(typeOffset + 4), with: [12, 0, 0, 0])
        let model = dir.appendingPathComponent("q4k.gguf")
        try bytes.write(to: model)
        try assertHarvestFails(model.path, mentioning: "Q4_K", dir: dir)
    }

    func testMissingTokenizerMetadata() throws {
        // A valid GGUF (architecture llama) that carries no tokenizer.
        let dir = CLI.temporaryDirectory(self)
        try assertHarvestFails(fixtures.appendingPathComponent("gguf_types.gguf").path, mentioning: "tokenizer.ggml.model", dir: dir)
    }

    private func assertHarvestFails(_ model: String, mentioning fragment: String, dir: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let tokens = try npy([[1, 2, 3]], in: dir)
        let out = dir.appendingPathComponent("h.safetensors")
        try CLI.assertFails(["harvest", "--model", model, "--layer", "0", "--tokens", tokens, "--out", out.path],
                            mentioning: fragment, file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "output left behind", file: file, line: line)
    }

    private func npy(_ rows: [[Int32]], in dir: URL) throws -> String {
        var header = "{'descr': '<i4', 'fortran_order': False, 'shape': (\(rows.count), \(rows[0].count)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0]) + Data(header.utf8)
        for v in rows.flatMap({ $0 }) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        let url = dir.appendingPathComponent("tokens.npy")
        try data.write(to: url)
        return url.path
    }
}

/// Reads F32 tensors of a safetensors file (the CLI tests see only files, not the libraries).
private struct SafetensorsFloats {
    let data: Data
    let header: [String: [String: Any]]
    let start: Int

    init(_ path: String) throws {
        data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        header = (try JSONSerialization.jsonObject(with: data[8..<(8 + n)]) as? [String: Any] ?? [:]).compactMapValues { $0 as? [String: Any] }
        start = 8 + n
    }

    func shape(_ name: String) -> [Int]? { header[name]?["shape"] as? [Int] }

    func int32s(_ name: String) throws -> [Int32] {
        let offsets = try XCTUnwrap(header[name]?["data_offsets"] as? [Int], "no tensor \(name)")
        XCTAssertEqual(header[name]?["dtype"] as? String, "I32")
        return data[(start + offsets[0])..<(start + offsets[1])].withUnsafeBytes { raw in
            (0..<((offsets[1] - offsets[0]) / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self) }
        }
    }

    func floats(_ name: String) throws -> [Float] {
        let offsets = try XCTUnwrap(header[name]?["data_offsets"] as? [Int], "no tensor \(name)")
        XCTAssertEqual(header[name]?["dtype"] as? String, "F32")
        return data[(start + offsets[0])..<(start + offsets[1])].withUnsafeBytes { raw in
            (0..<((offsets[1] - offsets[0]) / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        }
    }
}
