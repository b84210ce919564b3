import Foundation
import QKTensor
import QKModels
import QKTrain

/// Attention scores from a (pruned) pair map and the two transcoders' sparse codes (DESIGN §5):
///
///     score_h(p,s) = Σ_ij aQ_i(p) aK_j(s) W[i,j,h] + Σ_j B[h,j] aK_j(s)
///
/// where W = M·m is the stored pair value and B the query-bias × key-feature term. This is what
/// evaluation patches in as "the pruned map's pattern", and what `explain` splits into its terms.
///
/// The map is held per head as CSR over query features, so one query position costs
/// Σ_{i active} (pairs of i) to fold into a dense key-feature vector u, after which every key
/// position costs only its own ~20 active features: score(p,s) = Σ_{j∈aK(s)} aK_j(s)·(u_j + B_j).
public struct PairMapScorer: Sendable {
    public let nHead: Int
    public let dQuery: Int
    public let dKey: Int
    /// Per head: CSR row starts over query features (dQuery + 1 entries).
    let rowStart: [[Int]]
    let keyFeature: [[Int32]]
    let value: [[Float]]
    /// `[n_head, dKey]`.
    public let keyBias: [Float]

    /// Builds the scorer from COO pairs (any order).
    public init(nHead: Int, dQuery: Int, dKey: Int, head: [Int32], queryFeature: [Int32], keyFeature kf: [Int32],
                value v: [Float], keyBias: [Float]) throws {
        guard head.count == queryFeature.count, head.count == kf.count, head.count == v.count else {
            throw ModelError("pair map: COO columns differ in length")
        }
        guard keyBias.count == nHead * dKey else {
            throw ModelError("pair map: key bias has \(keyBias.count) values, expected \(nHead)×\(dKey)")
        }
        self.nHead = nHead; self.dQuery = dQuery; self.dKey = dKey; self.keyBias = keyBias
        var counts = [[Int]](repeating: [Int](repeating: 0, count: dQuery + 1), count: nHead)
        for e in 0..<head.count {
            let h = Int(head[e]), i = Int(queryFeature[e]), j = Int(kf[e])
            guard h >= 0, h < nHead, i >= 0, i < dQuery, j >= 0, j < dKey else {
                throw ModelError("pair map: pair (head \(h), query \(i), key \(j)) is outside [\(nHead), \(dQuery), \(dKey)]")
            }
            counts[h][i + 1] += 1
        }
        for h in 0..<nHead { for i in 0..<dQuery { counts[h][i + 1] += counts[h][i] } }
        var fill = counts
        var keys = (0..<nHead).map { [Int32](repeating: 0, count: counts[$0][dQuery]) }
        var vals = (0..<nHead).map { [Float](repeating: 0, count: counts[$0][dQuery]) }
        for e in 0..<head.count {
            let h = Int(head[e]), i = Int(queryFeature[e])
            let slot = fill[h][i]; fill[h][i] += 1
            keys[h][slot] = kf[e]; vals[h][slot] = v[e]
        }
        rowStart = counts; keyFeature = keys; value = vals
    }

    /// Number of stored pairs on head h.
    public func pairCount(head h: Int) -> Int { rowStart[h][dQuery] }

    /// The pairs of query feature i on head h.
    public func pairs(head h: Int, queryFeature i: Int) -> (keys: ArraySlice<Int32>, values: ArraySlice<Float>) {
        let r = rowStart[h][i]..<rowStart[h][i + 1]
        return (keyFeature[h][r], value[h][r])
    }

    /// Scores `[n_head, t, t]` for one sequence; disallowed (future, on causal models) keys get -inf.
    public func scores(query aQ: SparseActivations, key aK: SparseActivations, causal: Bool) -> Tensor {
        let t = aQ.rows
        var out = Tensor(zeros: [nHead, t, t])
        var u = [Float](repeating: 0, count: dKey)
        out.data.withUnsafeMutableBufferPointer { o in
            u.withUnsafeMutableBufferPointer { ub in
                for h in 0..<nHead {
                    let bias = keyBias[(h * dKey)..<((h + 1) * dKey)]
                    let starts = rowStart[h], keys = keyFeature[h], vals = value[h]
                    for p in 0..<t {
                        // u = Σ_i aQ_i(p) W[i, ·, h]  (sparse fold), then + B[h, ·]
                        var touched: [Int32] = []
                        for e in aQ.rowStart[p]..<aQ.rowStart[p + 1] {
                            let i = Int(aQ.indices[e]), a = aQ.values[e]
                            for k in starts[i]..<starts[i + 1] {
                                let j = Int(keys[k])
                                if ub[j] == 0 { touched.append(keys[k]) }
                                ub[j] += a * vals[k]
                            }
                        }
                        let row = o.baseAddress! + (h * t + p) * t
                        let last = causal ? p : t - 1
                        for s in 0...last {
                            var acc: Float = 0
                            for e in aK.rowStart[s]..<aK.rowStart[s + 1] {
                                let j = Int(aK.indices[e])
                                acc += aK.values[e] * (ub[j] + bias[bias.startIndex + j])
                            }
                            row[s] = acc
                        }
                        if last + 1 < t { for s in (last + 1)..<t { row[s] = -.infinity } }
                        for j in touched { ub[Int(j)] = 0 }
                    }
                }
            }
        }
        return out
    }

    /// The attention pattern of one sequence: softmax over allowed keys of `scores`.
    public func pattern(query aQ: SparseActivations, key aK: SparseActivations, causal: Bool) -> Tensor {
        var s = scores(query: aQ, key: aK, causal: causal)
        let t = aQ.rows
        s.data.withUnsafeMutableBufferPointer { Ops.softmaxRows($0.baseAddress!, rows: nHead * t, n: t) }
        return s
    }
}
