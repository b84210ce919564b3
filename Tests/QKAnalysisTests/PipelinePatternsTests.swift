import XCTest
import Foundation
import QKTensor
import QKModels
import QKTrain
@testable import QKAnalysis

/// The pattern builders evaluation relies on, against the definitions written out term by term.
final class PipelinePatternsTests: XCTestCase {
    /// A deterministic generator (no Foundation randomness, so a failure reproduces).
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
        mutating func normal() -> Float { (unit() + unit() + unit() + unit() - 2) * 1.7 }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// Random sparse codes `[t, width]`, about `density` of entries active (some rows empty).
    func codes(rows t: Int, width: Int, density: Float, _ r: inout Random) -> (SparseActivations, [[Float]]) {
        var dense = [[Float]](repeating: [Float](repeating: 0, count: width), count: t)
        var a = SparseActivations(width: width)
        for p in 0..<t {
            for j in 0..<width where r.unit() < density { dense[p][j] = 0.1 + 2 * r.unit() }
            dense[p].withUnsafeBufferPointer { a.appendRow(dense: $0.baseAddress!) }
        }
        return (a, dense)
    }

    // MARK: PairMapScorer

    func testPairMapScorerEqualsBruteForceSum() throws {
        var r = Random(state: 11)
        let nHead = 3, dQ = 17, dK = 13, t = 9
        // A random sparse map with duplicate-free (h, i, j) entries in shuffled order.
        var entries: [(Int32, Int32, Int32, Float)] = []
        for h in 0..<nHead { for i in 0..<dQ { for j in 0..<dK where r.unit() < 0.15 { entries.append((Int32(h), Int32(i), Int32(j), r.normal())) } } }
        for e in stride(from: entries.count - 1, to: 0, by: -1) { entries.swapAt(e, r.below(e + 1)) }
        let bias = (0..<(nHead * dK)).map { _ in r.normal() }
        let scorer = try PairMapScorer(nHead: nHead, dQuery: dQ, dKey: dK, head: entries.map(\.0), queryFeature: entries.map(\.1),
                                       keyFeature: entries.map(\.2), value: entries.map(\.3), keyBias: bias)
        var w = [Float](repeating: 0, count: nHead * dQ * dK)
        for e in entries { w[(Int(e.0) * dQ + Int(e.1)) * dK + Int(e.2)] = e.3 }
        let (aQ, q) = codes(rows: t, width: dQ, density: 0.3, &r)
        let (aK, k) = codes(rows: t, width: dK, density: 0.3, &r)

        for causal in [false, true] {
            let scores = scorer.scores(query: aQ, key: aK, causal: causal)
            let pattern = scorer.pattern(query: aQ, key: aK, causal: causal)
            XCTAssertEqual(scores.shape, [nHead, t, t])
            for h in 0..<nHead {
                for p in 0..<t {
                    var expected = [Double](repeating: -.infinity, count: t)
                    for s in 0..<t where !causal || s <= p {
                        var sum = 0.0
                        for i in 0..<dQ where q[p][i] != 0 { for j in 0..<dK { sum += Double(q[p][i] * k[s][j] * w[(h * dQ + i) * dK + j]) } }
                        for j in 0..<dK { sum += Double(bias[h * dK + j] * k[s][j]) }
                        expected[s] = sum
                    }
                    let top = expected.max() ?? 0
                    let z = expected.reduce(0) { $0 + exp($1 - top) }
                    for s in 0..<t {
                        let got = scores.data[(h * t + p) * t + s]
                        if expected[s] == -.infinity {
                            XCTAssertEqual(got, -.infinity, "causal mask at h\(h) p\(p) s\(s)")
                            XCTAssertEqual(pattern.data[(h * t + p) * t + s], 0)
                        } else {
                            XCTAssertEqual(Double(got), expected[s], accuracy: 1e-4, "score h\(h) p\(p) s\(s) causal \(causal)")
                            XCTAssertEqual(Double(pattern.data[(h * t + p) * t + s]), exp(expected[s] - top) / z, accuracy: 1e-5)
                        }
                    }
                }
            }
        }
    }

    func testPairMapScorerRejectsBadMaps() {
        XCTAssertThrowsError(try PairMapScorer(nHead: 2, dQuery: 3, dKey: 3, head: [2], queryFeature: [0], keyFeature: [0], value: [1],
                                               keyBias: [Float](repeating: 0, count: 6)))
        XCTAssertThrowsError(try PairMapScorer(nHead: 2, dQuery: 3, dKey: 3, head: [0], queryFeature: [0], keyFeature: [0], value: [1],
                                               keyBias: [Float](repeating: 0, count: 5)))
        XCTAssertThrowsError(try PairMapScorer(nHead: 2, dQuery: 3, dKey: 3, head: [0, 1], queryFeature: [0], keyFeature: [0], value: [1],
                                               keyBias: [Float](repeating: 0, count: 6)))
    }

