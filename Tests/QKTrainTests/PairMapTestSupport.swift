import Foundation
import QKTensor
import QKModels
@testable import QKTrain

/// Shared builders for the step-2 tests: transcoders from decoder weights alone (step 2 never
/// reads the encoder), sparse codes from dense rows, and seeded random data.
enum PairMapTestSupport {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func fixture(_ name: String) -> String { root.appendingPathComponent("Tests/Fixtures/pairmap/\(name)").path }

    static func transcoder(wDec: Tensor, bDec: Tensor) -> Transcoder {
        Transcoder(wEnc: Tensor(zeros: [1, wDec.shape[0]]), bEnc: Tensor(zeros: [wDec.shape[0]]), wDec: wDec, bDec: bDec, activation: .relu)
    }

    /// CSR codes from a dense `[rows, width]` block.
    static func codes(_ dense: ArraySlice<Float>, rows: Int, width: Int) -> SparseActivations {
        var a = SparseActivations(width: width)
        let d = Array(dense)
        d.withUnsafeBufferPointer { p in for r in 0..<rows { a.appendRow(dense: p.baseAddress! + r * width) } }
        return a
    }

    /// One PyTorch fixture of `tools/fixtures/make_pairmap_fixtures.py`: its file, transcoders,
    /// sequences and model shape.
    static func loadFixture(_ name: String) throws -> (file: SafeTensorsFile, query: Transcoder, key: Transcoder,
                                                        sequences: [PairMapSequence], config: ModelConfig) {
        let f = try SafeTensorsFile(path: fixture("\(name).safetensors"))
        let meta = f.metadata
        let q = transcoder(wDec: try f.floatTensor("w_dec_q"), bDec: try f.floatTensor("b_dec_q"))
        let k = transcoder(wDec: try f.floatTensor("w_dec_k"), bDec: try f.floatTensor("b_dec_k"))
        let aq = try f.floatTensor("aq"), ak = try f.floatTensor("ak"), pattern = try f.floatTensor("pattern")
        let (seqs, t) = (aq.shape[0], aq.shape[1])
        let dq = q.dHidden, dk = k.dHidden
        let sequences = (0..<seqs).map { s in
            PairMapSequence(query: codes(aq.data[(s * t * dq)..<((s + 1) * t * dq)], rows: t, width: dq),
                            key: codes(ak.data[(s * t * dk)..<((s + 1) * t * dk)], rows: t, width: dk),
                            pattern: pattern.row(s))
        }
        let cfg = config(causal: meta["causal"] == "true", nHead: Int(meta["n_head"]!)!, nKVHead: Int(meta["n_kv_head"]!)!,
                         dHead: Int(meta["d_head"]!)!)
        return (f, q, k, sequences, cfg)
    }

    static func config(causal: Bool, nHead: Int, nKVHead: Int, dHead: Int) -> ModelConfig {
        ModelConfig(architecture: causal ? .gpt2 : .bert, nLayer: 1, dModel: 8, nHead: nHead, nKVHead: nKVHead, dHead: dHead,
                    vocabSize: 10, maxPositions: 512, hasLMHead: false)
    }

    static func uniform(_ rng: inout SplitMix64) -> Float { Float(rng.next() >> 40) / Float(1 << 24) }
    static func normal(_ rng: inout SplitMix64) -> Float {
        let u = max(uniform(&rng), 1e-7), v = uniform(&rng)
        return (-2 * logf(u)).squareRoot() * cosf(2 * .pi * v)
    }

    /// Random decoders, codes (about `active` features per position) and softmax patterns.
    static func random(seed: UInt64, causal: Bool, nHead: Int, nKVHead: Int, dHead: Int, dq: Int, dk: Int,
                       sequences: Int, length: Int, active: Int) -> (Transcoder, Transcoder, ModelConfig, [PairMapSequence]) {
        var rng = SplitMix64(seed: seed)
        func tensor(_ shape: [Int], _ scale: Float) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in normal(&rng) * scale })
        }
        let q = transcoder(wDec: tensor([dq, nHead * dHead], 0.6), bDec: tensor([nHead * dHead], 0.3))
        let k = transcoder(wDec: tensor([dk, nKVHead * dHead], 0.6), bDec: tensor([nKVHead * dHead], 0.3))
        var seqs = [PairMapSequence]()
        for _ in 0..<sequences {
            func block(_ width: Int) -> SparseActivations {
                var d = [Float](repeating: 0, count: length * width)
                for p in 0..<length {
                    for _ in 0..<active { d[p * width + Int(rng.next() % UInt64(width))] = 0.2 + 1.5 * uniform(&rng) }
                }
                return codes(d[...], rows: length, width: width)
            }
            var pat = [Float](repeating: 0, count: nHead * length * length)
            for h in 0..<nHead {
                for p in 0..<length {
                    let n = causal ? p + 1 : length
                    let row = (0..<n).map { _ in expf(1.5 * normal(&rng)) }
                    let z = row.reduce(0, +)
                    for s in 0..<n { pat[(h * length + p) * length + s] = row[s] / z }
                }
            }
            seqs.append(PairMapSequence(query: block(dq), key: block(dk), pattern: Tensor(shape: [nHead, length, length], data: pat)))
        }
        return (q, k, config(causal: causal, nHead: nHead, nKVHead: nKVHead, dHead: dHead), seqs)
    }
}
