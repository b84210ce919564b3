import XCTest
import Foundation
import QKTensor
import QKModels
import QKTrain

/// Step 2 on real MiniLM layer-2 data: a harvest file (hook tensors of §3) and step-1 dictionaries
/// in the SAELens layout. Skipped unless QKDB_MINILM_HARVEST and QKDB_MINILM_DICTS are set (the
/// data are not in the repository); prints the figures the MiniLM acceptance check asks for.
///
///   QKDB_MINILM_HARVEST=layer2.safetensors QKDB_MINILM_DICTS=export_dir [QKDB_MINILM_HELD_OUT=32]
///   [QKDB_MASK_PENALTY=…] [QKDB_MASK_LR=…] [QKDB_MASK_EPOCHS=…] [QKDB_MASK_THRESHOLD=…]
///   [QKDB_MINILM_EXPORT=bench.safetensors]   (also writes the data for the PyTorch peer)
final class PairMapMiniLMCheckTests: XCTestCase {
    func testMiniLMPairMap() throws {
        let env = ProcessInfo.processInfo.environment
        guard let harvest = env["QKDB_MINILM_HARVEST"], let dicts = env["QKDB_MINILM_DICTS"] else {
            throw XCTSkip("set QKDB_MINILM_HARVEST and QKDB_MINILM_DICTS to run step 2 on MiniLM")
        }
        func dictionary(_ side: String) throws -> Transcoder {
            let f = try SafeTensorsFile(path: "\(dicts)/\(side)/sae_weights.safetensors")
            let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dicts)/\(side)/cfg.json"))) as? [String: Any]
            let k = ((cfg?["activation_fn_kwargs"] as? [String: Any])?["k"] as? Int)
            return Transcoder(wEnc: try f.floatTensor("W_enc"), bEnc: try f.floatTensor("b_enc"), wDec: try f.floatTensor("W_dec"),
                              bDec: try f.floatTensor("b_dec"), activation: k.map { .topK($0) } ?? .relu)
        }
        let q = try dictionary("query"), k = try dictionary("key")
        let h = try SafeTensorsFile(path: harvest)
        let layer = Int(h.metadata["layer"] ?? "2") ?? 2
        let x = try h.floatTensor(LayerCapture.hookName(layer, "attn_in"))
        let pattern = try h.floatTensor(LayerCapture.hookName(layer, "pattern"))
        let n = x.shape[0], heldOut = Int(env["QKDB_MINILM_HELD_OUT"] ?? "") ?? 32
        var sequences = [PairMapSequence]()
        var start = 0
        while start < n {   // encode in slices of 64 sequences to bound memory
            let count = min(64, n - start)
            let capture = LayerCapture(layer: layer, attnIn: x.rows(start, count), q: Tensor(zeros: [0]), k: Tensor(zeros: [0]),
                                       pattern: pattern.rows(start, count))
            sequences += try PairMapSequence.sequences(from: capture, query: q, key: k)
            start += count
        }
        if let out = env["QKDB_MINILM_EXPORT"] {
            // The same codes, decoders and patterns in the benchmark file layout, for the PyTorch
            // peer (tools/bench/mask_peer.py train --data out --held-out N).
            var w = SafeTensorsWriter()
            w.add("w_dec_q", q.wDec); w.add("b_dec_q", q.bDec); w.add("w_dec_k", k.wDec); w.add("b_dec_k", k.bDec)
            for (name, side) in [("q", sequences.map(\.query)), ("k", sequences.map(\.key))] {
                var rows: [Int64] = [0], idx: [Int32] = [], val: [Float] = []
                for a in side {
                    for r in 0..<a.rows { rows.append(rows.last! + Int64(a.rowStart[r + 1] - a.rowStart[r])) }
                    idx += a.indices; val += a.values
                }
                w.add("\(name)_row_start", shape: [rows.count], int64: rows)
                w.add("\(name)_indices", shape: [idx.count], int32: idx)
                w.add("\(name)_values", shape: [val.count], float32: val)
            }
            w.add("pattern", pattern)
            w.metadata = ["train": "\(n - heldOut)", "held_out": "\(heldOut)", "ctx": "128", "n_head": "12", "d_head": "32"]
            try w.write(to: out)
        }
        let config = ModelConfig(architecture: .bert, nLayer: 6, dModel: 384, nHead: 12, nKVHead: 12, dHead: 32,
                                 vocabSize: 30522, maxPositions: 512, hasLMHead: false)
        var options = MaskTrainingOptions()
        if let v = env["QKDB_MASK_PENALTY"].flatMap(Float.init) { options.penalty = v }
        if let v = env["QKDB_MASK_LR"].flatMap(Float.init) { options.learningRate = v }
        if let v = env["QKDB_MASK_EPOCHS"].flatMap(Int.init) { options.epochs = v }
        if let v = env["QKDB_MASK_THRESHOLD"].flatMap(Float.init) { options.threshold = v }
        if let v = env["QKDB_MASK_BATCH"].flatMap(Int.init) { options.batchSequences = v }
        let r = try PairMap.run(query: q, key: k, config: config, training: Array(sequences[..<(n - heldOut)]),
                                heldOut: Array(sequences[(n - heldOut)...]), options: options) { p in
            if p.step == p.stepsPerEpoch || p.step % 10 == 0 {
                print(String(format: "epoch %d step %d/%d loss %.4f KL %.4f below-threshold %.3f", p.epoch, p.step, p.stepsPerEpoch,
                             p.loss, p.kl, p.fractionBelowThreshold))
            }
        }
        let m = r.metrics
        print(String(format: "minilm penalty=%g lr=%g epochs=%d threshold=%g entries=%d kept=%d live=%d/%d masked_live=%.4f masked_whole=%.5f kl_unmasked=%.4f kl_trained=%.4f kl_pruned=%.4f ratio=%.2f s_per_epoch=%.1f cpu_s_per_epoch=%.1f",
                     options.penalty, options.learningRate, options.epochs, options.threshold, m.entriesConsidered, m.entriesAfterPruning,
                     m.liveQueryFeatures, m.liveKeyFeatures, m.maskedFractionLive, m.maskedFractionWhole, m.klUnmasked, m.klTrained,
                     m.klPruned, m.klPruned / m.klUnmasked, m.secondsPerEpoch, m.cpuSecondsPerEpoch))
        for head in [0, 5] {
            let top = r.keyFeaturesByImportance(head: head).prefix(3)
            print("head \(head) top key features by importance:", top.map { "\($0.feature) (imp \(String(format: "%.4f", $0.importance)), bos \(String(format: "%.2f", r.keyFeatures.bosFraction[$0.feature])))" })
        }
    }
}
