import XCTest
@testable import QKTensor

final class OpsTests: XCTestCase {
    func testSoftmaxMasksWithMinusInfinity() {
        var x: [Float] = [1, 2, -.infinity, 3, -.infinity, -.infinity]
        x.withUnsafeMutableBufferPointer { Ops.softmaxRows($0.baseAddress!, rows: 2, n: 3) }
        XCTAssertEqual(x[2], 0)
        XCTAssertEqual(x[0] + x[1], 1, accuracy: 1e-6)
        XCTAssertEqual(x[1] / x[0], Float(M_E), accuracy: 1e-5)
        XCTAssertEqual(Array(x[3...]), [1, 0, 0])
    }

    func testCausalMask() {
        var x = [Float](repeating: 0, count: 9)
        x.withUnsafeMutableBufferPointer { Ops.applyCausalMask($0.baseAddress!, q: 3, k: 3) }
        XCTAssertEqual(x.map { $0 == -.infinity }, [false, true, true, false, false, true, false, false, false])
    }

    func testLayerNormMatchesDefinition() {
        var x: [Float] = [1, 2, 3, 4]
        let g: [Float] = [1, 1, 2, 1], b: [Float] = [0, 0, 0, 1]
        x.withUnsafeMutableBufferPointer { Ops.layerNormRows($0.baseAddress!, rows: 1, n: 4, gamma: g, beta: b, eps: 0) }
        let sd = sqrtf(1.25)
        XCTAssertEqual(x[0], -1.5 / sd, accuracy: 1e-5)
        XCTAssertEqual(x[2], 2 * 0.5 / sd, accuracy: 1e-5)
        XCTAssertEqual(x[3], 1.5 / sd + 1, accuracy: 1e-5)
    }

    func testGeluForms() {
        var a: [Float] = [-1, 0, 1, 3], b = a
        a.withUnsafeMutableBufferPointer { Ops.geluErf($0.baseAddress!, count: 4) }
        b.withUnsafeMutableBufferPointer { Ops.geluTanh($0.baseAddress!, count: 4) }
        XCTAssertEqual(a[2], 0.8413447, accuracy: 1e-6)    // 1·Φ(1)
        XCTAssertEqual(b[2], 0.8411920, accuracy: 1e-6)    // tanh approximation
        XCTAssertEqual(a[1], 0)
    }

    func testHalfAndBFloatRoundTrip() {
        for v: Float in [0, 1, -2.5, 65504, 6.1035156e-05, 5.9604645e-08, 0.1] {
            XCTAssertEqual(HalfFloat.fromFP16(HalfFloat.toFP16(v)), Float(Float16(v)))
        }
        XCTAssertEqual(HalfFloat.fromFP16(0x3c00), 1)
        XCTAssertEqual(HalfFloat.fromFP16(0xfc00), -.infinity)
        XCTAssertEqual(HalfFloat.fromBF16(0x3f80), 1)
        XCTAssertEqual(HalfFloat.fromBF16(HalfFloat.toBF16(3.140625)), 3.140625)
    }

    func testMatmulAgainstNaiveLoop() {
        let a = Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6])
        let w = Tensor(shape: [3, 2], data: [1, 0, 0, 1, 1, 1])
        XCTAssertEqual(a.matmul(w).data, [4, 5, 10, 11])
        let wt = Tensor(shape: [2, 3], data: [1, 0, 1, 0, 1, 1])
        XCTAssertEqual(a.matmul(wt, transposeW: true, bias: Tensor(shape: [2], data: [1, -1])).data, [5, 4, 11, 10])
    }
}
