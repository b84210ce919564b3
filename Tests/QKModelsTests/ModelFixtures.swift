import Foundation
import XCTest
import QKTensor
@testable import QKModels

/// Locations of the committed fixtures and bundled models, found from this file's path.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var models: URL { root.appendingPathComponent("Tests/Fixtures/models") }
    static func path(_ rel: String) -> String { models.appendingPathComponent(rel).path }
    static var miniLM: String { root.appendingPathComponent("models/all-MiniLM-L6-v2").path }
}

/// A transformers reference file and the comparisons the issue fixes: token ids exactly,
/// patterns within 1e-5 absolute, everything else within 1e-4 of the reference's scale.
struct Reference {
    let file: SafeTensorsFile
    init(_ path: String) throws { file = try SafeTensorsFile(path: path) }

    func tokens(_ prefix: String) throws -> TokenBatch {
        let (shape, values) = try file.intArray("\(prefix).tokens")
        return TokenBatch(ids: values.map { Int32($0) }, batch: shape[0], length: shape[1])
    }

    func tensor(_ name: String) throws -> Tensor { try file.floatTensor(name) }

    func assertPattern(_ got: Tensor, _ name: String, file f: StaticString = #filePath, line: UInt = #line) throws {
        let want = try tensor(name)
        XCTAssertEqual(got.shape, want.shape, name, file: f, line: line)
        guard got.shape == want.shape else { return }
        XCTAssertLessThanOrEqual(got.maxAbsDifference(want), 1e-5, name, file: f, line: line)
    }

    func assertClose(_ got: Tensor, _ name: String, file f: StaticString = #filePath, line: UInt = #line) throws {
        let want = try tensor(name)
        XCTAssertEqual(got.shape, want.shape, name, file: f, line: line)
        guard got.shape == want.shape else { return }
        let scale = max(want.data.map { abs($0) }.max() ?? 0, 1e-6)
        XCTAssertLessThanOrEqual(got.maxAbsDifference(want) / scale, 1e-4, name, file: f, line: line)
    }

    /// Compares one capture against `prefix.blocks.L.*`.
    func assertCapture(_ c: LayerCapture, prefix: String, file f: StaticString = #filePath, line: UInt = #line) throws {
        let L = c.layer
        try assertClose(c.attnIn, "\(prefix).blocks.\(L).hook_attn_in", file: f, line: line)
        try assertClose(c.q, "\(prefix).blocks.\(L).attn.hook_q", file: f, line: line)
        try assertClose(c.k, "\(prefix).blocks.\(L).attn.hook_k", file: f, line: line)
        try assertPattern(c.pattern, "\(prefix).blocks.\(L).attn.hook_pattern", file: f, line: line)
    }
}

/// Uniform attention over the keys each query may see (the patch the fixtures applied).
func uniformPattern(batch: Int, heads: Int, length: Int, causal: Bool) -> Tensor {
    var p = Tensor(zeros: [batch, heads, length, length])
    for bh in 0..<(batch * heads) {
        for i in 0..<length {
            let allowed = causal ? i + 1 : length
            for j in 0..<allowed { p.data[(bh * length + i) * length + j] = 1 / Float(allowed) }
        }
    }
    return p
}

/// Whether the tokenizer work has landed (text tests skip until it has).
func requireTokenizer(_ model: any TransformerModel) throws -> any Tokenizer {
    do { return try model.requireTokenizer() } catch {
        if "\(error)".contains("not built yet") { throw XCTSkip("tokenizers not merged yet: \(error)") }
        throw error
    }
}
