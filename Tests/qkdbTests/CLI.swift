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
        let (status, o, e) = try execute(binary, args, cwd: cwd, environment: environment)
        return Result(status: status, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// Runs a program to completion, capturing its status, stdout and stderr.
    static func execute(_ executable: URL, _ args: [String], cwd: URL? = nil, environment: [String: String]? = nil) throws -> (Int32, Data, Data) {
        let p = Process()
        p.executableURL = executable
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
        return (p.terminationStatus, o, e)
    }

    /// Asserts a command failed cleanly: non-zero exit, one stderr line containing `fragment`.
    static func assertFails(_ args: [String], mentioning fragment: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try run(args)
        XCTAssertNotEqual(r.status, 0, "expected failure: qkdb \(args.joined(separator: " "))", file: file, line: line)
        XCTAssertEqual(r.errorLines.count, 1, "expected one error line, got: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(fragment), "stderr '\(r.stderr)' lacks '\(fragment)'", file: file, line: line)
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Stack dump"), "crashed: \(r.stderr)", file: file, line: line)
    }

    /// Runs the python3 on PATH (as tools/test.sh sets it up) with `args`; skips the test when
    /// there is none. Returns its status, stdout and stderr.
    static func python(_ args: [String]) throws -> (status: Int32, stdout: Data, stderr: String) {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
        guard let python = dirs.map({ "\($0)/python3" }).first(where: FileManager.default.isExecutableFile) else { throw XCTSkip("python3 is not installed") }
        let (status, o, e) = try execute(URL(fileURLWithPath: python), args)
        return (status, o, String(decoding: e, as: UTF8.self))
    }

    /// Runs SQL on a store file with Python's sqlite3 (how tests damage or edit a store).
    static func sql(_ statements: String, on store: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try python(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()", store, statements])
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
    }

    /// A store holding one imported run ("m": 2 heads, 10 × 10 features), made by `import-pairs`.
    static func importedStore(in dir: URL, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let map = StoreCommandTests.makeMap(nHead: 2, dQuery: 10, dKey: 10, every: 3)
        let coo = dir.appendingPathComponent("coo.safetensors").path
        try StoreCommandTests.write(map, to: coo)
        let store = dir.appendingPathComponent("s.qkdb").path
        let r = try run(["import-pairs", "--store", store, "--name", "m", "--coo", coo])
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        return store
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
        for c in ["harvest", "train", "mask", "eval", "run", "sweep", "runs", "heads", "pairs", "sinks", "feature", "features", "label",
                  "explain", "export", "export-dictionaries", "import-pairs", "verify", "report"] {
            XCTAssertTrue(r.stdout.contains("  \(c) "), "help lacks \(c)")
        }
    }

    func testUnknownCommandFailsWithOneLine() throws {
        let r = try CLI.run(["frobnicate"])
        XCTAssertEqual(r.status, 64)
        XCTAssertEqual(r.errorLines.count, 1, r.stderr)
    }

    /// Argument errors are one line (ArgumentParser's own message, then where the usage is); help
    /// and --version are ArgumentParser's own output, exit 0.
    func testArgumentErrorsAreOneLineAndVersionPrints() throws {
        for args in [["pairs", "--store", "s.qkdb"], ["sinks", "--store", "s.qkdb", "--run", "x"], ["heads", "--bogus"], ["explain", "--format", "xml"]] {
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 64, "qkdb \(args.joined(separator: " "))")
            XCTAssertEqual(r.errorLines.count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("(see 'qkdb \(args[0]) --help')"), r.stderr)
            XCTAssertEqual(r.stdout, "")
        }
        let v = try CLI.run(["--version"])
        XCTAssertEqual(v.status, 0)
        XCTAssertTrue(v.stdout.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, v.stdout)
        let help = try CLI.run(["pairs", "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("USAGE:"))
    }
}
