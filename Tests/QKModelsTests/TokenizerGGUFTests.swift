import Foundation
import XCTest
@testable import QKModels

/// SmolLM2's tokenizer, built from the arrays inside the bundled GGUF, against the tokenizer
/// transformers builds from the same file.
final class TokenizerGGUFTests: XCTestCase {
    private static let gguf = TokenizerFixtures.root
        .appendingPathComponent("models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf").path

    private func smolLM2(splitsDigits: Bool? = nil) throws -> ByteLevelBPETokenizer {
        let meta = try GGUFMetadataForTests(path: Self.gguf)
        return try ByteLevelBPETokenizer(
            ggufTokens: try meta.strings("tokenizer.ggml.tokens"),
            merges: try meta.strings("tokenizer.ggml.merges"),
            tokenTypes: try meta.int32s("tokenizer.ggml.token_type"),
            bosID: try meta.int32("tokenizer.ggml.bos_token_id"),
            eosID: try meta.int32("tokenizer.ggml.eos_token_id"),
            pre: try meta.string("tokenizer.ggml.pre"),
            splitsDigits: splitsDigits,
            source: Self.gguf)
    }

    func testSmolLM2MatchesTransformersGGUFTokenizer() throws {
        let tokenizer = try smolLM2()
        XCTAssertEqual(tokenizer.vocabSize, 49152)
        XCTAssertEqual(tokenizer.pattern, .gpt2)
        XCTAssertEqual(tokenizer.bosID.map(tokenizer.tokenString), "<|im_start|>")
        XCTAssertEqual(tokenizer.eosID.map(tokenizer.tokenString), "<|im_end|>")
        try TokenizerFixtures.assertMatches(tokenizer, "expected_smollm2.json")
    }

    func testSmolLM2WithItsOwnDigitSplitMatchesToo() throws {
        let tokenizer = try smolLM2(splitsDigits: true)
        try TokenizerFixtures.assertMatches(tokenizer, "expected_smollm2_digits.json")
        // Where the two pre-tokenizers part ways: spaces running into a digit.
        XCTAssertEqual(try smolLM2().encode("x  1").map(tokenizer.tokenString), ["x", " ", " ", "1"])
        XCTAssertEqual(tokenizer.encode("x  1").map(tokenizer.tokenString), ["x", "  ", "1"])
    }

    func testDecodingHalfACharacterShowsReplacementCharactersAsHFDoes() throws {
        struct Case: Decodable { var ids: [Int32]; var decoded: String }
        struct File: Decodable { var cases: [Case] }
        let data = try Data(contentsOf: TokenizerFixtures.directory.appendingPathComponent("partial_decodes.json"))
        let cases = try JSONDecoder().decode(File.self, from: data).cases
        XCTAssertGreaterThan(cases.count, 10)
        XCTAssertTrue(cases.contains { $0.decoded.contains("\u{FFFD}") })
        let tokenizer = try smolLM2()
        for c in cases { XCTAssertEqual(tokenizer.decode(c.ids), c.decoded, "ids \(c.ids)") }
    }

    func testSmolLM2ChatMarkersStayWhole() throws {
        let tokenizer = try smolLM2()
        let ids = tokenizer.encode("<|im_start|>user\nhi<|im_end|>")
        XCTAssertEqual(ids.first, 1)
        XCTAssertEqual(ids.last, 2)
        XCTAssertTrue(tokenizer.isAddedToken(1))
        XCTAssertEqual(ids.map(tokenizer.tokenString).joined(), "<|im_start|>user\nhi<|im_end|>")
    }

    func testGGUFArraysAreValidated() {
        XCTAssertThrowsError(try ByteLevelBPETokenizer(ggufTokens: ["a", "b"], merges: [], tokenTypes: [1],
                                                       bosID: nil, eosID: nil, pre: nil, source: "m.gguf")) { error in
            XCTAssertEqual("\(error)", "m.gguf: tokenizer.ggml.token_type has 1 entries for 2 tokens")
        }
        XCTAssertThrowsError(try ByteLevelBPETokenizer(ggufTokens: ["a", "b"], merges: ["a b"], tokenTypes: nil,
                                                       bosID: nil, eosID: nil, pre: nil, source: "m.gguf")) { error in
            XCTAssertEqual("\(error)", "m.gguf: merge 1 \"a b\" makes a token not in the vocabulary")
        }
        XCTAssertThrowsError(try ByteLevelBPETokenizer(ggufTokens: ["a"], merges: [], tokenTypes: nil,
                                                       bosID: 5, eosID: nil, pre: nil, source: "m.gguf")) { error in
            XCTAssertEqual("\(error)", "m.gguf: BOS id 5 is outside the vocabulary of 1 tokens")
        }
        XCTAssertThrowsError(try ByteLevelBPETokenizer(ggufTokens: ["a"], merges: [], tokenTypes: nil,
                                                       bosID: nil, eosID: nil, pre: "tekken", source: "m.gguf")) { error in
            XCTAssertEqual("\(error)", "m.gguf: pre-tokenizer \"tekken\" is not supported yet")
        }
    }
}