    // MARK: TranscoderPatterns

    /// softmax_s <rope(q_h(p)), rope(k_g(h)(s))>/sqrt(d_head), written out element by element.
    func naivePatterns(q: [Float], k: [Float], batch b: Int, length t: Int, config c: ModelConfig) -> [Double] {
        let dh = c.dHead, half = dh / 2
        func rotated(_ x: [Float], base: Int, position p: Int) -> [Double] {
            var v = (0..<dh).map { Double(x[base + $0]) }
            guard let theta = c.ropeTheta else { return v }
            for f in 0..<half {
                let angle = Double(p) * pow(Double(theta), -2 * Double(f) / Double(dh))
                let a = v[f], b2 = v[f + half]
                v[f] = a * cos(angle) - b2 * sin(angle); v[f + half] = b2 * cos(angle) + a * sin(angle)
            }
            return v
        }
        var out = [Double](repeating: 0, count: b * c.nHead * t * t)
        for s in 0..<b {
            for h in 0..<c.nHead {
                let g = h / (c.nHead / c.nKVHead)
                for p in 0..<t {
                    let qv = rotated(q, base: (s * t + p) * c.nHead * dh + h * dh, position: p)
                    var scores = [Double](repeating: -.infinity, count: t)
                    for u in 0..<t where !c.architecture.isCausal || u <= p {
                        let kv = rotated(k, base: (s * t + u) * c.nKVHead * dh + g * dh, position: u)
                        scores[u] = zip(qv, kv).reduce(0) { $0 + $1.0 * $1.1 } / Double(dh).squareRoot()
                    }
                    let top = scores.max() ?? 0
                    let z = scores.reduce(0) { $0 + exp($1 - top) }
                    for u in 0..<t { out[((s * c.nHead + h) * t + p) * t + u] = exp(scores[u] - top) / z }
                }
            }
        }
        return out
    }

    func testTranscoderPatternsEqualNaiveComputation() {
        let cases: [(String, ModelConfig)] = [
            ("bert", ModelConfig(architecture: .bert, nLayer: 1, dModel: 16, nHead: 2, nKVHead: 2, dHead: 8, vocabSize: 10, maxPositions: 16, hasLMHead: false)),
            ("gpt2", ModelConfig(architecture: .gpt2, nLayer: 1, dModel: 16, nHead: 2, nKVHead: 2, dHead: 8, vocabSize: 10, maxPositions: 16, hasLMHead: true)),
            ("llama rope gqa", ModelConfig(architecture: .llama, nLayer: 1, dModel: 24, nHead: 4, nKVHead: 2, dHead: 6, vocabSize: 10,
                                           maxPositions: 16, ropeTheta: 10_000, hasLMHead: true)),
        ]
        var r = Random(state: 5)
        for (name, c) in cases {
            let b = 2, t = 7
            let q = (0..<(b * t * c.nHead * c.dHead)).map { _ in r.normal() }
            let k = (0..<(b * t * c.nKVHead * c.dHead)).map { _ in r.normal() }
            let got = TranscoderPatterns.patterns(q: Tensor(shape: [b * t, c.nHead * c.dHead], data: q),
                                                  k: Tensor(shape: [b * t, c.nKVHead * c.dHead], data: k), batch: b, length: t, config: c)
            let expected = naivePatterns(q: q, k: k, batch: b, length: t, config: c)
            XCTAssertEqual(got.shape, [b, c.nHead, t, t], name)
            var worst = 0.0
            for e in 0..<expected.count { worst = max(worst, abs(Double(got.data[e]) - expected[e])) }
            XCTAssertLessThan(worst, 1e-5, "\(name): largest pattern difference \(worst)")
        }
    }

