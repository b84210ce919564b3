import XCTest
import Foundation
@testable import QKModels

/// The vectorised math the GPT-2/BERT forward pass uses, against libm.
final class GPT2BertKernelTests: XCTestCase {
    let inputs: [Float] = stride(from: -30, through: 30, by: 0.0137).map { Float($0) } + [-90, -87, 0, 1e-8, 88]

    func testExpAndErfMatchLibm() {
        for i in stride(from: 0, to: inputs.count - 8, by: 8) {
            let v = SIMD8<Float>(inputs[i..<(i + 8)])
            let e = VectorMath.exp(v), f = VectorMath.erf(v)
            for l in 0..<8 {
                let want = expf(v[l])
                XCTAssertLessThanOrEqual(abs(e[l] - want), 4e-7 * max(want, 1e-30), "exp(\(v[l]))")
                XCTAssertLessThanOrEqual(abs(f[l] - erff(v[l])), 5e-7, "erf(\(v[l]))")
            }
        }
        XCTAssertEqual(VectorMath.exp(SIMD8(repeating: -.infinity)), .zero)
    }

    func testGeluMatchesOps() {
        var a = inputs.map { $0 / 3 }, b = a, c = a, d = a
        VectorMath.geluErf(&a, count: a.count)
        QKTensor_geluErf(&b)
        VectorMath.geluTanh(&c, count: c.count)
        QKTensor_geluTanh(&d)
        for i in a.indices {
            XCTAssertEqual(a[i], b[i], accuracy: 2e-6 * max(1, abs(b[i])))
            XCTAssertEqual(c[i], d[i], accuracy: 2e-6 * max(1, abs(d[i])))
        }
    }

    func testSoftmaxGivesExactZerosForMaskedEntries() {
        var x: [Float] = [1, 2, -.infinity, 3, 0.5, -.infinity, 2, 1, 7, 9,   // row 0 (n = 10)
                          -.infinity, -.infinity, -.infinity, -.infinity, -.infinity,
                          -.infinity, -.infinity, -.infinity, -.infinity, -.infinity]
        VectorMath.softmaxRows(&x, rows: 2, n: 10)
        XCTAssertEqual(x[2], 0)
        XCTAssertEqual(x[5], 0)
        XCTAssertEqual(x[0..<10].reduce(0, +), 1, accuracy: 1e-6)
        let finite: [Float] = [1, 2, 3, 0.5, 2, 1, 7, 9]
        let z = finite.map { expf($0 - 9) }.reduce(0, +)
        XCTAssertEqual(x[9], expf(0) / z, accuracy: 1e-6)
        XCTAssertEqual(Array(x[10...]), [Float](repeating: 0, count: 10))
    }
}

import QKTensor
private func QKTensor_geluErf(_ x: inout [Float]) { x.withUnsafeMutableBufferPointer { Ops.geluErf($0.baseAddress!, count: $0.count) } }
private func QKTensor_geluTanh(_ x: inout [Float]) { x.withUnsafeMutableBufferPointer { Ops.geluTanh($0.baseAddress!, count: $0.count) } }
