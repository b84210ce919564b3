import XCTest
import QKTensor
import QKModels
import QKTrain
@testable import QKAnalysis

/// The explanation arithmetic on real (tiny) models with random transcoders: the terms must add
/// up to the model's own score, and the three rows must be the patterns the rest of qkdb computes.
final class ExploreExplanationTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// A random transcoder whose codes fire on a good share of features (bias pushes ~1/3 active).
    static func transcoder(dIn: Int, dHidden: Int, dOut: Int, seed: UInt64) -> Transcoder {
        var rng = SplitMix64(seed: seed)
        func randn(_ n: Int, _ scale: Float) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &rng) * scale } }
        return Transcoder(wEnc: Tensor(shape: [dIn, dHidden], data: randn(dIn * dHidden, 0.5)),
                          bEnc: Tensor(shape: [dHidden], data: randn(dHidden, 0.2)),
                          wDec: Tensor(shape: [dHidden, dOut], data: randn(dHidden * dOut, 0.4)),
                          bDec: Tensor(shape: [dOut], data: randn(dOut, 0.3)), activation: .relu)
    }

    /// A pruned map holding a random third of all pairs at their decoder value × a random mask,
    /// and the key-bias term B, as step 2 would store them.
    static func scorer(query: Transcoder, key: Transcoder, config c: ModelConfig, seed: UInt64) throws
        -> PairMapScorer {
        var rng = SplitMix64(seed: seed)
        var h: [Int32] = [], qf: [Int32] = [], kf: [Int32] = [], v: [Float] = []
        let dh = c.dHead, scale = 1 / Float(dh).squareRoot()
        for head in 0..<c.nHead {
            let g = c.kvHead(of: head)
            for i in 0..<query.dHidden {
                for j in 0..<key.dHidden where rng.next() % 3 == 0 {
                    var m: Float = 0
                    for d in 0..<dh { m += query.wDec[i, head * dh + d] * key.wDec[j, g * dh + d] }
                    let mask = Float.random(in: 0.2...1, using: &rng)
                    h.append(Int32(head)); qf.append(Int32(i)); kf.append(Int32(j)); v.append(m * scale * mask)
                }
            }
        }
        var bias = [Float](repeating: 0, count: c.nHead * key.dHidden)
        for head in 0..<c.nHead {
            for j in 0..<key.dHidden {
                var s: Float = 0
                for d in 0..<dh { s += query.bDec[head * dh + d] * key.wDec[j, c.kvHead(of: head) * dh + d] }
                bias[head * key.dHidden + j] = s * scale
            }
        }
        return try PairMapScorer(nHead: c.nHead, dQuery: query.dHidden, dKey: key.dHidden, head: h, queryFeature: qf,
                                 keyFeature: kf, value: v, keyBias: bias)
    }

    func check(modelPath: String, layer: Int, text: String, dHidden: Int = 24, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try loadModel(path: modelPath)
        let c = model.config
        let query = Self.transcoder(dIn: c.dModel, dHidden: dHidden, dOut: c.nHead * c.dHead, seed: 1)
        let key = Self.transcoder(dIn: c.dModel, dHidden: dHidden, dOut: c.nKVHead * c.dHead, seed: 2)
        let scorer = try Self.scorer(query: query, key: key, config: c, seed: 3)
        let explainer = try Explainer(model: model, layer: layer, query: query, key: key, scorer: scorer)
        let tokens = try explainer.tokens(for: text, bos: true)
        XCTAssertGreaterThan(tokens.count, 4, file: file, line: line)
        let capture = try model.capture(TokenBatch(sequences: [tokens]), layer: layer)
        let recon = TranscoderPatterns.reconstruct(capture, query: query, key: key, config: c)
        let pruned = EvalStage.prunedMapPatterns(capture, scorer: scorer, query: query, key: key, causal: c.architecture.isCausal)
        let t = tokens.count
        var checkedPairs = 0
        for head in [0, c.nHead - 1] {
            for dest in [t / 2, t - 1] {
                let e = try explainer.explain(tokens: tokens, head: head, dest: dest)
                // Exact split of every score.
                var trueScores = [Float](repeating: 0, count: t)
                for s in e.scores {
                    let tol = 2e-4 * max(1, abs(Double(s.trueScore)))
                    XCTAssertEqual(s.termSum + Double(s.error), Double(s.trueScore), accuracy: tol, "head \(head) \(dest)→\(s.src)", file: file, line: line)
                    XCTAssertEqual(s.termSum, Double(s.reconstructedScore), accuracy: tol, file: file, line: line)
                    XCTAssertFalse(s.pairs.isEmpty, "random codes should co-fire", file: file, line: line)
                    checkedPairs += s.pairs.count
                    trueScores[s.src] = s.trueScore
                    // The pruned map's score: kept pairs at their stored value (= decoder value × mask) + B.
                    let keptSum = s.pairs.reduce(0.0) { $0 + Double($1.queryActivation * $1.keyActivation * ($1.storedValue ?? 0)) }
                    if c.ropeTheta == nil {
                        XCTAssertEqual(keptSum + Double(s.keyBias), Double(s.prunedScore), accuracy: tol, file: file, line: line)
                    }
                }
                // The true scores reproduce the model's own pattern row (so RoPE and the head mapping are right).
                Explainer.softmax(&trueScores, allowed: e.sources)
                for s in 0..<t {
                    let base = (head * t + dest) * t + s
                    XCTAssertEqual(trueScores[s], capture.pattern.data[base], accuracy: 1e-4, "true row \(dest)→\(s)", file: file, line: line)
                    XCTAssertEqual(e.truePattern[s], capture.pattern.data[base], accuracy: 1e-6, file: file, line: line)
                    XCTAssertEqual(e.reconstructedPattern[s], recon.data[base], accuracy: 1e-4, "reconstructed row \(dest)→\(s)", file: file, line: line)
                    XCTAssertEqual(e.prunedPattern[s], pruned.data[base], accuracy: 1e-4, "pruned row \(dest)→\(s)", file: file, line: line)
                }
                // The attention-weighted summary splits exactly too.
                let w = e.weightedSummary()
                XCTAssertEqual(w.termSum + Double(w.error), Double(w.trueScore), accuracy: 2e-4 * max(1, abs(Double(w.trueScore))), file: file, line: line)
                let direct = e.scores.reduce(0.0) { $0 + Double(e.truePattern[$1.src]) * Double($1.trueScore) }
                XCTAssertEqual(Double(w.trueScore), direct, accuracy: 1e-4 * max(1, abs(direct)), file: file, line: line)
                // Pairs are sorted strongest first.
                for (a, b) in zip(w.pairs, w.pairs.dropFirst()) { XCTAssertGreaterThanOrEqual(abs(a.contribution), abs(b.contribution), file: file, line: line) }
            }
        }
        XCTAssertGreaterThan(checkedPairs, 100, file: file, line: line)
    }

    func testCausalGPT2SplitsExactly() throws {
        try check(modelPath: Self.root + "/Tests/Fixtures/models/tiny-gpt2", layer: 1, text: "The cat sat on the mat, quietly.")
    }

    func testBidirectionalBertSplitsExactly() throws {
        try check(modelPath: Self.root + "/Tests/Fixtures/models/tiny-bert", layer: 1, text: "the cat sat on the mat quietly")
    }

    /// RoPE with grouped-query attention: the bundled SmolLM2 (pair values depend on p − s).
    func testRoPEGroupedQuerySplitsExactly() throws {
        let path = Self.root + "/models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("bundled SmolLM2 not present") }
        // Llama/GGUF loading lands with the llama runtime; until then there is no RoPE model to run.
        do { _ = try loadModel(path: path) } catch { throw XCTSkip("this build cannot load \(path): \(error)") }
        try check(modelPath: path, layer: 1, text: "Once upon a time there was a cat", dHidden: 16)
    }

    func testOutOfRangeHeadAndPositionThrowOneLine() throws {
        let model = try loadModel(path: Self.root + "/Tests/Fixtures/models/tiny-gpt2")
        let c = model.config
        let explainer = try Explainer(model: model, layer: 0,
                                      query: Self.transcoder(dIn: c.dModel, dHidden: 8, dOut: c.nHead * c.dHead, seed: 1),
                                      key: Self.transcoder(dIn: c.dModel, dHidden: 8, dOut: c.nKVHead * c.dHead, seed: 2), scorer: nil)
        let tokens = try explainer.tokens(for: "hello there", bos: true)
        XCTAssertThrowsError(try explainer.explain(tokens: tokens, head: c.nHead, dest: 0)) { XCTAssertTrue("\($0)".contains("head \(c.nHead)")) }
        XCTAssertThrowsError(try explainer.explain(tokens: tokens, head: 0, dest: tokens.count)) { XCTAssertTrue("\($0)".contains("position")) }
        let e = try explainer.explain(tokens: tokens, head: 0, dest: 1)
        XCTAssertEqual(e.sources, 0..<2)
        XCTAssertTrue(e.prunedPattern.isEmpty)
    }
}

