import XCTest
import Foundation

/// Query commands open a store read-only: on a store whose file and directory are not writable
/// they answer exactly what they answer on a writable copy, write no byte and create no file
/// (no `-wal`, no `-shm`) — both for a store at rest (rollback-journal mode, what writers leave)
/// and for one a writer left in WAL mode. Tests run as root, which `chmod` does not stop, so
/// "nothing written" is checked directly: same bytes, same directory listing.
final class ReadOnlyStoreTests: XCTestCase {
    static let queries: [[String]] = [
        ["runs"], ["runs", "--format", "json"], ["runs", "--evaluations"],
        ["pairs", "--run", "1", "--query-feature", "3"], ["pairs", "--run", "1", "--key-feature", "5", "--format", "csv"],
        ["sinks", "--run", "1"], ["feature", "--run", "1", "--side", "query", "--index", "2"],
        ["export", "--run", "1", "--what", "pairs", "--out", "-"], ["verify"],
    ]

    /// Every query's status and output, and the directory's files with their bytes, around them.
    func answers(_ store: String) throws -> [String] {
        try Self.queries.map { q in
            let r = try CLI.run([q[0], "--store", store] + q.dropFirst())
            return "\(r.status)\n\(r.stdout + r.stderr)".replacingOccurrences(of: store, with: "STORE")
        }
    }

    func assertReadOnlyAnswersMatch(_ writable: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let fm = FileManager.default
        let want = try answers(writable)
        let folder = CLI.temporaryDirectory(self).appendingPathComponent("share")
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        let store = folder.appendingPathComponent(URL(fileURLWithPath: writable).lastPathComponent).path
        try fm.copyItem(atPath: writable, toPath: store)
        try fm.setAttributes([.posixPermissions: 0o444], ofItemAtPath: store)
        try fm.setAttributes([.posixPermissions: 0o555], ofItemAtPath: folder.path)
        addTeardownBlock { try? fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder.path) }
        let before = OutputSafetyTests.snapshot(folder.path)
        let got = try answers(store)
        for (q, (w, g)) in zip(Self.queries, zip(want, got)) {
            XCTAssertEqual(g, w, "qkdb \(q.joined(separator: " ")) answers differently on the read-only store", file: file, line: line)
        }
        XCTAssertEqual(OutputSafetyTests.snapshot(folder.path), before, "a query wrote to the read-only store's folder", file: file, line: line)
        XCTAssertTrue(want.allSatisfy { !$0.contains("readonly") && !$0.contains("cannot write") }, "\(want)", file: file, line: line)
    }


    func testAStoreAtRestIsOneFileAndAnswersReadOnly() throws {
        let dir = CLI.temporaryDirectory(self)
        let store = try CLI.importedStore(in: dir)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["coo.safetensors", "s.qkdb"])
        try assertReadOnlyAnswersMatch(store)
    }

    /// Stores written before writers restored rollback mode say WAL in their header.
    func testAWALModeStoreAnswersReadOnlyWithoutCreatingItsIndex() throws {
        let dir = CLI.temporaryDirectory(self)
        let store = try CLI.importedStore(in: dir)
        var header = try Data(contentsOf: URL(fileURLWithPath: store))
        header[18] = 2; header[19] = 2   // WAL read/write versions (SQLite file format)
        try header.write(to: URL(fileURLWithPath: store))
        try assertReadOnlyAnswersMatch(store)
    }
}
