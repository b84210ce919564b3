import XCTest
import Foundation

/// Ctrl-C through the real binary: the first SIGINT makes `qkdb train` checkpoint and stop with
/// one line saying how to resume; `--resume` finishes the run. (A second SIGINT exits at once
/// with 130; two signals sent together reach the process as one, so that is not tested here.)
final class InterruptTests: XCTestCase {
    /// Starts `qkdb train` on the tiny GPT-2 with a budget far beyond the test, and waits until the
    /// progress bar shows training.
    func startTraining(_ dir: URL, store: String) throws -> (Process, Pipe) {
        let corpus = try PipelineCLITests.corpus(in: dir)
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = ["train", "--model", PipelineCLITests.model, "--corpus", corpus, "--layer", "1", "--context", "16", "--d-hidden", "24",
                       "--train-tokens", "50000000", "--dead-window", "100000", "--top-k", "4", "--batch", "4", "--store", store]
        let err = Pipe()
        p.standardError = err; p.standardOutput = FileHandle.nullDevice
        try p.run()
        var seen = Data()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, p.isRunning, !String(decoding: seen, as: UTF8.self).contains("step 1: train transcoders") {
            seen.append(err.fileHandleForReading.availableData)
        }
        Thread.sleep(forTimeInterval: 0.5)
        return (p, err)
    }

    func testFirstCtrlCCheckpointsAndResumeFinishes() throws {
        let dir = CLI.temporaryDirectory(self)
        let store = dir.appendingPathComponent("t.qkdb").path
        let (p, err) = try startTraining(dir, store: store)
        XCTAssertTrue(p.isRunning)
        kill(p.processIdentifier, SIGINT)
        let rest = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0)
        let text = String(decoding: rest, as: UTF8.self)
        let checkpoint = store + ".checkpoint.safetensors"
        XCTAssertTrue(text.contains("training interrupted; checkpoint written to \(checkpoint) (continue with --resume \(checkpoint))"), text)
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint))
        // The stopped run wrote nothing to the store but may have created it; resuming with a short
        // budget finishes it (the budget is not part of what must match).
        let corpus = dir.appendingPathComponent("corpus.txt").path
        let resumed = try CLI.run(["train", "--model", PipelineCLITests.model, "--corpus", corpus, "--layer", "1", "--context", "16", "--d-hidden", "24",
                                   "--train-tokens", "1", "--dead-window", "100000", "--top-k", "4", "--batch", "4", "--store", store, "--resume", checkpoint])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("run 1 written to"), resumed.stdout)
    }
}
