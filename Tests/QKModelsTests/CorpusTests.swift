import XCTest
import QKTensor
@testable import QKModels

final class CorpusTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-corpus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func write(_ name: String, _ text: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func testTextFilesSplitOnBlankLines() throws {
        let p = try write("a.txt", "first line\nstill first\n\n  \nsecond\r\n\r\n\n\nthird\n")
        XCTAssertEqual(try DocumentReader.documents(at: p), ["first line\nstill first", "second", "third"])
    }

    func testJSONLReadsTextFieldAndNamesBadLines() throws {
        let p = try write("a.jsonl", "{\"text\": \"one\"}\n\n{\"text\": \"two\", \"id\": 3}\n")
        XCTAssertEqual(try DocumentReader.documents(at: p), ["one", "two"])
        let bad = try write("b.jsonl", "{\"text\": \"one\"}\n{\"body\": \"x\"}\n")
        XCTAssertThrowsError(try DocumentReader.documents(at: bad)) { XCTAssertTrue("\($0)".contains("line 2"), "\($0)") }
    }

    func testDirectoriesAreReadRecursivelyInPathOrder() throws {
        _ = try write("d/b.txt", "B1\n\nB2")
        _ = try write("d/a/z.jsonl", "{\"text\": \"A\"}")
        _ = try write("d/ignored.csv", "x,y")
        XCTAssertEqual(try DocumentReader.documents(at: dir.appendingPathComponent("d").path), ["A", "B1", "B2"])
    }

    func testUnreadableCorpusPathsAreNamed() throws {
        XCTAssertThrowsError(try DocumentReader.documents(at: dir.appendingPathComponent("missing.txt").path)) {
            XCTAssertTrue("\($0)".contains("missing.txt: corpus path does not exist"), "\($0)")
        }
        let csv = try write("x.csv", "a")
        XCTAssertThrowsError(try DocumentReader.documents(at: csv)) { XCTAssertTrue("\($0)".contains("unsupported corpus file")) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("empty"), withIntermediateDirectories: true)
        XCTAssertThrowsError(try DocumentReader.documents(at: dir.appendingPathComponent("empty").path)) {
            XCTAssertTrue("\($0)".contains("no .txt or .jsonl files"))
        }
    }

    func testBertPackingStartsEverySequenceWithCLSAndSeparatesDocuments() throws {
        // [CLS]=101, [SEP]=102; documents 1 2 3 | 4 5 | 6 7 8 9
        let rule = PackingRule(context: 4, start: 101, separator: 102)
        let set = try SequencePacker.pack([[1, 2, 3], [4, 5], [], [6, 7, 8, 9]], rule: rule)
        // stream: 1 2 3 SEP 4 5 SEP 6 7 8 9 SEP → pieces of 3 after [CLS]
        XCTAssertEqual(set.ids, [101, 1, 2, 3, 101, 102, 4, 5, 101, 102, 6, 7, 101, 8, 9, 102])
        XCTAssertEqual(set.count, 4)
        XCTAssertEqual(try SequencePacker.pack([[1, 2, 3], [4, 5], [6, 7, 8, 9]], rule: rule, limit: 2).count, 2)
    }

    func testDecoderPackingWithAndWithoutBOS() throws {
        let withBOS = try SequencePacker.pack([[1, 2], [3, 4, 5]], rule: PackingRule(context: 3, start: 0, separator: 0))
        XCTAssertEqual(withBOS.ids, [0, 1, 2, 0, 0, 3, 0, 4, 5])  // stream 1 2 EOS 3 4 5 EOS: last EOS dropped
        let noBOS = try SequencePacker.pack([[1, 2], [3, 4, 5]], rule: PackingRule(context: 3, start: nil, separator: 9))
        XCTAssertEqual(noBOS.ids, [1, 2, 9, 3, 4, 5])
        XCTAssertThrowsError(try SequencePacker(rule: PackingRule(context: 1, start: 0, separator: nil)))
    }

    func testSplitShuffleAndBatchesAreDeterministic() throws {
        let set = SequenceSet(ids: (0..<40).map { Int32($0) }, context: 2)  // 20 sequences
        let (train, held) = set.split(heldOutFraction: 0.05)
        XCTAssertEqual(held.count, 1)
        XCTAssertEqual(held.ids, [38, 39])
        XCTAssertEqual(train.count, 19)
        let a = train.shuffled(seed: 7), b = train.shuffled(seed: 7), c = train.shuffled(seed: 8)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertNotEqual(a, train)
        XCTAssertEqual(Set(a.ids), Set(train.ids))
        var batches = a.batches(size: 8)
        XCTAssertEqual(batches.batchCount, 3)
        let sizes = Array(IteratorSequence(batches)).map(\.batch)
        XCTAssertEqual(sizes, [8, 8, 3])
        XCTAssertEqual(batches.next()?.length, 2)
    }

    func testTokenArraysFromNPYAndSafeTensors() throws {
        // int64 .npy [2, 3], written byte by byte as NumPy does (version 1.0 header).
        var header = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0]) + Data(header.utf8)
        for v: Int64 in [5, 6, 7, 8, 9, 10] { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        let npy = dir.appendingPathComponent("t.npy")
        try data.write(to: npy)
        let set = try TokenArrayReader.read(path: npy.path)
        XCTAssertEqual(set.context, 3)
        XCTAssertEqual(set.ids, [5, 6, 7, 8, 9, 10])
        // Truncated data is an error naming the file.
        try data.prefix(data.count - 4).write(to: npy)
        XCTAssertThrowsError(try TokenArrayReader.read(path: npy.path)) { XCTAssertTrue("\($0)".contains("t.npy"), "\($0)") }

        var w = SafeTensorsWriter()
        w.add("tokens", shape: [1, 4], int32: [1, 2, 3, 4])
        let st = dir.appendingPathComponent("t.safetensors").path
        try w.write(to: st)
        XCTAssertEqual(try TokenArrayReader.read(path: st).ids, [1, 2, 3, 4])
        var f = SafeTensorsWriter()
        f.add("tokens", shape: [4], int32: [1, 2, 3, 4])
        try f.write(to: st)
        XCTAssertThrowsError(try TokenArrayReader.read(path: st)) { XCTAssertTrue("\($0)".contains("expected [n, context]"), "\($0)") }
    }
}
