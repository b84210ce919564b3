import XCTest
import QKTensor
import QKModels
@testable import QKTrain

/// The RoPE step-2 objective: dL/dm against finite differences, and the unmasked map's scores
/// against RoPE applied to the transcoders' own q̂ and k̂.
final class RoPEPairMapGradientTests: XCTestCase {
    static func ropeData(seed: UInt64, heads: Int = 4, kvHeads: Int = 2, dHead: Int = 8, sequences: Int = 3, length: Int = 9)
        -> (Transcoder, Transcoder, ModelConfig, [PairMapSequence]) {
        let (q, k, base, seqs) = PairMapTestSupport.random(seed: seed, causal: true, nHead: heads, nKVHead: kvHeads, dHead: dHead,
                                                             dq: 10, dk: 9, sequences: sequences, length: length, active: 3)
        var config = base
        config.architecture = .llama
        config.ropeTheta = 100
        return (q, k, config, seqs)
    }

    func testGradientMatchesFiniteDifferences() throws {
        let (q, k, config, seqs) = Self.ropeData(seed: 21)
        let objective = try RoPEPairMapObjective(query: q, key: k, config: config, training: seqs, threads: 2)
        var rng = SplitMix64(seed: 5)
        let mask = (0..<objective.entryCount).map { _ in 0.3 + 0.6 * PairMapTestSupport.uniform(&rng) }
        let batch = [0, 1, 2], mu: Float = 1e-3, eps: Float = 1e-6
        let g = objective.lossAndGradient(mask: mask, batch: batch, penalty: mu, epsilon: eps).gradient
        let probe = g.indices.sorted { abs(g[$0]) > abs(g[$1]) }.prefix(12)
        XCTAssertGreaterThan(abs(g[probe.first!]), 1e-3)
        for e in probe {
            let step: Float = 1e-2
            var up = mask, down = mask
            up[e] += step; down[e] -= step
            let lu = objective.lossAndGradient(mask: up, batch: batch, penalty: mu, epsilon: eps).loss
            let ld = objective.lossAndGradient(mask: down, batch: batch, penalty: mu, epsilon: eps).loss
            let fd = (lu - ld) / Double(2 * step)
            XCTAssertEqual(Double(g[e]), fd, accuracy: 2e-2 * abs(fd) + 2e-5, "entry \(e)")
        }
        // Fresh buffers each call: the same batch gives the same gradient.
        XCTAssertEqual(g, objective.lossAndGradient(mask: mask, batch: batch, penalty: mu, epsilon: eps).gradient)
    }

    /// With every co-firing pair at m = 1 the map is the transcoders' reconstruction, so its
    /// scores must equal <RoPE(q̂)(p), RoPE(k̂)(s)>/sqrt(d_head) with all four terms.
    func testUnmaskedScoresEqualRotatedReconstruction() throws {
        let (q, k, config, seqs) = Self.ropeData(seed: 22)
        let objective = try RoPEPairMapObjective(query: q, key: k, config: config, training: seqs, threads: 1)
        let index = objective.index, h = config.nHead, g = config.nKVHead, dh = config.dHead
        var head = [Int32](), qf = [Int32](), kf = [Int32]()
        for pair in 0..<index.pairCount {
            for x in 0..<h { head.append(Int32(x)); qf.append(index.pairQuery[pair]); kf.append(index.pairKey[pair]) }
        }
        let scorer = try RoPEPairScorer(query: q, key: k, config: config, head: head, queryFeature: qf, keyFeature: kf,
                                        mask: [Float](repeating: 1, count: head.count))
        let rope = RoPE(dHead: dh, theta: config.ropeTheta!)
        for seq in seqs {
            let t = seq.length
            var qh = [Float](repeating: 0, count: t * h * dh), kh = [Float](repeating: 0, count: t * g * dh)
            for p in 0..<t {
                for x in 0..<(h * dh) { qh[p * h * dh + x] = q.bDec.data[x] }
                for x in 0..<(g * dh) { kh[p * g * dh + x] = k.bDec.data[x] }
                for e in seq.query.rowStart[p]..<seq.query.rowStart[p + 1] {
                    for x in 0..<(h * dh) { qh[p * h * dh + x] += seq.query.values[e] * q.wDec.data[Int(seq.query.indices[e]) * h * dh + x] }
                }
                for e in seq.key.rowStart[p]..<seq.key.rowStart[p + 1] {
                    for x in 0..<(g * dh) { kh[p * g * dh + x] += seq.key.values[e] * k.wDec.data[Int(seq.key.indices[e]) * g * dh + x] }
                }
            }
            qh.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, positions: t, heads: h) }
            kh.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, positions: t, heads: g) }
            let scores = try scorer.scores(query: seq.query, key: seq.key)
            for x in 0..<h {
                for p in 0..<t {
                    for s in 0..<t {
                        let got = scores.data[(x * t + p) * t + s]
                        if s > p { XCTAssertEqual(got, -.infinity); continue }
                        var want: Float = 0
                        for d in 0..<dh { want += qh[(p * h + x) * dh + d] * kh[(s * g + config.kvHead(of: x)) * dh + d] }
                        want /= Float(dh).squareRoot()
                        XCTAssertEqual(got, want, accuracy: 1e-4 * max(1, abs(want)), "head \(x) p \(p) s \(s)")
                    }
                }
            }
        }
    }

    func testNonRoPEObjectiveStillRejectsRoPEConfigs() throws {
        let (q, k, config, seqs) = Self.ropeData(seed: 23)
        XCTAssertThrowsError(try PairMapObjective(query: q, key: k, config: config, training: seqs, threads: 1))
    }
}
