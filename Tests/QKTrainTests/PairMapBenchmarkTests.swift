import XCTest
import Foundation
import QKTensor
import QKModels
import QKTrain

/// qkdb's side of tools/bench/mask_bench.sh: trains the mask on the file the PyTorch peer
/// generated and prints seconds per epoch and the KLs. Skipped unless QKDB_BENCH=1 (it times
/// nothing it asserts on; the script prints both sides and the ratio).
final class PairMapBenchmarkTests: XCTestCase {
    func testMaskBenchmark() throws {
        let env = ProcessInfo.processInfo.environment
        guard env["QKDB_BENCH"] == "1", let path = env["QKDB_BENCH_FILE"] else {
            throw XCTSkip("set QKDB_BENCH=1 and QKDB_BENCH_FILE to run the step-2 benchmark")
        }
        let f = try SafeTensorsFile(path: path)
        let ctx = Int(f.metadata["ctx"] ?? "") ?? 128, nHead = Int(f.metadata["n_head"] ?? "") ?? 12
        let dHead = Int(f.metadata["d_head"] ?? "") ?? 32
        let heldOutCount = Int(env["QKDB_BENCH_HELD_OUT"] ?? "") ?? Int(f.metadata["held_out"] ?? "") ?? 16
        let q = Transcoder(wEnc: Tensor(zeros: [1, 1536]), bEnc: Tensor(zeros: [1536]), wDec: try f.floatTensor("w_dec_q"),
                           bDec: try f.floatTensor("b_dec_q"), activation: .relu)
        let k = Transcoder(wEnc: Tensor(zeros: [1, 1536]), bEnc: Tensor(zeros: [1536]), wDec: try f.floatTensor("w_dec_k"),
                           bDec: try f.floatTensor("b_dec_k"), activation: .relu)
        func side(_ prefix: String) throws -> (rows: [Int], idx: [Int32], val: [Float]) {
            let rows = try f.intArray("\(prefix)_row_start").values
            let idx = try f.intArray("\(prefix)_indices").values.map(Int32.init)
            return (rows, idx, try f.floatTensor("\(prefix)_values").data)
        }
        let qs = try side("q"), ks = try side("k")
        let pattern = try f.floatTensor("pattern")
        let n = pattern.shape[0]
        func codes(_ c: (rows: [Int], idx: [Int32], val: [Float]), _ s: Int, width: Int) -> SparseActivations {
            let lo = c.rows[s * ctx], hi = c.rows[(s + 1) * ctx]
            return SparseActivations(rowStart: c.rows[(s * ctx)...((s + 1) * ctx)].map { $0 - lo },
                                     indices: Array(c.idx[lo..<hi]), values: Array(c.val[lo..<hi]), width: width)
        }
        let block = nHead * ctx * ctx
        let seqs = (0..<n).map { s in
            PairMapSequence(query: codes(qs, s, width: q.dHidden), key: codes(ks, s, width: k.dHidden),
                            pattern: Tensor(shape: [nHead, ctx, ctx], data: Array(pattern.data[(s * block)..<((s + 1) * block)])))
        }
        let config = ModelConfig(architecture: .bert, nLayer: 6, dModel: 384, nHead: nHead, nKVHead: nHead, dHead: dHead,
                                 vocabSize: 30522, maxPositions: 512, hasLMHead: false)
        var options = MaskTrainingOptions()
        if let v = env["QKDB_BENCH_EPOCHS"].flatMap(Int.init) { options.epochs = v }
        if let v = env["QKDB_BENCH_BATCH"].flatMap(Int.init) { options.batchSequences = v }
        if let v = env["QKDB_BENCH_LR"].flatMap(Float.init) { options.learningRate = v }
        if let v = env["QKDB_BENCH_PENALTY"].flatMap(Float.init) { options.penalty = v }
        if let v = env["QKDB_BENCH_THRESHOLD"].flatMap(Float.init) { options.threshold = v }
        if let v = env["QKDB_BENCH_THREADS"].flatMap(Int.init) { options.threads = v }
        let started = Date()
        let r = try PairMap.run(query: q, key: k, config: config, training: Array(seqs[..<(n - heldOutCount)]),
                                heldOut: Array(seqs[(n - heldOutCount)...]), options: options)
        let m = r.metrics
        print(String(format: "qkdb entries=%d seconds_per_epoch=%.3f cpu_seconds_per_epoch=%.3f kl_unmasked=%.4f kl_trained=%.4f kl_pruned=%.4f kept=%d masked_live=%.4f masked_whole=%.5f total_seconds=%.1f",
                     m.entriesConsidered, m.secondsPerEpoch, m.cpuSecondsPerEpoch, m.klUnmasked, m.klTrained, m.klPruned, m.entriesAfterPruning,
                     m.maskedFractionLive, m.maskedFractionWhole, Date().timeIntervalSince(started)))
    }
}
