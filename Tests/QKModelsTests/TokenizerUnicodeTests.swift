import Foundation
import XCTest
@testable import QKModels

/// The character classes and split patterns against Hugging Face over every Unicode code point
/// (tools/fixtures/make_tokenizer_fixtures.py records how HF classes each one).
final class TokenizerUnicodeTests: XCTestCase {
    private struct Classes: Decodable {
        var letter, number, space: [[UInt32]]
        var bert_removed, bert_space, bert_cjk, bert_punctuation: [[UInt32]]
        var bert_strip_accents, bert_lowercase: [[StringOrNumber]]
    }

    private enum StringOrNumber: Decodable {
        case number(UInt32), string(String)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let n = try? c.decode(UInt32.self) { self = .number(n) } else { self = .string(try c.decode(String.self)) }
        }
    }

    private static func membership(_ ranges: [[UInt32]]) -> [Bool] {
        var out = [Bool](repeating: false, count: 0x110000)
        for r in ranges { for c in r[0]...r[1] { out[Int(c)] = true } }
        return out
    }

    private static func changes(_ list: [[StringOrNumber]]) -> [UInt32: String] {
        var out: [UInt32: String] = [:]
        for entry in list {
            if case .number(let c) = entry[0], case .string(let s) = entry[1] { out[c] = s }
        }
        return out
    }

    private static func string(_ scalars: [Unicode.Scalar]) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    func testEveryCodePointIsClassedAsHuggingFaceClassesIt() throws {
        let data = try Data(contentsOf: TokenizerFixtures.directory.appendingPathComponent("unicode_classes.json"))
        let classes = try JSONDecoder().decode(Classes.self, from: data)
        let checks: [(String, [Bool], (Unicode.Scalar) -> Bool)] = [
            ("\\p{L}", Self.membership(classes.letter), { UnicodeClass.kind($0) == .letter }),
            ("\\p{N}", Self.membership(classes.number), { UnicodeClass.kind($0) == .number }),
            ("\\s", Self.membership(classes.space), { UnicodeClass.kind($0) == .space }),
            ("BERT deleted", Self.membership(classes.bert_removed), UnicodeClass.isBertRemoved),
            ("BERT whitespace", Self.membership(classes.bert_space), {
                !UnicodeClass.isBertRemoved($0) && UnicodeClass.isWhitespace($0) && $0 != " "
            }),
            ("BERT CJK", Self.membership(classes.bert_cjk), UnicodeClass.isCJKIdeograph),
            ("BERT punctuation", Self.membership(classes.bert_punctuation), UnicodeClass.isBertPunctuation),
        ]
        var total = 0
        for (name, expected, mine) in checks {
            var wrong: [String] = []
            for v in 0..<UInt32(0x110000) {
                guard let s = Unicode.Scalar(v) else { continue }
                if mine(s) != expected[Int(v)] { wrong.append(String(v, radix: 16)) }
            }
            XCTAssertTrue(wrong.isEmpty, "\(name): \(wrong.count) code points differ from HF, e.g. \(wrong.prefix(10))")
            total += expected.filter { $0 }.count
        }
        XCTAssertGreaterThan(total, 200_000)  // the fixture is not empty

        // Accent stripping and lower-casing, one code point at a time.
        let stripped = Self.changes(classes.bert_strip_accents), lowered = Self.changes(classes.bert_lowercase)
        XCTAssertGreaterThan(stripped.count, 1000)
        XCTAssertGreaterThan(lowered.count, 1000)
        let stripOnly = BertNormalizer(lowercases: false, stripsAccents: true, splitsCJK: false)
        let lowerOnly = BertNormalizer(lowercases: true, stripsAccents: false, splitsCJK: false)
        var wrongStrip: [String] = [], wrongLower: [String] = []
        for v in 0..<UInt32(0x110000) {
            guard let s = Unicode.Scalar(v), !UnicodeClass.isBertRemoved(s), !UnicodeClass.isWhitespace(s),
                  !UnicodeClass.isBertPunctuation(s) else { continue }
            // Unassigned code points and private use have no decomposition or case mapping.
            if stripped[v] == nil && lowered[v] == nil
                && (s.properties.age == nil || s.properties.generalCategory == .privateUse) { continue }
            // The normaliser returns words; a lone letter is one word (or none if stripped away).
            let gotStrip = stripOnly.words([s][...]).map(Self.string).joined(separator: " ")
            if gotStrip != stripped[v] ?? String(s) { wrongStrip.append(String(v, radix: 16)) }
            let gotLower = lowerOnly.words([s][...]).map(Self.string).joined(separator: " ")
            if gotLower != lowered[v] ?? String(s) { wrongLower.append(String(v, radix: 16)) }
        }
        XCTAssertTrue(wrongStrip.isEmpty, "accent stripping differs from HF at \(wrongStrip.count) code points, e.g. \(wrongStrip.prefix(10))")
        XCTAssertTrue(wrongLower.isEmpty, "lower-casing differs from HF at \(wrongLower.count) code points, e.g. \(wrongLower.prefix(10))")
    }

    func testSplitPatternsMatchHuggingFaceOnRandomText() throws {
        struct Case: Decodable { var text: String; var gpt2: [String]; var llama3: [String] }
        struct File: Decodable { var cases: [Case] }
        let data = try Data(contentsOf: TokenizerFixtures.directory.appendingPathComponent("split_fuzz.json"))
        let cases = try JSONDecoder().decode(File.self, from: data).cases
        XCTAssertGreaterThan(cases.count, 1000)
        var failures = 0
        for c in cases {
            let scalars = Array(c.text.unicodeScalars)
            let text = ClassifiedText(scalars[...])
            for (pattern, expected) in [(ByteLevelSplitPattern.gpt2, c.gpt2), (.llama3(maxDigits: 3), c.llama3)] {
                var words: [Range<Int>] = []
                pattern.split(text, 0..<scalars.count, into: &words)
                let spelled = words.map { ByteLevelAlphabet.spell(Self.string(Array(scalars[$0])).utf8) }
                if spelled != expected {
                    failures += 1
                    if failures < 5 { XCTFail("\(pattern) on \(c.text.debugDescription): \(spelled) vs HF \(expected)") }
                }
            }
        }
        XCTAssertEqual(failures, 0)
    }
}
