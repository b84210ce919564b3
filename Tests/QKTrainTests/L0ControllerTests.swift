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
}