/// Just enough of GGUF v2/v3 to read the tokenizer's metadata in a test (the runtime has its own
/// reader): magic "GGUF", u32 version, u64 tensor count, u64 key/value count, then key/value
/// pairs — a u64-length string key, a u32 type, the value; arrays are an element type, a u64
/// count and the elements. Little-endian throughout.
struct GGUFMetadataForTests {
    enum Value {
        case integer(Int64), float(Double), bool(Bool), string(String), array([Value])
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    private(set) var values: [String: Value] = [:]

    init(path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        var reader = Reader(bytes: data)
        guard try reader.take(4) == Data("GGUF".utf8) else { throw Failure(description: "\(path): not a GGUF file") }
        let version = try reader.u32()
        guard version == 2 || version == 3 else { throw Failure(description: "\(path): GGUF version \(version)") }
        _ = try reader.u64()
        let count = try reader.u64()
        for _ in 0..<count {
            let key = try reader.string()
            values[key] = try reader.value(type: try reader.u32())
        }
    }

    func string(_ key: String) throws -> String {
        guard case .string(let s)? = values[key] else { throw Failure(description: "no string \(key)") }
        return s
    }

    func int32(_ key: String) throws -> Int32 {
        guard case .integer(let v)? = values[key] else { throw Failure(description: "no integer \(key)") }
        return Int32(v)
    }

    func strings(_ key: String) throws -> [String] {
        guard case .array(let items)? = values[key] else { throw Failure(description: "no array \(key)") }
        return try items.map { item in
            guard case .string(let s) = item else { throw Failure(description: "\(key) is not strings") }
            return s
        }
    }

    func int32s(_ key: String) throws -> [Int32] {
        guard case .array(let items)? = values[key] else { throw Failure(description: "no array \(key)") }
        return try items.map { item in
            guard case .integer(let v) = item else { throw Failure(description: "\(key) is not integers") }
            return Int32(v)
        }
    }

    private struct Reader {
        let bytes: Data
        var offset = 0

        mutating func take(_ n: Int) throws -> Data {
            guard n >= 0, offset + n <= bytes.count else { throw Failure(description: "GGUF truncated at byte \(offset)") }
            defer { offset += n }
            return bytes.subdata(in: (bytes.startIndex + offset)..<(bytes.startIndex + offset + n))
        }

        mutating func little<T: FixedWidthInteger>(_: T.Type) throws -> T {
            let d = try take(MemoryLayout<T>.size)
            var v: T = 0
            for (i, b) in d.enumerated() { v |= T(truncatingIfNeeded: b) << (8 * i) }
            return v
        }

        mutating func u32() throws -> UInt32 { try little(UInt32.self) }
        mutating func u64() throws -> UInt64 { try little(UInt64.self) }

        mutating func string() throws -> String {
            let n = try u64()
            return String(decoding: try take(Int(n)), as: UTF8.self)
        }

        mutating func value(type: UInt32) throws -> Value {
            switch type {
            case 0: return .integer(Int64(try little(UInt8.self)))
            case 1: return .integer(Int64(try little(Int8.self)))
            case 2: return .integer(Int64(try little(UInt16.self)))
            case 3: return .integer(Int64(try little(Int16.self)))
            case 4: return .integer(Int64(try little(UInt32.self)))
            case 5: return .integer(Int64(try little(Int32.self)))
            case 6: return .float(Double(Float(bitPattern: try little(UInt32.self))))
            case 7: return .bool(try little(UInt8.self) != 0)
            case 8: return .string(try string())
            case 9:
                let elementType = try u32()
                let count = try u64()
                var items: [Value] = []
                items.reserveCapacity(Int(count))
                for _ in 0..<count { items.append(try value(type: elementType)) }
                return .array(items)
            case 10: return .integer(Int64(bitPattern: try little(UInt64.self)))
            case 11: return .integer(try little(Int64.self))
            case 12: return .float(Double(bitPattern: try little(UInt64.self)))
            default: throw Failure(description: "GGUF value type \(type) at byte \(offset)")
            }
        }
    }
}
