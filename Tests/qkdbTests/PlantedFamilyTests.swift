import XCTest
import Foundation

/// Issue 13's yardstick: `qkdb run` with default options (only the dictionary size and the data
/// budgets given) on every model of the planted family (Tests/Fixtures/planted_family, made by
/// tools/fixtures/make_planted_family.py: GPT-2 and Llama checkpoints of different shapes and
/// seeds with planted content pairs, previous-token pairs, sinks and noise directions) must recover
/// the planted structure, scored by `PlantedScorer`:
/// - at most 10% of the planted directions missed on each side;
/// - at least 90% of the planted pairs in the top 3 of `qkdb pairs`;
/// - the top row of `qkdb sinks` a key feature that fires on BOS alone (where there are sink heads);
/// - `qkdb heads` naming the sink heads "first position" and the previous-token heads "previous token".
///
/// Environment (used by tools/planted_family.sh): QKDB_BINARY runs another qkdb (e.g. the release
/// build); QKDB_PLANTED_TOKENS and QKDB_PLANTED_MASK_SEQUENCES set the budgets; QKDB_PLANTED_ARGS adds options to
/// `qkdb run`, one per line (a repeated option's last value wins); QKDB_PLANTED_ONLY names
/// configurations, comma-separated; QKDB_PLANTED_JOBS runs that many at once (default 2).
final class PlantedFamilyTests: XCTestCase {
    static let family = CLI.root.appendingPathComponent("Tests/Fixtures/planted_family")
    /// Only the dictionary size and the data budgets are given (step 1's tokens, step 2's
    /// sequences); everything else is qkdb's default. 200k tokens is the smallest budget issue 13
    /// asks defaults to be sound at; 32 mask sequences keep step 2's RoPE objective, which takes
    /// ~1 s per sequence-epoch in a debug build here, within a minute. tools/planted_family.sh
    /// runs the release binary at 400k tokens and step 2's default 1024 sequences
    /// (QKDB_PLANTED_TOKENS, QKDB_PLANTED_MASK_SEQUENCES).
    static let dHidden = 128, trainTokens = 200_000, maskSequences = 32

    func testDefaultsRecoverThePlantedFamily() throws {
        let env = ProcessInfo.processInfo.environment
        let extra = (env["QKDB_PLANTED_ARGS"] ?? "").split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        let only = env["QKDB_PLANTED_ONLY"].map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.family.path).sorted()
            .filter { FileManager.default.fileExists(atPath: Self.family.appendingPathComponent("\($0)/planted.json").path) }
            .filter { only?.contains($0) ?? true }
        XCTAssertGreaterThanOrEqual(names.count, only == nil ? 8 : 1, "the planted family has \(names.count) configurations")

        let tokens = env["QKDB_PLANTED_TOKENS"].flatMap { Int($0) } ?? Self.trainTokens
        let maskSequences = env["QKDB_PLANTED_MASK_SEQUENCES"].flatMap { Int($0) } ?? Self.maskSequences
        let options = ["--d-hidden", String(Self.dHidden), "--train-tokens", String(tokens), "--mask-sequences", String(maskSequences)] + extra
        print("planted family: qkdb run \(options.joined(separator: " ")) on \(names.joined(separator: ", "))")
        let dir = CLI.temporaryDirectory(self)
        // Two runs at a time: a debug-build qkdb keeps about one core busy, and the machine has two.
        let jobs = max(1, env["QKDB_PLANTED_JOBS"].flatMap { Int($0) } ?? 2)
        let truths = try names.map { try PlantedTruth(fixture: Self.family.appendingPathComponent($0)) }
        var results = [Result<PlantedScore, Error>?](repeating: nil, count: truths.count)
        let lock = NSLock(), gate = DispatchSemaphore(value: jobs)
        // The Llama models first: step 2's RoPE objective makes them the longest runs.
        let order = truths.indices.sorted { (truths[$0].architecture == "llama" ? 0 : 1, $0) < (truths[$1].architecture == "llama" ? 0 : 1, $1) }
        let started = Date()
        DispatchQueue.concurrentPerform(iterations: truths.count) { n in
            let i = order[n]
            gate.wait(); defer { gate.signal() }
            let r = Result { try PlantedScorer.runAndScore(truths[i], in: dir, options: options) }
            lock.lock(); defer { lock.unlock() }
            results[i] = r
            if case .success(let score) = r {
                var text = score.line + "\n"
                for m in score.missed.prefix(12) { text += "  missed: \(m)\n" }
                if score.missed.count > 12 { text += "  … and \(score.missed.count - 12) more\n" }
                print(text, terminator: "")
            }
        }
        let scores = try results.map { try XCTUnwrap($0).get() }
        print("\n" + PlantedScore.tableHeader)
        for s in scores { print(s.tableRow) }
        print("planted family: \(scores.filter(\.passes).count)/\(scores.count) configurations pass; \(String(format: "%.0f", scores.map(\.seconds).reduce(0, +))) s of qkdb run, \(String(format: "%.0f", Date().timeIntervalSince(started))) s wall clock")

        for s in scores {
            XCTAssertLessThanOrEqual(s.queryMissedShare, 0.1, "\(s.name): query directions found \(s.queryFound)/\(s.queryTotal)")
            XCTAssertLessThanOrEqual(s.keyMissedShare, 0.1, "\(s.name): key directions found \(s.keyFound)/\(s.keyTotal)")
            XCTAssertGreaterThanOrEqual(s.pairsShare, 0.9, "\(s.name): pairs in the top 3 \(s.pairsFound)/\(s.pairsTotal)")
            if let ok = s.sinkOK { XCTAssertTrue(ok, "\(s.name): top sink \(s.sinkDescription)") }
            if let ok = s.headsOK { XCTAssertTrue(ok, "\(s.name): \(s.headsDescription)") }
        }
    }
}
