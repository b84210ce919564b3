import Foundation
import XCTest
@testable import QKModels

/// The tokenizers against Hugging Face's own output on the same files.
final class TokenizerTests: XCTestCase {
    // MARK: BERT WordPiece (the bundled all-MiniLM-L6-v2 vocabulary)

    private var miniLM: String { TokenizerFixtures.root.appendingPathComponent("models/all-MiniLM-L6-v2").path }

    func testWordPieceMatchesBertTokenizerFast() throws {
        let tokenizer = try WordPieceTokenizer.load(vocabTXT: miniLM + "/vocab.txt")
        try TokenizerFixtures.assertMatches(tokenizer, "expected_bert.json")
    }

    func testWordPieceFromTokenizerJSONMatchesToo() throws {
        let tokenizer = try WordPieceTokenizer.load(tokenizerJSON: miniLM + "/tokenizer.json")
        XCTAssertEqual(tokenizer.vocabSize, 30522)
        try TokenizerFixtures.assertMatches(tokenizer, "expected_bert.json")
    }

    func testWordPieceSpecialTokensAndStrings() throws {
        let tokenizer = try loadTokenizer(modelDirectory: miniLM, architecture: .bert)
        XCTAssertEqual(tokenizer.vocabSize, 30522)
        XCTAssertEqual(tokenizer.bosID, 101)   // [CLS]
        XCTAssertEqual(tokenizer.eosID, 102)   // [SEP]
        let ids = tokenizer.encode("Tokenizers!")
        XCTAssertEqual(ids.map(tokenizer.tokenString), ["token", "##izer", "##s", "!"])
        XCTAssertEqual(tokenizer.encode(String(repeating: "a", count: 101)), [100])  // [UNK]
        XCTAssertEqual(tokenizer.encode(String(repeating: "a", count: 100)).contains(100), false)
    }

    // MARK: byte-level BPE (a tiny GPT-2-style vocabulary trained for the fixtures)

    func testGPT2FilesMatchGPT2TokenizerFast() throws {
        let tokenizer = try ByteLevelBPETokenizer.load(vocabJSON: TokenizerFixtures.path("tiny_bpe/vocab.json"),
                                                       mergesTXT: TokenizerFixtures.path("tiny_bpe/merges.txt"))
        try TokenizerFixtures.assertMatches(tokenizer, "expected_gpt2.json")
    }

    func testTokenizerJSONMatchesTheSameVocabularyFiles() throws {
        let tokenizer = try loadTokenizer(modelDirectory: TokenizerFixtures.path("tiny_bpe"), architecture: .gpt2)
        XCTAssertEqual((tokenizer as? ByteLevelBPETokenizer)?.pattern, .gpt2)
        try TokenizerFixtures.assertMatches(tokenizer, "expected_gpt2.json")
    }

    func testLlama3SplitMatchesHuggingFace() throws {
        let tokenizer = try ByteLevelBPETokenizer.load(tokenizerJSON: TokenizerFixtures.path("tiny_bpe_llama3/tokenizer.json"))
        XCTAssertEqual(tokenizer.pattern, .llama3(maxDigits: 3))
        try TokenizerFixtures.assertMatches(tokenizer, "expected_llama3.json")
    }

    func testQwen2SplitMatchesHuggingFace() throws {
        let tokenizer = try ByteLevelBPETokenizer.load(tokenizerJSON: TokenizerFixtures.path("tiny_bpe_qwen2/tokenizer.json"))
        XCTAssertEqual(tokenizer.pattern, .llama3(maxDigits: 1))
        XCTAssertTrue(tokenizer.normalizesNFC)
        try TokenizerFixtures.assertMatches(tokenizer, "expected_qwen2.json")
    }

    func testDigitsAndPrefixSpaceMatchHuggingFace() throws {
        let tokenizer = try ByteLevelBPETokenizer.load(tokenizerJSON: TokenizerFixtures.path("tiny_bpe_digits/tokenizer.json"))
        XCTAssertTrue(tokenizer.splitsDigits)
        XCTAssertTrue(tokenizer.addsPrefixSpace)
        try TokenizerFixtures.assertMatches(tokenizer, "expected_digits.json")
    }