    /// `reconstruct` is `patterns` of the decoded codes of the capture's attention input.
    func testReconstructDecodesTheAttentionInput() {
        var r = Random(state: 9)
        let c = ModelConfig(architecture: .llama, nLayer: 1, dModel: 12, nHead: 4, nKVHead: 2, dHead: 4, vocabSize: 10,
                            maxPositions: 16, ropeTheta: 500, hasLMHead: true)
        func transcoder(out: Int) -> Transcoder {
            Transcoder(wEnc: Tensor(shape: [c.dModel, 20], data: (0..<(c.dModel * 20)).map { _ in r.normal() * 0.5 }),
                       bEnc: Tensor(shape: [20], data: (0..<20).map { _ in r.normal() * 0.2 - 0.3 }),
                       wDec: Tensor(shape: [20, out], data: (0..<(20 * out)).map { _ in r.normal() * 0.5 }),
                       bDec: Tensor(shape: [out], data: (0..<out).map { _ in r.normal() * 0.1 }), activation: .relu)
        }
        let query = transcoder(out: c.nHead * c.dHead), key = transcoder(out: c.nKVHead * c.dHead)
        let b = 2, t = 5
        let x = Tensor(shape: [b, t, c.dModel], data: (0..<(b * t * c.dModel)).map { _ in r.normal() })
        let capture = LayerCapture(layer: 0, attnIn: x, q: Tensor(zeros: [1]), k: Tensor(zeros: [1]), pattern: Tensor(zeros: [1]))
        let got = TranscoderPatterns.reconstruct(capture, query: query, key: key, config: c)
        // Dense reference: q̂ = relu(x W_enc + b_enc) W_dec + b_dec.
        func dense(_ tc: Transcoder) -> [Float] {
            var out: [Float] = []
            for row in 0..<(b * t) {
                let a = (0..<tc.dHidden).map { f in
                    max(0, (0..<c.dModel).reduce(tc.bEnc.data[f]) { $0 + x.data[row * c.dModel + $1] * tc.wEnc.data[$1 * tc.dHidden + f] })
                }
                out += (0..<tc.dOut).map { o in (0..<tc.dHidden).reduce(tc.bDec.data[o]) { $0 + a[$1] * tc.wDec.data[$1 * tc.dOut + o] } }
            }
            return out
        }
        let expected = naivePatterns(q: dense(query), k: dense(key), batch: b, length: t, config: c)
        var worst = 0.0
        for e in 0..<expected.count { worst = max(worst, abs(Double(got.data[e]) - expected[e])) }
        XCTAssertLessThan(worst, 1e-4, "largest pattern difference \(worst)")
    }

    // MARK: evaluation's pruned-map pattern = step 2's

    /// The pattern evaluation patches in for the pruned map (PairMapScorer over the stored COO
    /// values W = M·m and key bias B, laid out as MaskStage writes them) is the pattern step 2
    /// itself scores for that mask: step 2's KL against it is zero, and nonzero for another mask.
    func testScorerPatternIsStepTwosPrunedMapPattern() throws {
        var r = Random(state: 21)
        for arch in [Architecture.gpt2, .bert] {
            let c = ModelConfig(architecture: arch, nLayer: 1, dModel: 8, nHead: 2, nKVHead: 2, dHead: 4, vocabSize: 10,
                                maxPositions: 16, hasLMHead: arch != .bert)
            let dQ = 12, dK = 10, t = 6
            func transcoder(hidden: Int) -> Transcoder {
                Transcoder(wEnc: Tensor(zeros: [c.dModel, hidden]), bEnc: Tensor(zeros: [hidden]),
                           wDec: Tensor(shape: [hidden, c.nHead * c.dHead], data: (0..<(hidden * c.nHead * c.dHead)).map { _ in r.normal() * 0.6 }),
                           bDec: Tensor(shape: [c.nHead * c.dHead], data: (0..<(c.nHead * c.dHead)).map { _ in r.normal() * 0.6 }),
                           activation: .relu)
            }
            let query = transcoder(hidden: dQ), key = transcoder(hidden: dK)
            var sequences: [PairMapSequence] = []
            for _ in 0..<3 {
                let (aQ, _) = codes(rows: t, width: dQ, density: 0.35, &r)
                let (aK, _) = codes(rows: t, width: dK, density: 0.35, &r)
                sequences.append(PairMapSequence(query: aQ, key: aK, pattern: Tensor(shape: [c.nHead, t, t], repeating: 1 / Float(t))))
            }
            let objective = try PairMapObjective(query: query, key: key, config: c, training: sequences, threads: 1)
            let index = objective.index, h = c.nHead
            // A pruned mask: some entries zero, the rest in (0.5, 1].
            let mask = (0..<objective.entryCount).map { _ in r.unit() < 0.4 ? 0 : 0.5 + 0.5 * r.unit() }
            var head: [Int32] = [], qf: [Int32] = [], kf: [Int32] = [], value: [Float] = []
            for hh in 0..<h {
                for pair in 0..<index.pairCount {
                    let e = index.entry(pair: pair, head: hh, heads: h)
                    guard mask[e] > 0 else { continue }
                    head.append(Int32(hh)); qf.append(index.pairQuery[pair]); kf.append(index.pairKey[pair])
                    value.append(objective.weights.pairValue[e] * mask[e])
                }
            }
            var bias = [Float](repeating: 0, count: h * dK)
            for j in 0..<dK { for hh in 0..<h { bias[hh * dK + j] = objective.weights.keyBias[j * h + hh] } }
            let scorer = try PairMapScorer(nHead: h, dQuery: dQ, dKey: dK, head: head, queryFeature: qf, keyFeature: kf,
                                           value: value, keyBias: bias)
            let patched = sequences.map {
                PairMapSequence(query: $0.query, key: $0.key, pattern: scorer.pattern(query: $0.query, key: $0.key, causal: arch.isCausal))
            }
            XCTAssertEqual(try objective.meanKL(mask: mask, sequences: patched), 0, accuracy: 1e-5, "\(arch)")
            let other = mask.map { $0 > 0 ? 1 - 0.9 * $0 : 1 }
            XCTAssertGreaterThan(try objective.meanKL(mask: other, sequences: patched), 1e-3, "\(arch): KL cannot tell masks apart")
        }
    }

