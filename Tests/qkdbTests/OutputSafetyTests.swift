import XCTest
import Foundation

/// No writer destroys what it did not write: `export`, `harvest` and `export-dictionaries` pointed
/// at a directory, a store or someone else's file leave it byte for byte as it was and fail with
/// one line; `--force` replaces; an earlier output of the same writer is replaced without it;
/// `--out -` streams the same bytes a file gets. (`report` and the dashboard export: in
/// ExploreCommandTests, which has a trained run.)
final class OutputSafetyTests: XCTestCase {
    /// Every file under `path` (or the file itself) with its bytes, for before/after comparisons.
    static func snapshot(_ path: String) -> [String: Data] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { return [:] }
        guard isDirectory.boolValue else { return ["": fm.contents(atPath: path) ?? Data()] }
        var out: [String: Data] = [:]
        for name in fm.enumerator(atPath: path)?.allObjects as? [String] ?? [] {
            out[name] = fm.contents(atPath: path + "/" + name) ?? Data("<dir>".utf8)
        }
        return out
    }

    /// A directory of someone's files, a store and an unrelated file, side by side in `dir`.
    static func victims(in dir: URL, store: String) throws -> [String] {
        let folder = dir.appendingPathComponent("results")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try Data("notes\n".utf8).write(to: folder.appendingPathComponent("notes.txt"))
        try Data("more\n".utf8).write(to: folder.appendingPathComponent("sub/x.csv"))
        let storeCopy = dir.appendingPathComponent("copy.qkdb").path
        try FileManager.default.copyItem(atPath: store, toPath: storeCopy)
        let file = dir.appendingPathComponent("thesis.tex").path
        try Data("\\documentclass{article}\n".utf8).write(to: URL(fileURLWithPath: file))
        return [folder.path, storeCopy, file]
    }

    /// `args + [path]` fails with one line naming the path and leaves it exactly as it was.
    static func assertRefusesToReplace(_ args: [String], _ path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let before = snapshot(path)
        try CLI.assertFails(args + [path], mentioning: "refusing to replace", file: file, line: line)
        XCTAssertEqual(snapshot(path), before, "\(path) changed", file: file, line: line)
        let siblings = try FileManager.default.contentsOfDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path)
        XCTAssertFalse(siblings.contains { $0.contains(".partial-") || $0.contains(".old-") }, "left behind: \(siblings)", file: file, line: line)
    }


    func testExportRefusesADirectoryAStoreAndAForeignFile() throws {
        let dir = CLI.temporaryDirectory(self)
        let store = try CLI.importedStore(in: dir)
        for what in ["pairs", "features", "examples"] {
            for victim in try Self.victims(in: dir.appendingPathComponent(what), store: store) {
                try Self.assertRefusesToReplace(["export", "--store", store, "--run", "1", "--what", what, "--out"], victim)
            }
        }
        // The store being read is no exception.
        try Self.assertRefusesToReplace(["export", "--store", store, "--run", "1", "--what", "pairs", "--out"], store)
    }

    func testExportReplacesItsOwnEarlierOutputAndForceReplacesAnything() throws {
        let dir = CLI.temporaryDirectory(self)
        let store = try CLI.importedStore(in: dir)
        let out = dir.appendingPathComponent("pairs.csv").path
        let first = try CLI.run(["export", "--store", store, "--run", "1", "--what", "pairs", "--out", out])
        XCTAssertEqual(first.status, 0, first.stderr)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: out))
        // An earlier pairs export may be replaced by a features export (both are ours).
        let again = try CLI.run(["export", "--store", store, "--run", "1", "--what", "features", "--out", out])
        XCTAssertEqual(again.status, 0, again.stderr)
        for victim in try Self.victims(in: dir, store: store) {
            let r = try CLI.run(["export", "--store", store, "--run", "1", "--what", "pairs", "--out", victim, "--force"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: victim)), bytes, victim)
        }
    }

    func testExportToStandardOutputGivesTheFileBytes() throws {
        let dir = CLI.temporaryDirectory(self)
        let store = try CLI.importedStore(in: dir)
        for what in ["pairs", "features", "examples"] {
            let out = dir.appendingPathComponent("\(what).csv").path
            XCTAssertEqual(try CLI.run(["export", "--store", store, "--run", "1", "--what", what, "--out", out]).status, 0)
            let piped = try CLI.run(["export", "--store", store, "--run", "1", "--what", what, "--out", "-"], cwd: dir)
            XCTAssertEqual(piped.status, 0, piped.stderr)
            XCTAssertEqual(Data(piped.stdout.utf8), try Data(contentsOf: URL(fileURLWithPath: out)), what)
            XCTAssertEqual(piped.stderr, "")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("-").path), "wrote a file named -")
    }

    /// `train --checkpoint` names where Ctrl-C would write: someone's file there is refused up
    /// front, before a store is created or a step is trained.
    func testTrainRefusesACheckpointPathItDidNotWrite() throws {
        let dir = CLI.temporaryDirectory(self)
        let victims = try Self.victims(in: dir, store: try CLI.importedStore(in: dir))
        let corpus = try PipelineCLITests.corpus(in: dir)
        let store = dir.appendingPathComponent("new.qkdb").path
        for victim in victims {
            try Self.assertRefusesToReplace(["train", "--model", PipelineCLITests.model, "--corpus", corpus, "--layer", "1", "--context", "16",
                                             "--d-hidden", "8", "--train-tokens", "200", "--store", store, "--checkpoint"], victim)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: store), "train created the store before refusing")
    }

    func testHarvestRefusesWhatItDidNotWrite() throws {
        let dir = CLI.temporaryDirectory(self)
        let store = try CLI.importedStore(in: dir)
        let model = CLI.root.appendingPathComponent("Tests/Fixtures/models/tiny-gpt2").path
        let args = ["harvest", "--model", model, "--layer", "0", "--text", "the cat sat", "--out"]
        for victim in try Self.victims(in: dir, store: store) {
            try Self.assertRefusesToReplace(args, victim)
        }
        // Its own earlier harvest it replaces; with --force, anything.
        let out = dir.appendingPathComponent("h.safetensors").path
        for _ in 0..<2 { XCTAssertEqual(try CLI.run(args + [out]).status, 0) }
        let forced = try CLI.run(args + [dir.appendingPathComponent("thesis.tex").path, "--force"])
        XCTAssertEqual(forced.status, 0, forced.stderr)
        XCTAssertEqual(Self.snapshot(out), Self.snapshot(dir.appendingPathComponent("thesis.tex").path))
    }
}