    func testByteLevelRoundTripsArbitraryText() throws {
        let tokenizer = try loadTokenizer(modelDirectory: TokenizerFixtures.path("tiny_bpe"), architecture: .gpt2)
        for text in ["", " ", "a\u{0}b", "👨‍👩‍👧‍👦 \u{10FFFF} \u{FFFD}", String(repeating: " ", count: 5000) + "x",
                     "<|endoftext|><|endoftext", String(repeating: "abc", count: 2000)] {
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(text)), text)
        }
    }

    func testTokenStringShowsBytesAsText() throws {
        let tokenizer = try ByteLevelBPETokenizer.load(vocabJSON: TokenizerFixtures.path("tiny_bpe/vocab.json"),
                                                       mergesTXT: TokenizerFixtures.path("tiny_bpe/merges.txt"))
        let hello = tokenizer.encode(" the")
        XCTAssertEqual(hello.map(tokenizer.tokenString).joined(), " the")
        XCTAssertEqual(tokenizer.tokenString(tokenizer.encode("<|endoftext|>")[0]), "<|endoftext|>")
        // "é" is two bytes; a vocabulary this small has them as two tokens, each half a character.
        let accent = tokenizer.encode("é")
        XCTAssertEqual(accent.count, 2)
        XCTAssertEqual(accent.map(tokenizer.tokenString), ["\\xC3", "\\xA9"])
        XCTAssertEqual(ByteLevelBPETokenizer.readable([0x61, 0xE2, 0x82, 0xAC, 0xE2, 0x82]), "a€\\xE2\\x82")
    }

    func testMergesApplyLowestRankFirstAndLeftmostOnTies() throws {
        // Ranks: "a a" before "b a"; in "baaa" the leftmost "a a" merges first, leaving "b", "aa", "a".
        let vocab: [String: Int32] = ["a": 0, "b": 1, "aa": 2, "ba": 3, "baa": 4]
        let tokenizer = try ByteLevelBPETokenizer(vocabulary: vocab, merges: [("a", "a"), ("b", "a"), ("b", "aa")],
                                                  pattern: .none, source: "test")
        XCTAssertEqual(tokenizer.encode("aaa"), [2, 0])
        XCTAssertEqual(tokenizer.encode("baaa"), [4, 0])
        XCTAssertEqual(tokenizer.encode("ba"), [3])
    }

    func testIgnoreMergesTakesWholeWordsFromTheVocabulary() throws {
        // Merges alone turn "abc" into "a" + "bc"; with ignore_merges the whole word wins.
        let vocab: [String: Int32] = ["a": 0, "b": 1, "c": 2, "bc": 3, "abc": 4]
        let plain = try ByteLevelBPETokenizer(vocabulary: vocab, merges: [("b", "c")], pattern: .gpt2, source: "test")
        let ignoring = try ByteLevelBPETokenizer(vocabulary: vocab, merges: [("b", "c")], pattern: .gpt2,
                                                 ignoresMergesForKnownWords: true, source: "test")
        XCTAssertEqual(plain.encode("abc"), [0, 3])
        XCTAssertEqual(ignoring.encode("abc"), [4])
        XCTAssertEqual(ignoring.encode("abcc"), [0, 3, 2])
    }

    // MARK: errors

    func testMissingFilesAreNamed() throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        XCTAssertThrowsError(try loadTokenizer(modelDirectory: empty.path, architecture: .bert)) { error in
            XCTAssertEqual("\(error)", "\(empty.path): no tokenizer files (a BERT model needs vocab.txt or tokenizer.json)")
        }
        XCTAssertThrowsError(try loadTokenizer(modelDirectory: empty.path, architecture: .gpt2)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(empty.path): no tokenizer files (a byte-level BPE model needs tokenizer.json, or vocab.json + merges.txt)"), "\(error)")
        }
        XCTAssertThrowsError(try loadTokenizer(modelDirectory: empty.path + "/nope", architecture: .gpt2)) { error in
            XCTAssertEqual("\(error)", "\(empty.path)/nope: no such model directory")
        }
        try "{}".write(to: empty.appendingPathComponent("vocab.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadTokenizer(modelDirectory: empty.path, architecture: .gpt2)) { error in
            XCTAssertEqual("\(error)", "\(empty.path)/merges.txt: missing (byte-level BPE merges)")
        }
    }

    func testMalformedFilesAreNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let vocab = dir.appendingPathComponent("vocab.json"), merges = dir.appendingPathComponent("merges.txt")
        try "#version: 0.2\na b\n".write(to: merges, atomically: true, encoding: .utf8)

        try "{\"a\": 0, \"b\": ".write(to: vocab, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadTokenizer(modelDirectory: dir.path, architecture: .gpt2)) { error in
            XCTAssertEqual("\(error)", "\(vocab.path): not valid JSON (byte-level BPE vocabulary)")
        }
        try "[\"a\", \"b\"]".write(to: vocab, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadTokenizer(modelDirectory: dir.path, architecture: .gpt2)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(vocab.path): not a JSON object"), "\(error)")
        }
        try "{\"a\": 0, \"b\": \"one\"}".write(to: vocab, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadTokenizer(modelDirectory: dir.path, architecture: .gpt2)) { error in
            XCTAssertEqual("\(error)", "\(vocab.path): token \"b\" has id \"one\", not a non-negative integer")
        }
        try "{\"a\": 0, \"b\": 1}".write(to: vocab, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadTokenizer(modelDirectory: dir.path, architecture: .gpt2)) { error in
            XCTAssertTrue("\(error)".hasSuffix("merge 1 \"a b\" makes a token not in the vocabulary"), "\(error)")
        }
        try "#version: 0.2\na b c\n".write(to: merges, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadTokenizer(modelDirectory: dir.path, architecture: .gpt2)) { error in
            XCTAssertEqual("\(error)", "\(merges.path): merge 2 \"a b c\" is not two tokens separated by one space")
        }
        let vocabTXT = dir.appendingPathComponent("vocab.txt")
        try "[PAD]\nhello\n".write(to: vocabTXT, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadTokenizer(modelDirectory: dir.path, architecture: .bert)) { error in
            XCTAssertEqual("\(error)", "\(vocabTXT.path): the vocabulary has no [UNK] token")
        }
        try Data([0x5B, 0x55, 0x4E, 0x4B, 0x5D, 0x0A, 0xFF, 0xFE]).write(to: vocabTXT)
        XCTAssertThrowsError(try loadTokenizer(modelDirectory: dir.path, architecture: .bert)) { error in
            XCTAssertEqual("\(error)", "\(vocabTXT.path): not valid UTF-8 (BERT WordPiece vocabulary)")
        }
    }

    func testUnsupportedTokenizerJSONIsRefusedByName() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = dir.appendingPathComponent("tokenizer.json")
        try #"{"model": {"type": "Unigram", "vocab": []}}"#.write(to: json, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadTokenizer(modelDirectory: dir.path, architecture: .llama)) { error in
            XCTAssertEqual("\(error)", "\(json.path): model type \"Unigram\" is not BPE")
        }
        try #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Metaspace"}}"#
            .write(to: json, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadTokenizer(modelDirectory: dir.path, architecture: .llama)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(json.path): pre-tokenizer step {\"type\":\"Metaspace\"} is not supported"), "\(error)")
        }
    }
}
