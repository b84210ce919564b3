import XCTest
@testable import QKTensor

final class RoPETests: XCTestCase {
    /// The rotated dot product depends only on the offset between positions.
    func testScoresDependOnlyOnOffset() {
        let rope = RoPE(dHead: 8, theta: 10000)
        let u: [Float] = [0.3, -1, 2, 0.5, 1, 0, -0.7, 0.2], w: [Float] = [1, 0.4, -0.3, 2, 0.1, -1, 0.6, 0.8]
        func rotated(_ v: [Float], at p: Int) -> [Float] {
            var x = [Float](repeating: 0, count: 8 * (p + 1))
            for i in 0..<8 { x[p * 8 + i] = v[i] }
            x.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, positions: p + 1, heads: 1) }
            return Array(x[(p * 8)..<(p * 8 + 8)])
        }
        func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map(*).reduce(0, +) }
        XCTAssertEqual(dot(rotated(u, at: 7), rotated(w, at: 4)), dot(rotated(u, at: 3), rotated(w, at: 0)), accuracy: 1e-4)
        XCTAssertNotEqual(dot(rotated(u, at: 7), rotated(w, at: 4)), dot(u, w), accuracy: 1e-3)
    }

    /// Backward = inverse rotation: applying both is the identity, and the inverse is the transpose.
    func testInverseUndoesRotation() {
        let rope = RoPE(dHead: 4, theta: 100)
        let orig: [Float] = (0..<24).map { Float($0) * 0.1 - 1 }
        var x = orig
        x.withUnsafeMutableBufferPointer {
            rope.apply($0.baseAddress!, positions: 3, heads: 2)
            rope.apply($0.baseAddress!, positions: 3, heads: 2, inverse: true)
        }
        for i in 0..<24 { XCTAssertEqual(x[i], orig[i], accuracy: 1e-5) }
        XCTAssertEqual(rope.frequencies[1], 0.1, accuracy: 1e-7)
    }
}
