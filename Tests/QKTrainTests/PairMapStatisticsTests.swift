import XCTest
import QKTensor
import QKModels
@testable import QKTrain

/// Pair and feature statistics against brute-force sums over every (p, s).
final class PairMapStatisticsTests: XCTestCase {
    func testCausalStatisticsMatchBruteForce() throws { try check(causal: true) }
    func testBidirectionalStatisticsMatchBruteForce() throws { try check(causal: false) }

    private func check(causal: Bool) throws {
        let (q, k, config, seqs) = PairMapTestSupport.random(seed: causal ? 21 : 22, causal: causal, nHead: 2, nKVHead: 1, dHead: 4,
                                                               dq: 8, dk: 7, sequences: 6, length: 6, active: 2)
        var options = MaskTrainingOptions()
        options.epochs = 0   // mask stays 1: every co-firing entry survives, so every statistic is checked
        let training = Array(seqs[0..<4]), heldOut = Array(seqs[4...])
        let r = try PairMap.run(query: q, key: k, config: config, training: training, heldOut: heldOut, options: options)
        let objective = try PairMapObjective(query: q, key: k, config: config, training: training, threads: 1)
        XCTAssertEqual(r.count, objective.entryCount)
        XCTAssertEqual(r.metrics.klUnmasked, r.metrics.klPruned, accuracy: 1e-9)

        func dense(_ a: SparseActivations) -> [[Float]] {
            (0..<a.rows).map { p in
                var row = [Float](repeating: 0, count: a.width)
                for e in a.rowStart[p]..<a.rowStart[p + 1] { row[Int(a.indices[e])] = a.values[e] }
                return row
            }
        }
        var allowed = 0.0
        for s in heldOut { allowed += Double(causal ? s.length * (s.length + 1) / 2 : s.length * s.length) }
        for e in 0..<r.count {
            let i = Int(r.queryFeature[e]), j = Int(r.keyFeature[e]), h = Int(r.head[e])
            let pair = objective.index.pair(query: i, key: j)!
            let w = Double(objective.weights.pairValue[objective.index.entry(pair: pair, head: h, heads: 2)])
            var absSum = 0.0, sum = 0.0, both = 0.0
            for s in heldOut {
                let aq = dense(s.query), ak = dense(s.key)
                for p in 0..<s.length { for t in 0..<(causal ? p + 1 : s.length) {
                    let x = Double(aq[p][i]) * Double(ak[t][j])
                    absSum += abs(x * w); sum += x * w
                    if aq[p][i] > 0 && ak[t][j] > 0 { both += 1 }
                } }
            }
            XCTAssertEqual(Double(r.value[e]), w, accuracy: 1e-6)
            XCTAssertEqual(Double(r.importance[e]), absSum / allowed, accuracy: 1e-5 * max(1, absSum / allowed))
            XCTAssertEqual(Double(r.cooccurrence[e]), both / allowed, accuracy: 1e-6)
            XCTAssertEqual(Double(r.meanContribution[e]), both == 0 ? 0 : sum / both, accuracy: 1e-4 * max(1, abs(sum / max(both, 1))))
        }
        // Order: (head, query feature, key feature).
        for e in 1..<r.count {
            XCTAssertTrue((r.head[e - 1], r.queryFeature[e - 1], r.keyFeature[e - 1]) < (r.head[e], r.queryFeature[e], r.keyFeature[e]))
        }

        // Feature statistics of the key side, by brute force.
        let stats = r.keyFeatures
        let positions = heldOut.reduce(0) { $0 + $1.length }
        for j in 0..<k.dHidden {
            var acts = [(Float, Int, Int)]()
            var bos: Float = 0
            for (n, s) in heldOut.enumerated() {
                let ak = dense(s.key)
                for p in 0..<s.length where ak[p][j] > 0 { acts.append((ak[p][j], n, p)); if p == 0 { bos += ak[p][j] } }
            }
            let mass = acts.reduce(Float(0)) { $0 + $1.0 }
            XCTAssertEqual(stats.alive[j], !acts.isEmpty)
            XCTAssertEqual(stats.density[j], Float(acts.count) / Float(positions), accuracy: 1e-6)
            XCTAssertEqual(stats.meanActivation[j], acts.isEmpty ? 0 : mass / Float(acts.count), accuracy: 1e-5)
            XCTAssertEqual(stats.maxActivation[j], acts.map(\.0).max() ?? 0)
            XCTAssertEqual(stats.bosFraction[j], mass == 0 ? 0 : bos / mass, accuracy: 1e-5)
            let top = acts.sorted { $0.0 > $1.0 }.prefix(20)
            let got = Array(stats.exampleActivation[stats.exampleStart[j]..<stats.exampleStart[j + 1]])
            XCTAssertEqual(got, top.map(\.0))
        }
    }

    func testTopExamplesKeepTheStrongest() {
        // One feature firing at 30 positions with distinct values: the 20 largest survive, in order.
        var a = SparseActivations(width: 2)
        for p in 0..<30 {
            a.indices.append(1); a.values.append(Float((p * 7) % 30) + 1); a.rowStart.append(a.indices.count)
        }
        let s = FeatureStatistics(codes: [a], width: 2, examples: 20)
        XCTAssertEqual(s.exampleActivation, (11...30).reversed().map(Float.init))
        XCTAssertEqual(s.exampleStart, [0, 0, 20])
        XCTAssertEqual(s.alive, [false, true])
        for (n, p) in s.examplePosition.enumerated() { XCTAssertEqual(Float((Int(p) * 7) % 30) + 1, s.exampleActivation[n]) }
    }

