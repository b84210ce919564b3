import XCTest
import QKTensor
import QKTrain
@testable import QKAnalysis

final class LossMetricsTests: XCTestCase {
    func testCrossEntropyOfUniformLogitsIsLogVocab() {
        let logits = Tensor(zeros: [2, 3, 5])
        XCTAssertEqual(LossMetrics.crossEntropy(logits: logits, tokens: [0, 1, 2, 3, 4, 0]), log(5), accuracy: 1e-6)
    }

    func testCrossEntropyPicksTheNextToken() {
        // One sequence of 2 tokens: only position 0 predicts token 1 (= index 2).
        var logits = Tensor(zeros: [1, 2, 3])
        logits[0, 0, 2] = 2
        let expected = -log(exp(2.0) / (2 + exp(2.0)))
        XCTAssertEqual(LossMetrics.crossEntropy(logits: logits, tokens: [0, 2]), expected, accuracy: 1e-6)
    }

    func testLogitKLIsZeroForEqualAndPositiveOtherwise() {
        let a = Tensor(shape: [1, 2, 3], data: [1, 2, 3, 0, 0, 1])
        XCTAssertEqual(LossMetrics.logitKL(clean: a, patched: a), 0, accuracy: 1e-9)
        // Adding a constant to a row does not change its softmax.
        let shifted = Tensor(shape: [1, 2, 3], data: [6, 7, 8, 0, 0, 1])
        XCTAssertEqual(LossMetrics.logitKL(clean: a, patched: shifted), 0, accuracy: 1e-6)
        let b = Tensor(shape: [1, 2, 3], data: [3, 2, 1, 0, 0, 1])
        XCTAssertGreaterThan(LossMetrics.logitKL(clean: a, patched: b), 0.1)
    }

    func testCosineAndRecovered() {
        let a = Tensor(shape: [2, 2], data: [1, 0, 0, 2])
        let b = Tensor(shape: [2, 2], data: [1, 1, 0, 5])
        XCTAssertEqual(LossMetrics.meanCosine(a, b), (1 / sqrt(2) + 1) / 2, accuracy: 1e-9)
        XCTAssertEqual(LossMetrics.recovered(clean: 1, ablation: 3, patched: 1.5), 0.75, accuracy: 1e-12)
        XCTAssertEqual(LossMetrics.recovered(clean: 1, ablation: 0.9, patched: 0.99), 0.9, accuracy: 1e-12)
    }

    func testUniformPatternRowsSumToOneOverAllowedKeys() {
        let u = ReferencePatterns.uniform(batch: 1, heads: 2, length: 4, causal: true)
        XCTAssertEqual(u[0, 1, 2, 0], 1.0 / 3, accuracy: 1e-7)
        XCTAssertEqual(u[0, 1, 2, 3], 0)
        let b = ReferencePatterns.uniform(batch: 1, heads: 1, length: 4, causal: false)
        XCTAssertEqual(b[0, 0, 0, 3], 0.25)
    }
}

/// How a run's sparsity was set travels in its stored config; configs stored before the sweep
/// existed decode with none (they were trained with the options as given).
final class SparsityChoiceConfigTests: XCTestCase {
    func testChoiceRoundTripsAndOldConfigsDecode() throws {
        var o = PipelineOptions(model: "m", layer: 1)
        o.corpus = "c.txt"
        o.sparsityChoice = .fromData
        o.sweep = SparsitySweepOptions(grid: [1, 2, 4], tokensPerPoint: 5000)
        o.training.l0Target = 3.4
        let back = try PipelineOptions.from(json: o.json())
        XCTAssertEqual(back, o)
        XCTAssertTrue(o.json().contains("from the data (sweep)"))
        var old = try JSONSerialization.jsonObject(with: Data(o.json().utf8)) as! [String: Any]
        old["sparsityChoice"] = nil; old["sweep"] = nil
        let decoded = try PipelineOptions.from(json: String(decoding: try JSONSerialization.data(withJSONObject: old), as: UTF8.self))
        XCTAssertNil(decoded.sparsityChoice)
        XCTAssertNil(decoded.sweep)
    }
}
