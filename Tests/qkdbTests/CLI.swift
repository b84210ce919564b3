import XCTest
import Foundation

/// Runs the real `qkdb` binary (built next to this test bundle) and captures what it prints.
/// Every command-line test goes through here, so it exercises exactly what a user runs.
enum CLI {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        /// Non-empty stderr lines (a failing command must print exactly one).
        var errorLines: [Substring] { stderr.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty } }
    }

    /// The repository root (two levels above this file's folder).
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var binary: URL {
        // QKDB_BINARY runs another build (tools/planted_family.sh scores the release binary).
        if let path = ProcessInfo.processInfo.environment["QKDB_BINARY"], !path.isEmpty {
            return URL(fileURLWithPath: path, relativeTo: root).absoluteURL
        }
        // The test bundle lives in .build/<config>/; the executable sits beside it.
        let fromBundle = Bundle(for: Marker.self).bundleURL.deletingLastPathComponent().appendingPathComponent("qkdb")
        if FileManager.default.isExecutableFile(atPath: fromBundle.path) { return fromBundle }
        return root.appendingPathComponent(".build/debug/qkdb")
    }

    @discardableResult
    static func run(_ args: [String], cwd: URL? = nil, environment: [String: String]? = nil) throws -> Result {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        if let cwd { p.currentDirectoryURL = cwd }
        if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        // Read both pipes fully before waiting, so a large output cannot deadlock the child.
        var o = Data(), e = Data()
        let group = DispatchGroup()
        group.enter(); DispatchQueue.global().async { o = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter(); DispatchQueue.global().async { e = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.wait()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// Asserts a command failed cleanly: non-zero exit, one stderr line containing `fragment`.
    static func assertFails(_ args: [String], mentioning fragment: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try run(args)
        XCTAssertNotEqual(r.status, 0, "expected failure: qkdb \(args.joined(separator: " "))", file: file, line: line)
        XCTAssertEqual(r.errorLines.count, 1, "expected one error line, got: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(fragment), "stderr '\(r.stderr)' lacks '\(fragment)'", file: file, line: line)
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Stack dump"), "crashed: \(r.stderr)", file: file, line: line)
    }

    /// A fresh temporary directory, removed at the end of the test.
    static func temporaryDirectory(_ test: XCTestCase) -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("qkdb-test-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    private final class Marker {}
}

final class CLIBasicsTests: XCTestCase {
    func testHelpListsEveryCommand() throws {
        let r = try CLI.run(["--help"])
        XCTAssertEqual(r.status, 0)
        for c in ["harvest", "train", "mask", "eval", "run", "sweep", "runs", "pairs", "sinks", "feature", "explain", "export", "verify"] {
            XCTAssertTrue(r.stdout.contains("  \(c) "), "help lacks \(c)")
        }
    }

    func testUnknownCommandFailsWithOneLine() throws {
        let r = try CLI.run(["frobnicate"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertFalse(r.stderr.isEmpty)
    }
}
