import Foundation
import XCTest
@testable import QKModels

/// Locates the repository and the tokenizer fixtures written by tools/fixtures/make_tokenizer_fixtures.py.
enum TokenizerFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let directory = root.appendingPathComponent("Tests/Fixtures/tokenizers")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    struct Case: Decodable {
        var text: String
        var ids: [Int32]
        var decoded: String
    }

    private struct File: Decodable { var cases: [Case] }

    static func cases(_ name: String) throws -> [Case] {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        return try JSONDecoder().decode(File.self, from: data).cases
    }

    /// Compares every case's ids (and decoded text) with Hugging Face's, reporting each mismatch
    /// with the text that caused it.
    static func assertMatches(_ tokenizer: any Tokenizer, _ fixture: String, checkDecode: Bool = true,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        let cases = try cases(fixture)
        XCTAssertGreaterThan(cases.count, 90, "fixture \(fixture) looks truncated", file: file, line: line)
        var failures = 0
        for c in cases {
            let ids = tokenizer.encode(c.text)
            if ids != c.ids {
                failures += 1
                if failures <= 8 {
                    XCTFail("\(fixture): \(c.text.debugDescription.prefix(80)): got \(ids.prefix(40)) expected \(c.ids.prefix(40))", file: file, line: line)
                }
            }
            if checkDecode {
                XCTAssertEqual(tokenizer.decode(c.ids), c.decoded, "\(fixture): decode of \(c.text.debugDescription.prefix(80))", file: file, line: line)
            }
        }
        XCTAssertEqual(failures, 0, "\(fixture): \(failures) of \(cases.count) texts tokenised differently", file: file, line: line)
    }
}
