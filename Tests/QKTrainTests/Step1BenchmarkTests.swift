import Foundation
import XCTest
import QKTensor
@testable import QKTrain

/// Not unit tests: the Swift side of tools/bench/train_bench.sh and of the README's MiniLM run.
/// Skipped unless QKDB_BENCH=1; they read a harvest file named by QKDB_BENCH_HARVEST.
final class Step1BenchmarkTests: XCTestCase {
    func harvest() throws -> String {
        let env = ProcessInfo.processInfo.environment
        guard env["QKDB_BENCH"] == "1", let path = env["QKDB_BENCH_HARVEST"] else { throw XCTSkip("set QKDB_BENCH=1 and QKDB_BENCH_HARVEST") }
        return path
    }
    var env: [String: String] { ProcessInfo.processInfo.environment }

    /// Training throughput: MiniLM layer 2 shapes, d_hidden 1536 each, 8×128-token batches.
    func testTrainingSpeed() throws {
        let source = try HarvestFileSource(path: try harvest())
        var o = TrainingOptions()
        o.dHidden = Int(env["QKDB_BENCH_D_HIDDEN"] ?? "") ?? 1536
        o.batchSequences = Int(env["QKDB_BENCH_BATCH"] ?? "") ?? 8
        let steps = Int(env["QKDB_BENCH_STEPS"] ?? "") ?? 20
        o.heldOutSequences = 8
        o.shuffleBlockSequences = 16
        o.trainTokens = steps * o.batchSequences * source.length
        let r = try TranscoderTrainer(options: o, source: source).train()
        print(String(format: "qkdb tokens/s: %.0f  (%d steps, final L0 %.1f / %.1f)", r.tokensPerSecond, r.steps,
                     r.evaluation?.metrics.l0Query ?? 0, r.evaluation?.metrics.l0Key ?? 0))
    }

    /// A full run with held-out metrics, for the README (QKDB_BENCH_TOKENS tokens).
    func testFullRun() throws {
        guard env["QKDB_BENCH_FULL"] == "1" else { throw XCTSkip("set QKDB_BENCH_FULL=1") }
        let source = try HarvestFileSource(path: try harvest())
        var o = TrainingOptions()
        o.trainTokens = Int(env["QKDB_BENCH_TOKENS"] ?? "") ?? 500_000
        o.heldOutSequences = Int(env["QKDB_BENCH_HELD_OUT"] ?? "") ?? 32
        if let t = env["QKDB_BENCH_L0"], let v = Double(t) { o.l0Target = v }
        if let k = env["QKDB_BENCH_TOPK"], let v = Int(k) { o.queryActivation = .topK(v); o.keyActivation = .topK(v) }
        if let l = env["QKDB_BENCH_LAMBDA"], let v = Float(l) { o.objective.lambdaQ = v; o.objective.lambdaK = v }
        o.deadWindowTokens = min(o.deadWindowTokens, o.trainTokens / 5)
        o.progressEverySteps = 50
        let r = try TranscoderTrainer(options: o, source: source).train(progress: {
            print(String(format: "step %d tokens %d  %.0f tok/s  loss %.4f  KL %.4f  L0 %.1f/%.1f  live %d/%d  λ %.2e/%.2e", $0.step, $0.tokens,
                         $0.tokensPerSecond, $0.loss, $0.patternKL, $0.l0Query, $0.l0Key, $0.liveQuery, $0.liveKey,
                         Double($0.lambdaQuery), Double($0.lambdaKey)))
        })
        let m = try XCTUnwrap(r.evaluation).metrics
        let json = try JSONEncoder().encode(m)
        print("metrics: " + String(decoding: json, as: UTF8.self))
        if let dir = env["QKDB_BENCH_EXPORT"], let e = r.evaluation {
            try SAELensExport.write(query: r.query, key: r.key, log10DensityQuery: e.log10DensityQuery, log10DensityKey: e.log10DensityKey,
                                    info: DictionaryExportInfo(modelName: "all-MiniLM-L6-v2", layer: r.layer, geometry: r.geometry,
                                                               contextSize: 128, lambdaQuery: r.lambdaQuery, lambdaKey: r.lambdaKey), to: dir)
        }
        print("resampled: \(r.resampledQuery) / \(r.resampledKey); live in the last \(o.deadWindowTokens) tokens: \(r.liveInWindowQuery) / \(r.liveInWindowKey)")
    }
}