    func testBadInputNamesTheSequence() throws {
        let (q, k, config, seqs) = PairMapTestSupport.random(seed: 5, causal: true, nHead: 2, nKVHead: 1, dHead: 4,
                                                               dq: 6, dk: 6, sequences: 3, length: 5, active: 2)
        var bad = seqs
        bad[2].pattern = Tensor(zeros: [2, 5, 4])
        XCTAssertThrowsError(try PairMapObjective(query: q, key: k, config: config, training: bad)) {
            XCTAssertTrue("\($0)".contains("sequence 2"), "\($0)")
        }
        bad = seqs
        bad[1].key.indices[0] = 99
        XCTAssertThrowsError(try PairMapObjective(query: q, key: k, config: config, training: bad)) {
            XCTAssertTrue("\($0)".contains("sequence 1 key feature 99"), "\($0)")
        }
        var wrongHeads = config
        wrongHeads.nHead = 3
        XCTAssertThrowsError(try PairMapObjective(query: q, key: k, config: wrongHeads, training: seqs))
        var rope = config
        rope.ropeTheta = 10000
        XCTAssertThrowsError(try PairMapObjective(query: q, key: k, config: rope, training: seqs)) {
            XCTAssertTrue("\($0)".contains("RoPE"), "\($0)")
        }
        var options = MaskTrainingOptions()
        options.threshold = 2
        XCTAssertThrowsError(try PairMap.run(query: q, key: k, config: config, training: seqs, heldOut: seqs, options: options)) {
            XCTAssertTrue("\($0)".contains("threshold"), "\($0)")
        }
    }

    /// Codes that never fire give an empty map, finite KLs and no crash.
    func testSilentDictionariesGiveAnEmptyMap() throws {
        let (q, k, config, seqs) = PairMapTestSupport.random(seed: 9, causal: true, nHead: 2, nKVHead: 1, dHead: 4,
                                                               dq: 6, dk: 6, sequences: 3, length: 5, active: 2)
        let silent = seqs.map { s in
            PairMapSequence(query: SparseActivations(rowStart: [Int](repeating: 0, count: 6), indices: [], values: [], width: 6),
                            key: SparseActivations(rowStart: [Int](repeating: 0, count: 6), indices: [], values: [], width: 6),
                            pattern: s.pattern)
        }
        let saved = PairMapObjective.liveBlockBudget
        defer { PairMapObjective.liveBlockBudget = saved }
        for budget in [saved, 0] {   // both layouts of W
            PairMapObjective.liveBlockBudget = budget
            let r = try PairMap.run(query: q, key: k, config: config, training: silent, heldOut: silent)
            XCTAssertEqual(r.count, 0)
            XCTAssertEqual(r.metrics.klPruned, r.metrics.klUnmasked)
        }
        let r = try PairMap.run(query: q, key: k, config: config, training: silent, heldOut: silent)
        XCTAssertEqual(r.count, 0)
        XCTAssertEqual(r.metrics.entriesConsidered, 0)
        XCTAssertTrue(r.metrics.klPruned.isFinite)
        XCTAssertEqual(r.metrics.klPruned, r.metrics.klUnmasked)
        XCTAssertEqual(r.keyFeatures.alive, [Bool](repeating: false, count: 6))
    }
}

/// Building step-2 sequences from a harvested capture.
final class PairMapSequenceTests: XCTestCase {
    func testSequencesFromCaptureEncodeEachRow() throws {
        var rng = SplitMix64(seed: 4)
        let (batch, t, d, width, nHead) = (3, 4, 5, 7, 2)
        func tensor(_ shape: [Int]) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in PairMapTestSupport.normal(&rng) })
        }
        let q = Transcoder(wEnc: tensor([d, width]), bEnc: tensor([width]), wDec: tensor([width, nHead * 2]), bDec: tensor([nHead * 2]), activation: .relu)
        let k = Transcoder(wEnc: tensor([d, width]), bEnc: tensor([width]), wDec: tensor([width, 2]), bDec: tensor([2]), activation: .relu,
                           firstPositionFeature: 1)
        let x = tensor([batch, t, d]), pattern = tensor([batch, nHead, t, t])
        let capture = LayerCapture(layer: 1, attnIn: x, q: Tensor(zeros: [batch, t, nHead, 2]), k: Tensor(zeros: [batch, t, 1, 2]), pattern: pattern)
        let seqs = try PairMapSequence.sequences(from: capture, query: q, key: k)
        XCTAssertEqual(seqs.count, batch)
        for b in 0..<batch {
            XCTAssertEqual(seqs[b].query, q.encode(x.row(b), sequenceLength: t))
            XCTAssertEqual(seqs[b].key, k.encode(x.row(b), sequenceLength: t))
            // The key side's first-position feature: activation 1 at position 0, nowhere else.
            for p in 0..<t { XCTAssertEqual(seqs[b].key.row(p).indices.contains(1), p == 0) }
            XCTAssertEqual(seqs[b].key.row(0).values[seqs[b].key.row(0).indices.firstIndex(of: 1)!], 1)
            XCTAssertEqual(seqs[b].pattern, pattern.row(b))
        }
        let bad = LayerCapture(layer: 1, attnIn: x, q: capture.q, k: capture.k, pattern: tensor([batch, nHead, t, t + 1]))
        XCTAssertThrowsError(try PairMapSequence.sequences(from: bad, query: q, key: k)) {
            XCTAssertTrue("\($0)".contains("layer 1"), "\($0)")
        }
    }
}
