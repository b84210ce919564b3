import Foundation
import QKTensor
@testable import QKTrain

/// A layer whose W_Q / W_K implement a known sparse set of query-direction × key-direction
/// pairs, and captures from it. Inputs are sums of a few orthonormal "planted" directions with
/// random strengths plus a little noise; query direction u_a is mapped by W_Q, and key direction
/// v_a by W_K, onto the same vector r_a inside head (a mod n_head), so a query carrying u_a
/// attends to earlier keys carrying v_a. Everything else maps to zero.
struct PlantedQK {
    let dModel: Int, geometry: AttentionGeometry, pairs: Int
    /// Unit query directions u_a and key directions v_a, `[pairs][d_model]`.
    var queryDirections: [[Float]] = [], keyDirections: [[Float]] = []
    /// W_Q `[d_model, n_head·d_head]`, W_K `[d_model, n_kv·d_head]`.
    var wQ: [Float] = [], wK: [Float] = []
    let presence: Float = 0.2

    init(dModel: Int = 24, geometry: AttentionGeometry = AttentionGeometry(nHead: 2, nKVHead: 2, dHead: 8, causal: true),
         pairs: Int = 4, strength: Float = 3, seed: UInt64 = 7) {
        self.dModel = dModel; self.geometry = geometry; self.pairs = pairs
        var rng = TrainingRandom(seed: seed)
        // 2·pairs orthonormal directions by Gram–Schmidt.
        var basis: [[Float]] = []
        while basis.count < 2 * pairs {
            var v = (0..<dModel).map { _ in rng.normal() }
            for b in basis { let d = zip(v, b).map(*).reduce(0, +); for i in 0..<dModel { v[i] -= d * b[i] } }
            let n = v.map { $0 * $0 }.reduce(0, +).squareRoot()
            if n > 1e-3 { basis.append(v.map { $0 / n }) }
        }
        queryDirections = Array(basis[0..<pairs]); keyDirections = Array(basis[pairs..<(2 * pairs)])
        wQ = [Float](repeating: 0, count: dModel * geometry.qWidth); wK = [Float](repeating: 0, count: dModel * geometry.kWidth)
        for a in 0..<pairs {
            let h = a % geometry.nHead, g = geometry.kvHead(of: h), slot = a / geometry.nHead
            // r_a = strength · e_slot inside head h's block: pairs sharing a head use orthogonal slots.
            for i in 0..<dModel {
                wQ[i * geometry.qWidth + h * geometry.dHead + slot] += queryDirections[a][i] * strength
                wK[i * geometry.kWidth + g * geometry.dHead + slot] += keyDirections[a][i] * strength
            }
        }
    }

    /// Captures of `sequences` sequences; also returns each token's strength of every query and
    /// key direction (0 when absent), `[tokens][pairs]`.
    func captures(sequences: Int, length: Int, seed: UInt64) -> (TrainingBatch, query: [[Float]], key: [[Float]]) {
        var rng = TrainingRandom(seed: seed)
        let n = sequences * length
        var x = [Float](repeating: 0, count: n * dModel)
        var qs = [[Float]](repeating: [Float](repeating: 0, count: pairs), count: n), ks = qs
        for t in 0..<n {
            for a in 0..<pairs {
                if rng.uniform() < presence { qs[t][a] = 0.5 + rng.uniform() }
                if rng.uniform() < presence { ks[t][a] = 0.5 + rng.uniform() }
                for i in 0..<dModel { x[t * dModel + i] += qs[t][a] * queryDirections[a][i] + ks[t][a] * keyDirections[a][i] }
            }
            for i in 0..<dModel { x[t * dModel + i] += 0.02 * rng.normal() }
        }
        func project(_ w: [Float], _ width: Int) -> [Float] {
            var out = [Float](repeating: 0, count: n * width)
            x.withUnsafeBufferPointer { xb in w.withUnsafeBufferPointer { wb in out.withUnsafeMutableBufferPointer { ob in
                BLAS.gemm(m: n, n: width, k: dModel, xb.baseAddress!, wb.baseAddress!, ob.baseAddress!)
            }}}
            return out
        }
        let q = project(wQ, geometry.qWidth), k = project(wK, geometry.kWidth)
        let p = Step1TestSupport.pattern(q: q, k: k, sequences: sequences, length: length, geometry: geometry)
        return (TrainingBatch(x: x, q: q, k: k, pattern: p, sequences: sequences, length: length, dModel: dModel), qs, ks)
    }

    /// The image of a direction through W (`u · W`).
    func image(_ u: [Float], _ w: [Float], width: Int) -> [Float] {
        (0..<width).map { c in (0..<dModel).reduce(Float(0)) { $0 + u[$1] * w[$1 * width + c] } }
    }
}