    // MARK: key-bias importance (what `qkdb sinks` adds to the pairs' importance)

    /// keyBiasImportance[h, j] = mean over allowed (p, s) of |B[h, j]·aK_j(s)|, on the same
    /// held-out sample and with the same "allowed" count as the pairs' importance.
    func testKeyBiasImportanceIsTheMeanAbsoluteBiasTerm() throws {
        var r = Random(state: 33)
        for arch in [Architecture.gpt2, .bert] {
            let c = ModelConfig(architecture: arch, nLayer: 1, dModel: 8, nHead: 2, nKVHead: 2, dHead: 4, vocabSize: 10,
                                maxPositions: 16, hasLMHead: arch != .bert)
            let dQ = 9, dK = 7
            func transcoder(hidden: Int) -> Transcoder {
                Transcoder(wEnc: Tensor(zeros: [c.dModel, hidden]), bEnc: Tensor(zeros: [hidden]),
                           wDec: Tensor(shape: [hidden, c.nHead * c.dHead], data: (0..<(hidden * c.nHead * c.dHead)).map { _ in r.normal() }),
                           bDec: Tensor(shape: [c.nHead * c.dHead], data: (0..<(c.nHead * c.dHead)).map { _ in r.normal() }), activation: .relu)
            }
            let query = transcoder(hidden: dQ), key = transcoder(hidden: dK)
            func sample(_ n: Int) -> ([PairMapSequence], [[[Float]]]) {
                var seqs: [PairMapSequence] = [], dense: [[[Float]]] = []
                for m in 0..<n {
                    let t = 4 + m
                    let (aQ, _) = codes(rows: t, width: dQ, density: 0.4, &r)
                    let (aK, k) = codes(rows: t, width: dK, density: 0.4, &r)
                    seqs.append(PairMapSequence(query: aQ, key: aK, pattern: Tensor(shape: [c.nHead, t, t], repeating: 1 / Float(t))))
                    dense.append(k)
                }
                return (seqs, dense)
            }
            let (training, _) = sample(3)
            let (heldOut, keys) = sample(3)
            var options = MaskTrainingOptions()
            options.epochs = 0; options.threads = 1
            let result = try PairMap.run(query: query, key: key, config: c, training: training, heldOut: heldOut, options: options)
            XCTAssertEqual(result.keyBiasImportance.count, c.nHead * dK)
            var allowed = 0.0, mass = [Double](repeating: 0, count: dK)
            for k in keys {
                let t = k.count
                for p in 0..<t { for s in 0..<t where !arch.isCausal || s <= p {
                    allowed += 1
                    for j in 0..<dK { mass[j] += Double(abs(k[s][j])) }
                } }
            }
            for h in 0..<c.nHead {
                for j in 0..<dK {
                    let expected = Double(abs(result.keyBiasScore[h * dK + j])) * mass[j] / allowed
                    XCTAssertEqual(Double(result.keyBiasImportance[h * dK + j]), expected, accuracy: 1e-5 * max(1, expected), "\(arch) h\(h) j\(j)")
                }
            }
            XCTAssertTrue(result.keyBiasImportance.contains { $0 > 0 })
        }
    }
}
