import XCTest
import Foundation

/// `qkdb harvest` as a user runs it: outputs on good input, one clean error line and no
/// output file on bad input.
final class HarvestCLITests: XCTestCase {
    let tinyGPT2 = CLI.root.appendingPathComponent("Tests/Fixtures/models/tiny-gpt2").path
    let tinyBert = CLI.root.appendingPathComponent("Tests/Fixtures/models/tiny-bert").path

    /// A `.npy` int32 token file.
    func npy(_ rows: [[Int32]], in dir: URL, name: String = "tokens.npy") throws -> String {
        var header = "{'descr': '<i4', 'fortran_order': False, 'shape': (\(rows.count), \(rows[0].count)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0]) + Data(header.utf8)
        for v in rows.flatMap({ $0 }) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        let url = dir.appendingPathComponent(name)
        try data.write(to: url)
        return url.path
    }

    /// A copy of a fixture model folder whose files a test may break.
    func modelCopy(_ source: String, in dir: URL) throws -> URL {
        let dst = dir.appendingPathComponent("model")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: source), to: dst)
        return dst
    }

    func assertNoOutput(_ out: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: out.deletingLastPathComponent().path)
        XCTAssertFalse(names.contains { $0.hasPrefix(out.lastPathComponent) }, "left behind: \(names)", file: file, line: line)
    }

    func testHarvestsTokenFileWithLogits() throws {
        let dir = CLI.temporaryDirectory(self)
        let tokens = try npy([[0, 5, 6, 7, 8], [0, 9, 10, 11, 12]], in: dir)
        let out = dir.appendingPathComponent("h.safetensors").path
        let r = try CLI.run(["harvest", "--model", tinyGPT2, "--layer", "1", "--tokens", tokens, "--out", out, "--logits"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("wrote 2 sequences × 5 tokens of layer 1"), r.stdout)
        let header = try headerJSON(out)
        XCTAssertEqual(header["tokens"]?["shape"] as? [Int], [2, 5])
        XCTAssertEqual(header["tokens"]?["dtype"] as? String, "I32")
        XCTAssertEqual(header["blocks.1.hook_attn_in"]?["shape"] as? [Int], [2, 5, 64])
        XCTAssertEqual(header["blocks.1.attn.hook_q"]?["shape"] as? [Int], [2, 5, 4, 16])
        XCTAssertEqual(header["blocks.1.attn.hook_k"]?["shape"] as? [Int], [2, 5, 4, 16])
        XCTAssertEqual(header["blocks.1.attn.hook_pattern"]?["shape"] as? [Int], [2, 4, 5, 5])
        XCTAssertEqual(header["logits"]?["shape"] as? [Int], [2, 5, 400])
        XCTAssertEqual(header["logits"]?["dtype"] as? String, "F32")
    }

    func testMaxSequencesLimitsTheOutput() throws {
        let dir = CLI.temporaryDirectory(self)
        let tokens = try npy([[2, 5, 6, 3], [2, 7, 8, 3], [2, 9, 10, 3]], in: dir)
        let out = dir.appendingPathComponent("h.safetensors").path
        let r = try CLI.run(["harvest", "--model", tinyBert, "--layer", "0", "--tokens", tokens, "--out", out, "--max-sequences", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try headerJSON(out)["blocks.0.attn.hook_pattern"]?["shape"] as? [Int], [2, 3, 4, 4])
        XCTAssertNil(try headerJSON(out)["logits"])
    }

    func testSingleTextIsOneSequenceOfItsNaturalLength() throws {
        let dir = CLI.temporaryDirectory(self)
        let out = dir.appendingPathComponent("h.safetensors").path
        let r = try CLI.run(["harvest", "--model", tinyBert, "--layer", "1", "--text", "The quick brown fox jumps over the lazy dog.", "--out", out])
        if r.stderr.contains("not built yet") { throw XCTSkip("tokenizers not merged yet") }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try headerJSON(out)["tokens"]?["shape"] as? [Int], [1, 25])
    }

    func testCorpusIsPackedIntoContextSequences() throws {
        let dir = CLI.temporaryDirectory(self)
        let corpus = dir.appendingPathComponent("c.txt")
        try String(repeating: "A fortune for you.\n\nAnother one here, friend.\n\n", count: 20).write(to: corpus, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("h.safetensors").path
        let r = try CLI.run(["harvest", "--model", tinyGPT2, "--layer", "0", "--corpus", corpus.path, "--context", "16", "--max-sequences", "5", "--out", out])
        if r.stderr.contains("not built yet") { throw XCTSkip("tokenizers not merged yet") }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try headerJSON(out)["tokens"]?["shape"] as? [Int], [5, 16])
    }

    // MARK: bad input: one line on stderr naming the problem, non-zero exit, no output file

    func testMissingModelFolder() throws {
        let dir = CLI.temporaryDirectory(self)
        let out = dir.appendingPathComponent("h.safetensors")
        try CLI.assertFails(["harvest", "--model", dir.appendingPathComponent("nope").path, "--layer", "0", "--text", "hi", "--out", out.path],
                            mentioning: "nope: model folder does not exist")
        try assertNoOutput(out)
    }

    func testMissingWeights() throws {
        let dir = CLI.temporaryDirectory(self)
        let model = try modelCopy(tinyGPT2, in: dir)
        try FileManager.default.removeItem(at: model.appendingPathComponent("model.safetensors"))
        let tokens = try npy([[0, 1]], in: dir)
        let out = dir.appendingPathComponent("h.safetensors")
        try CLI.assertFails(["harvest", "--model", model.path, "--layer", "0", "--tokens", tokens, "--out", out.path],
                            mentioning: "model.safetensors: cannot open")
        try assertNoOutput(out)
    }

    func testTruncatedWeights() throws {
        let dir = CLI.temporaryDirectory(self)
        let model = try modelCopy(tinyGPT2, in: dir)
        let weights = model.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: weights)
        try bytes.prefix(bytes.count - 1000).write(to: weights)
        let tokens = try npy([[0, 1]], in: dir)
        let out = dir.appendingPathComponent("h.safetensors")
        try CLI.assertFails(["harvest", "--model", model.path, "--layer", "0", "--tokens", tokens, "--out", out.path],
                            mentioning: "model.safetensors")
        try assertNoOutput(out)
    }

    func testHeaderLargerThanFile() throws {
        let dir = CLI.temporaryDirectory(self)
        let model = try modelCopy(tinyBert, in: dir)
        let weights = model.appendingPathComponent("model.safetensors")
        var bytes = try Data(contentsOf: weights)
        let huge = UInt64(bytes.count * 2).littleEndian
        withUnsafeBytes(of: huge) { bytes.replaceSubrange(0..<8, with: $0) }
        try bytes.write(to: weights)
        let tokens = try npy([[2, 3]], in: dir)
        let out = dir.appendingPathComponent("h.safetensors")
        try CLI.assertFails(["harvest", "--model", model.path, "--layer", "0", "--tokens", tokens, "--out", out.path],
                            mentioning: "exceeds the file size")
        try assertNoOutput(out)
    }

    func testOffsetsOutOfRange() throws {
        let dir = CLI.temporaryDirectory(self)
        let model = try modelCopy(tinyBert, in: dir)
        let weights = model.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: weights)
        let n = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        // Give the tensor that ends last an end offset of all 9s (same digit count, so the
        // header keeps its length) — past the end of the data section.
        let regex = try NSRegularExpression(pattern: #"\"data_offsets\":\[(\d+),(\d+)\]"#)
        let matches = regex.matches(in: header, range: NSRange(header.startIndex..., in: header))
        let last = try XCTUnwrap(matches.max { a, b in
            Int(header[Range(a.range(at: 2), in: header)!])! < Int(header[Range(b.range(at: 2), in: header)!])!
        })
        let endRange = Range(last.range(at: 2), in: header)!
        header.replaceSubrange(endRange, with: String(repeating: "9", count: header[endRange].count))
        var patched = bytes.prefix(8)
        patched.append(Data(header.utf8))
        patched.append(bytes[(8 + n)...])
        try patched.write(to: weights)
        let tokens = try npy([[2, 3]], in: dir)
        let out = dir.appendingPathComponent("h.safetensors")
        try CLI.assertFails(["harvest", "--model", model.path, "--layer", "0", "--tokens", tokens, "--out", out.path],
                            mentioning: "outside the data section")
        try assertNoOutput(out)
    }

    func testMissingOrCorruptConfig() throws {
        let dir = CLI.temporaryDirectory(self)
        let model = try modelCopy(tinyBert, in: dir)
        let config = model.appendingPathComponent("config.json")
        let tokens = try npy([[2, 3]], in: dir)
        let out = dir.appendingPathComponent("h.safetensors")
        try "{\"model_type\": \"bert\", \"hidden_size\": ".write(to: config, atomically: true, encoding: .utf8)
        try CLI.assertFails(["harvest", "--model", model.path, "--layer", "0", "--tokens", tokens, "--out", out.path],
                            mentioning: "config.json: not a JSON object")
        try "{\"model_type\": \"bert\", \"hidden_size\": 48}".write(to: config, atomically: true, encoding: .utf8)
        try CLI.assertFails(["harvest", "--model", model.path, "--layer", "0", "--tokens", tokens, "--out", out.path],
                            mentioning: "config.json: missing 'num_attention_heads'")
        try FileManager.default.removeItem(at: config)
        try CLI.assertFails(["harvest", "--model", model.path, "--layer", "0", "--tokens", tokens, "--out", out.path],
                            mentioning: "config.json: missing")
        try assertNoOutput(out)
    }

    func testUnknownModelType() throws {
        let dir = CLI.temporaryDirectory(self)
        let model = try modelCopy(tinyBert, in: dir)
        let config = model.appendingPathComponent("config.json")
        let text = try String(contentsOf: config, encoding: .utf8).replacingOccurrences(of: "\"bert\"", with: "\"mamba\"")
        try text.write(to: config, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("h.safetensors")
        try CLI.assertFails(["harvest", "--model", model.path, "--layer", "0", "--text", "hi", "--out", out.path],
                            mentioning: "unknown model_type 'mamba' (supported: gpt2, bert, llama)")
        try assertNoOutput(out)
    }

    func testLayerOutOfRange() throws {
        let dir = CLI.temporaryDirectory(self)
        let tokens = try npy([[0, 1]], in: dir)
        let out = dir.appendingPathComponent("h.safetensors")
        try CLI.assertFails(["harvest", "--model", tinyGPT2, "--layer", "2", "--tokens", tokens, "--out", out.path],
                            mentioning: "layer 2 is out of range")
        try CLI.assertFails(["harvest", "--model", tinyGPT2, "--layer=-1", "--tokens", tokens, "--out", out.path],
                            mentioning: "layer -1 is out of range")
        try assertNoOutput(out)
    }

    func testEmptyText() throws {
        let dir = CLI.temporaryDirectory(self)
        let out = dir.appendingPathComponent("h.safetensors")
        try CLI.assertFails(["harvest", "--model", tinyBert, "--layer", "0", "--text", "  ", "--out", out.path], mentioning: "the text is empty")
        try CLI.assertFails(["harvest", "--model", tinyGPT2, "--layer", "0", "--text", "", "--out", out.path], mentioning: "the text is empty")
        try assertNoOutput(out)
    }

    func testTokenIdsBeyondVocabulary() throws {
        let dir = CLI.temporaryDirectory(self)
        let tokens = try npy([[0, 1, 400]], in: dir)
        let out = dir.appendingPathComponent("h.safetensors")
        try CLI.assertFails(["harvest", "--model", tinyGPT2, "--layer", "0", "--tokens", tokens, "--out", out.path],
                            mentioning: "token id 400 (sequence 0, position 2) is outside the vocabulary of 400")
        try assertNoOutput(out)
    }

    func testUnreadableCorpusPath() throws {
        let dir = CLI.temporaryDirectory(self)
        let out = dir.appendingPathComponent("h.safetensors")
        let missing = dir.appendingPathComponent("no-such-corpus.jsonl").path
        try CLI.assertFails(["harvest", "--model", tinyGPT2, "--layer", "0", "--corpus", missing, "--out", out.path],
                            mentioning: "no-such-corpus.jsonl: corpus path does not exist")
        try CLI.assertFails(["harvest", "--model", tinyGPT2, "--layer", "0", "--tokens", missing + ".npy", "--out", out.path],
                            mentioning: "token file does not exist")
        try assertNoOutput(out)
    }

    func testLogitsNeedAnLMHead() throws {
        let dir = CLI.temporaryDirectory(self)
        let tokens = try npy([[2, 3]], in: dir)
        let out = dir.appendingPathComponent("h.safetensors")
        try CLI.assertFails(["harvest", "--model", tinyBert, "--layer", "0", "--tokens", tokens, "--out", out.path, "--logits"],
                            mentioning: "no LM head")
        try assertNoOutput(out)
    }

    func testExactlyOneInput() throws {
        let dir = CLI.temporaryDirectory(self)
        let out = dir.appendingPathComponent("h.safetensors")
        try CLI.assertFails(["harvest", "--model", tinyGPT2, "--layer", "0", "--out", out.path], mentioning: "exactly one of")
    }

    func testUnwritableOutput() throws {
        let dir = CLI.temporaryDirectory(self)
        let tokens = try npy([[0, 1]], in: dir)
        try CLI.assertFails(["harvest", "--model", tinyGPT2, "--layer", "0", "--tokens", tokens,
                             "--out", dir.appendingPathComponent("no/such/dir/h.safetensors").path],
                            mentioning: "cannot create the output file")
    }

    /// The safetensors header of a file, as tensor name → fields.
    func headerJSON(_ path: String) throws -> [String: [String: Any]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let obj = try JSONSerialization.jsonObject(with: data[8..<(8 + n)]) as? [String: Any] ?? [:]
        return obj.compactMapValues { $0 as? [String: Any] }
    }
}
