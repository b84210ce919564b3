import XCTest
@testable import QKTrain

/// The L0 target's λ update: unchanged above the target, a log-ratio fall below it.
final class L0ControllerTests: XCTestCase {
    func testRiseIsLinearInTheExcessAndFallIsLogarithmic() {
        let rate = 0.01, target = 18.0
        XCTAssertEqual(L0Controller.next(lambda: 1e-5, l0: 18, target: target, rate: rate), 1e-5)
        XCTAssertEqual(Double(L0Controller.next(lambda: 1e-5, l0: 36, target: target, rate: rate)), 1e-5 * exp(0.01), accuracy: 1e-11)
        XCTAssertEqual(Double(L0Controller.next(lambda: 1e-5, l0: 9, target: target, rate: rate)), 1e-5 * exp(0.01 * log(0.5)), accuracy: 1e-11)
        // Deep in the post-warm-up dip the fall is capped at 3·rate a step, three times the old linear cap.
        XCTAssertEqual(Double(L0Controller.next(lambda: 1e-5, l0: 0.01, target: target, rate: rate)), 1e-5 * exp(-0.03), accuracy: 1e-11)
        XCTAssertEqual(Double(L0Controller.next(lambda: 1e-5, l0: 0, target: target, rate: rate)), 1e-5 * exp(-0.03), accuracy: 1e-11)
    }

    /// From a 100× overshoot (what the warm-up leaves on MiniLM), λ is back within 300 steps of
    /// codes that stay at a tenth of the target; the old linear fall needed ~500.
    func testClimbsOutOfTheDipWithinAShortRun() {
        var lambda: Float = 1e-3
        var steps = 0
        while lambda > 1e-5 && steps < 1000 { lambda = L0Controller.next(lambda: lambda, l0: 1.8, target: 18, rate: 0.01); steps += 1 }
        XCTAssertLessThan(steps, 300)
    }

    /// Short runs: the warm-ups take at most a quarter of the steps, only when asked, and never
    /// change a run of 400 steps or more.
    func testWarmupsTakeAtMostAQuarterOfAShortRun() {
        var o = TrainingOptions()
        XCTAssertEqual(o.warmup(100, totalSteps: 195), 100)          // not asked (library default, old configs)
        o.warmupsAtMostAQuarter = true
        XCTAssertEqual(o.warmup(100, totalSteps: 195), 48)
        XCTAssertEqual(o.warmup(100, totalSteps: 400), 100)
        XCTAssertEqual(o.warmup(100, totalSteps: 2441), 100)
        XCTAssertEqual(o.warmup(100, totalSteps: 2), 1)
        XCTAssertEqual(o.penaltyFactor(step: 24, totalSteps: 195), 0.5, accuracy: 1e-6)
        XCTAssertEqual(o.learningRate(step: 48, totalSteps: 195), o.learningRate, accuracy: 1e-9)
        XCTAssertLessThan(o.learningRate(step: 24, totalSteps: 195), o.learningRate)
    }
}
