import Foundation
import XCTest
import GRDB
@testable import QKStore

/// The code applies exactly `schema/store.sql`, and its text says enough to read the blobs.
final class SchemaTests: XCTestCase {
    /// tools/store/read_tensor.py decodes a tensor qkdb wrote using only Python's sqlite3,
    /// zstandard and numpy and the encodings the schema's header documents (checksum included).
    func testATensorDecodesWithPythonFollowingTheSchemaText() throws {
        // The python3 on PATH, as tools/test.sh (which installs zstandard and numpy for it) sees it.
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
        guard let python = dirs.map({ "\($0)/python3" }).first(where: FileManager.default.isExecutableFile) else { throw XCTSkip("python3 is not installed") }
        let path = StoreTestSupport.temporaryStorePath(self)
        let store = try Store(path: path, mode: .create)
        let run = try store.createRun(RunSpec(name: "t", kind: .imported, nHead: 1, dQuery: 1, dKey: 1))
        var rng = StoreTestSupport.Rng(state: 7)
        // 105 values: whole 32-byte checksum blocks, a word and a tail; signs, tiny and huge magnitudes.
        let values = (0..<105).map { i in (rng.float() - 0.5) * Float(sign: .plus, exponent: i % 40 - 20, significand: 1) }
        try store.putTensor(run: run, name: "W", shape: [3, 5, 7], values: values)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [StoreTestSupport.root.appendingPathComponent("tools/store/read_tensor.py").path, path, String(run), "W"]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "read_tensor.py failed (tools/test.sh installs zstandard and numpy): \(errors)")
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(json["shape"] as? [Int], [3, 5, 7])
        let got = try XCTUnwrap(json["values"] as? [Double]).map(Float.init)
        XCTAssertEqual(got.map(\.bitPattern), values.map(\.bitPattern))
    }

    func testEmbeddedSchemaIsTheSQLFileVerbatim() throws {
        let file = try String(contentsOf: StoreTestSupport.root.appendingPathComponent("schema/store.sql"), encoding: .utf8)
        XCTAssertEqual(StoreSchema.sql + "\n", file, "run tools/store/embed_schema.sh after editing schema/store.sql")
    }

    func testNewStoreHoldsExactlyTheSchemaObjects() throws {
        let path = StoreTestSupport.temporaryStorePath(self)
        _ = try Store(path: path, mode: .create)
        // Apply the SQL file to an empty in-memory database and compare the catalogs.
        let file = try String(contentsOf: StoreTestSupport.root.appendingPathComponent("schema/store.sql"), encoding: .utf8)
        let reference = try DatabaseQueue()
        try reference.write { try $0.execute(sql: file) }
        let catalog = "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        let expected = try reference.read { try Row.fetchAll($0, sql: catalog) }
        let actual = try DatabaseQueue(path: path).read { try Row.fetchAll($0, sql: catalog) }
        XCTAssertEqual(actual, expected)
        XCTAssertFalse(expected.isEmpty)
        let meta = try DatabaseQueue(path: path).read { try String.fetchOne($0, sql: "SELECT value FROM meta WHERE key = 'format_version'") }
        XCTAssertEqual(meta, String(StoreSchema.formatVersion))
    }
}
