import XCTest
import QKTensor
import QKTrain
@testable import QKAnalysis

/// The pieces behind `qkdb heads`, automatic labels and `qkdb features --token`, on hand-made
/// patterns and codes whose answers are known.
final class ReadingTests: XCTestCase {
    /// A causal pattern `[1, t, t]` whose row p puts `weight` on key `target(p)` and spreads the
    /// rest uniformly over the other allowed keys.
    func pattern(t: Int, weight: Float, target: (Int) -> Int) -> Tensor {
        var data = [Float](repeating: 0, count: t * t)
        for p in 0..<t {
            let keys = p + 1, k = target(p)
            let others = (0...p).contains(k) ? keys - 1 : keys   // a target outside the row: uniform
            for s in 0...p { data[p * t + s] = keys == 1 ? 1 : (s == k ? weight : (1 - weight) / Float(others)) }
        }
        return Tensor(shape: [1, t, t], data: data)
    }

    func tally(_ p: Tensor) -> HeadAttention {
        var t = HeadAttention.Tally(nHead: 1)
        t.add(pattern: p)
        return t.heads[0]
    }

    func testSharesAndRoles() throws {
        let t = 16
        let previous = tally(pattern(t: t, weight: 0.6, target: { max(0, $0 - 1) }))
        XCTAssertEqual(previous.previousToken, 0.6, accuracy: 0.02)   // p = 1: previous is also the first position
        XCTAssertEqual(previous.role, "previous token")
        XCTAssertEqual(previous.meanOffset, (1..<t).map { p -> Double in
            let rest = (0.4 / Double(p)) * (0...p).filter { $0 != p - 1 }.map { Double(p - $0) }.reduce(0, +)
            return 0.6 + rest
        }.reduce(0, +) / Double(t - 1), accuracy: 1e-4)
        let first = tally(pattern(t: t, weight: 0.3, target: { _ in 0 }))
        XCTAssertEqual(first.firstPosition, 0.3 + (0.7 / 1) / Double(t - 1), accuracy: 0.05)
        XCTAssertEqual(first.role, "first position")
        let same = tally(pattern(t: t, weight: 0.5, target: { $0 }))
        XCTAssertEqual(same.role, "same token")

        // Uniform causal attention: every share equals the uniform share; the entropy is uniform's.
        let uniform = tally(pattern(t: t, weight: 0, target: { _ in -1 }))
        let expected = (1..<t).map { 1 / Double($0 + 1) }.reduce(0, +) / Double(t - 1)
        XCTAssertEqual(uniform.uniformShare, expected, accuracy: 1e-6)
        XCTAssertEqual(uniform.firstPosition, expected, accuracy: 1e-6)
        XCTAssertEqual(uniform.entropy, uniform.uniformEntropy, accuracy: 1e-5)
        XCTAssertEqual(uniform.role, "broad")

        // A head picking one content key far back (not first, previous or same): "content".
        let content = tally(pattern(t: t, weight: 0.95, target: { $0 >= 4 ? $0 - 3 : $0 }))
        XCTAssertEqual(content.role, "content")
    }

    func testStoredHeadAttentionRoundTrips() throws {
        var tally = HeadAttention.Tally(nHead: 1)
        tally.add(pattern: pattern(t: 8, weight: 0.7, target: { max(0, $0 - 1) }))
        let json = String(decoding: try JSONSerialization.data(withJSONObject: ["step2": [HeadAttention.metricsKey: try jsonObject(tally.heads)]]), as: UTF8.self)
        XCTAssertEqual(HeadAttention.stored(metrics: json), tally.heads)
        XCTAssertNil(HeadAttention.stored(metrics: "{\"step2\": {}}"))
    }

    /// Two sequences of tokens 10, 11, 12 …; feature 0 fires on token 11 always (activation 2),
    /// feature 1 on token 12 half the time and token 13 once, feature 2 only at position 0.
    func testLabelsAndTokenSearch() {
        let tokens: [[Int32]] = [[10, 11, 12, 13, 11, 12], [10, 11, 12, 11, 12, 12]]
        var codes: [SparseActivations] = []
        for seq in tokens {
            var start = [0], idx: [Int32] = [], val: [Float] = []
            var seen12 = 0
            for (p, tok) in seq.enumerated() {
                if tok == 11 { idx.append(0); val.append(2) }
                if tok == 12 { seen12 += 1; if seen12 % 2 == 1 { idx.append(1); val.append(1) } }
                if tok == 13 { idx.append(1); val.append(0.5) }
                if p == 0 { idx.append(2); val.append(1) }
                start.append(idx.count)
            }
            codes.append(SparseActivations(rowStart: start, indices: idx, values: val, width: 4))
        }
        let table = FeatureTokens(codes: codes, tokens: tokens, width: 4)
        let text: (Int32) -> String = { ["a", " cat", "\n", "x,y"][Int($0) - 10] }
        // 12 positions: token 10 ×2, 11 ×4, 12 ×5, 13 ×1. Feature 0: all on 11 (a third of the text).
        XCTAssertEqual(table.label(0, text: text), "“ cat” 100%")
        // Feature 1: 75% on token 12, under twice its 42% of the text, so not selective for it;
        // 25% on token 13, three times its 8%.
        XCTAssertEqual(table.label(1, text: text), "“x,y” 25%")
        XCTAssertEqual(table.label(2, text: text), "position 0: “a” 100%")
        XCTAssertNil(table.label(3, text: text))
        // A feature firing everywhere is selective for nothing.
        let everywhere = FeatureTokens(codes: tokens.map { seq in
            SparseActivations(rowStart: Array(0...seq.count), indices: [Int32](repeating: 0, count: seq.count), values: [Float](repeating: 1, count: seq.count), width: 1)
        }, tokens: tokens, width: 1)
        XCTAssertEqual(everywhere.label(0, text: text), "broad: 100% of tokens")
        // Token 12 occurs 5 times; feature 1 fires on 3 of them (activation 1 each).
        let hits = table.firing(on: [12])
        XCTAssertEqual(hits.map(\.feature), [1])
        XCTAssertEqual(hits[0].firing, 3)
        XCTAssertEqual(hits[0].occurrences, 5)
        XCTAssertEqual(hits[0].meanActivation, 3.0 / 5, accuracy: 1e-9)
        XCTAssertEqual(hits[0].shareOfFeature, 0.75, accuracy: 1e-9)
        // Two spellings at once pool their occurrences.
        XCTAssertEqual(table.firing(on: [11, 12]).map(\.feature), [0, 1])
        XCTAssertEqual(FeatureSearch.tokenIDs("cat", vocabulary: [10: "a", 11: " cat", 12: "Cat", 13: "##cat"]), [11, 13])
    }
}