final class ExploreHistogramTests: XCTestCase {
    func testPerFeatureCountsAndDensity() {
        // Two sequences, feature 0 fires 1.0, 0.5, 0.25; feature 1 fires once at 2; feature 2 never.
        var a = SparseActivations(width: 3)
        for row in [[1, 0, 0], [0.5, 2, 0]] as [[Float]] { row.withUnsafeBufferPointer { a.appendRow(dense: $0.baseAddress!) } }
        var b = SparseActivations(width: 3)
        for row in [[0.25, 0, 0], [0, 0, 0]] as [[Float]] { row.withUnsafeBufferPointer { b.appendRow(dense: $0.baseAddress!) } }
        let h = ActivationHistogram.perFeature(codes: [a, b], width: 3, bins: 4)
        XCTAssertEqual(h[0].counts, [0, 1, 1, 1])
        XCTAssertEqual(h[0].maxValue, 1)
        XCTAssertEqual(h[0].density, 3.0 / 4.0)
        XCTAssertEqual(h[1].counts, [0, 0, 0, 1])
        XCTAssertEqual(h[2].firing, 0)
        XCTAssertTrue(h[2].textChart().contains("never fires"))
        let chart = h[0].textChart(rows: 4, width: 10)
        XCTAssertEqual(chart.split(separator: "\n").count, 4)
        XCTAssertTrue(chart.contains("██████████ 1"))
    }

    func testMarkedExampleText() {
        let e = FeatureView.Example(sequenceID: 0, position: 3, activation: 1, tokens: ["the", "cat", "##s", "sat"], firing: 2, values: nil)
        XCTAssertEqual(TokenText.marked(e, wordPiece: true), "the cat«s» sat")
        let g = FeatureView.Example(sequenceID: 0, position: 1, activation: 1, tokens: ["The", " cat", " sat"], firing: 1, values: nil)
        XCTAssertEqual(TokenText.marked(g, wordPiece: false), "The «cat» sat")
    }
}
