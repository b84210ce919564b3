import Foundation
import XCTest
import QKTensor
@testable import QKTrain

/// The decoder fit's pair-map term (`PairMapFitTerm`).
final class PairMapFitTermTests: XCTestCase {
    let geometry = AttentionGeometry(nHead: 2, nKVHead: 1, dHead: 4, causal: true)

    /// Random transcoders over a planted layer's captures, the query bias zeroed (so that B, which
    /// the term's gradient leaves out, does not depend on the decoders), and a term whose mask is
    /// trained hard enough to drop some entries.
    func makeTerm() throws -> (PairMapFitTerm, TranscoderParameters, TranscoderParameters, Int) {
        let planted = PlantedQK(dModel: 12, geometry: geometry, pairs: 2)
        let (batch, _, _) = planted.captures(sequences: 10, length: 6, seed: 2)
        var rng = TrainingRandom(seed: 9)
        var query = TranscoderParameters(dIn: 12, hidden: 10, out: geometry.qWidth, dataMean: nil, inputNorm: 1, rng: &rng)
        let key = TranscoderParameters(dIn: 12, hidden: 10, out: geometry.kWidth, dataMean: nil, inputNorm: 1, rng: &rng)
        query.bDec = [Float](repeating: 0, count: geometry.qWidth)
        let q = query.transcoder(activation: .relu), k = key.transcoder(activation: .relu)
        let sequences = PairMapSequence.sequences(from: batch, nHead: geometry.nHead, query: q, key: k)
        var mask = MaskTrainingOptions()
        mask.penalty = 2e-4; mask.epochs = 10; mask.batchSequences = 4; mask.threads = 2
        let term = try PairMapFitTerm(query: q, key: k, geometry: geometry, sequences: sequences, maskOptions: mask,
                                      weight: 1, batchSequences: 4, seed: 0)
        return (term, query, key, term.objective.entryCount)
    }

    func testGradientMatchesFiniteDifferences() throws {
        let (term, query, key, entries) = try makeTerm()
        XCTAssertGreaterThan(term.keptEntries, 0)
        XCTAssertLessThan(term.keptEntries, entries, "the mask should have dropped some entries")
        let batch = Array(0..<10)
        func kl(_ q: TranscoderParameters, _ k: TranscoderParameters) -> Double {
            var gq = TranscoderParameters(zerosIn: q.dIn, hidden: q.dHidden, out: q.dOut)
            var gk = TranscoderParameters(zerosIn: k.dIn, hidden: k.dHidden, out: k.dOut)
            return term.addGradient(query: q, key: k, batch: batch, gradQ: &gq, gradK: &gk)
        }
        var gq = TranscoderParameters(zerosIn: query.dIn, hidden: query.dHidden, out: query.dOut)
        var gk = TranscoderParameters(zerosIn: key.dIn, hidden: key.dHidden, out: key.dOut)
        _ = term.addGradient(query: query, key: key, batch: batch, gradQ: &gq, gradK: &gk)
        XCTAssertEqual(gq.encoderT.allSatisfy { $0 == 0 }, true, "the term moves decoders only")
        let step: Float = 1e-2
        var checked = 0
        for side in 0..<2 {
            let grad = side == 0 ? gq.wDec : gk.wDec
            let order = grad.indices.sorted { abs(grad[$0]) > abs(grad[$1]) }
            for c in order.prefix(12) {
                var qp = query, kp = key, qm = query, km = key
                if side == 0 { qp.wDec[c] += step; qm.wDec[c] -= step } else { kp.wDec[c] += step; km.wDec[c] -= step }
                let fd = (kl(qp, kp) - kl(qm, km)) / Double(2 * step)
                XCTAssertEqual(Double(grad[c]), fd, accuracy: 2e-2 * abs(fd) + 1e-5, "side \(side) W_dec[\(c)]")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 24)
        // Entries the mask dropped stay out: the decoders' gradient from them is zero, so a feature
        // with no kept entry gets none.
        let keptQuery = Set((0..<term.objective.index.pairCount).flatMap { pair -> [Int] in
            (0..<geometry.nHead).compactMap { h in
                term.objective.store[term.objective.slot.map { Int($0[term.objective.index.entry(pair: pair, head: h, heads: 2)]) }
                                     ?? term.objective.index.entry(pair: pair, head: h, heads: 2)] != 0
                    ? Int(term.objective.index.pairQuery[pair]) : nil }
        })
        for i in 0..<query.dHidden where !keptQuery.contains(i) {
            XCTAssertTrue(gq.wDec[(i * query.dOut)..<((i + 1) * query.dOut)].allSatisfy { $0 == 0 }, "feature \(i)")
        }
    }

    /// The term's KL and decoder gradient against PyTorch autograd
    /// (`tools/fixtures/make_pairmap_fixtures.py`: the mask's entries below 0.5 dropped, B held fixed).
    func testGradientMatchesPyTorch() throws {
        for name in ["causal_gqa", "bidirectional"] {
            let (f, q, k, sequences, config) = try PairMapTestSupport.loadFixture(name)
            let g = AttentionGeometry(config: config)
            let objective = try PairMapObjective(query: q, key: k, geometry: g, training: sequences, threads: 2)
            let denseMask = try f.floatTensor("mask").data
            let dk = k.dHidden, h = g.nHead
            var pruned = [Float](repeating: 0, count: objective.entryCount)
            for pair in 0..<objective.index.pairCount {
                let i = Int(objective.index.pairQuery[pair]), j = Int(objective.index.pairKey[pair])
                for x in 0..<h {
                    let m = denseMask[(i * dk + j) * h + x]
                    pruned[objective.index.entry(pair: pair, head: x, heads: h)] = m >= 0.5 ? m : 0
                }
            }
            let term = PairMapFitTerm(objective: objective, geometry: g, mask: pruned, weight: 1, batchSequences: 4, seed: 0)
            XCTAssertGreaterThan(term.keptEntries, 0, name)
            XCTAssertLessThan(term.keptEntries, objective.entryCount, name)
            func parameters(_ t: Transcoder) -> TranscoderParameters {
                var p = TranscoderParameters(zerosIn: 1, hidden: t.dHidden, out: t.dOut)
                p.wDec = t.wDec.data; p.bDec = t.bDec.data
                return p
            }
            let qp = parameters(q), kp = parameters(k)
            var gq = TranscoderParameters(zerosIn: 1, hidden: q.dHidden, out: q.dOut)
            var gk = TranscoderParameters(zerosIn: 1, hidden: k.dHidden, out: k.dOut)
            let kl = term.addGradient(query: qp, key: kp, batch: Array(sequences.indices), gradQ: &gq, gradK: &gk)
            let want = Double(try f.floatTensor("fit_kl").data[0])
            XCTAssertEqual(kl, want, accuracy: 1e-4 * abs(want), name)
            for (got, key) in [(gq.wDec, "fit_grad_w_dec_q"), (gk.wDec, "fit_grad_w_dec_k")] {
                let expected = try f.floatTensor(key).data
                XCTAssertEqual(got.count, expected.count)
                let scale = expected.map(abs).max() ?? 1
                for n in got.indices {
                    XCTAssertEqual(got[n], expected[n], accuracy: 1e-4 * scale, "\(name) \(key)[\(n)]")
                }
            }
        }
    }
}
