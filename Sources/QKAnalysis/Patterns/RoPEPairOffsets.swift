import Foundation
import QKTensor
import QKModels
import QKTrain
import QKStore

/// A RoPE run's pair weights at any offset Δ = p − s, recomputed exactly from what the store
/// keeps: the two decoders (`query.W_dec`, `key.W_dec`), θ (`rope.theta`), the head geometry of
/// the run and each pair's mask. M_h(Δ)·m is `RoPEPairProfile` of the pair's decoder rows, so
/// nothing per offset needs storing.
public struct RoPEPairOffsets {
    public let nHead: Int
    public let nKVHead: Int
    public let dHead: Int
    let rope: RoPE
    let queryDecoder: (shape: [Int], values: [Float])
    let keyDecoder: (shape: [Int], values: [Float])

    /// Whether the run was trained on a RoPE model (it then carries `rope.theta`).
    public static func isRoPE(store: Store, run: Int64) throws -> Bool {
        try store.tensorNames(run: run).contains("rope.theta")
    }

    /// θ of a RoPE run, as step 2 stored it (`rope.theta`); nil for runs without RoPE or not yet masked.
    public static func theta(store: Store, run: Int64) throws -> Float? {
        guard try isRoPE(store: store, run: run) else { return nil }
        let theta = try store.tensor(run: run, name: "rope.theta")
        guard theta.values.count == 1, let t = theta.values.first, t.isFinite, t > 0 else {
            throw PipelineError("run \(run) in \(store.path): tensor rope.theta must hold one positive θ")
        }
        return t
    }

    public init(store: Store, run: Int64) throws {
        let info = try store.run(run)
        guard let t = try Self.theta(store: store, run: run) else {
            throw PipelineError("run \(run) in \(store.path): no tensor rope.theta (not a RoPE run, or not masked yet)")
        }
        let q = try store.tensor(run: run, name: "query.W_dec"), k = try store.tensor(run: run, name: "key.W_dec")
        let h = info.spec.nHead, g = info.spec.nKVHead ?? h
        guard q.shape.count == 2, k.shape.count == 2, h > 0, g > 0, h % g == 0, q.shape[1] % h == 0 else {
            throw PipelineError("run \(run) in \(store.path): decoders \(q.shape), \(k.shape) do not fit \(h) heads over \(g) key/value heads")
        }
        let dh = info.spec.dHead ?? q.shape[1] / h
        guard dh > 0, dh % 2 == 0, q.shape[1] == h * dh, k.shape[1] == g * dh,
              q.shape[0] == info.spec.dQuery, k.shape[0] == info.spec.dKey else {
            throw PipelineError("run \(run) in \(store.path): decoders \(q.shape), \(k.shape) do not fit \(h)/\(g) heads of \(dh) and \(info.spec.dQuery)/\(info.spec.dKey) features")
        }
        nHead = h; nKVHead = g; dHead = dh
        rope = RoPE(dHead: dh, theta: t)
        queryDecoder = q; keyDecoder = k
    }

    /// The pair's offset profile M_h(·) (unmasked).
    public func profile(head: Int, queryFeature i: Int, keyFeature j: Int) throws -> RoPEPairProfile {
        guard head >= 0, head < nHead, i >= 0, i < queryDecoder.shape[0], j >= 0, j < keyDecoder.shape[0] else {
            throw PipelineError("pair (head \(head), query \(i), key \(j)) is outside the run's \(nHead) heads, \(queryDecoder.shape[0]) query and \(keyDecoder.shape[0]) key features")
        }
        let g = head / (nHead / nKVHead)
        return queryDecoder.values.withUnsafeBufferPointer { u in
            keyDecoder.values.withUnsafeBufferPointer { v in
                RoPEPairProfile(query: u.baseAddress! + i * nHead * dHead + head * dHead,
                                key: v.baseAddress! + j * nKVHead * dHead + g * dHead, rope: rope)
            }
        }
    }

    /// M_h(Δ)·m of a stored pair.
    public func value(_ row: PairRow, offset: Int) throws -> Float {
        try profile(head: row.head, queryFeature: row.queryFeature, keyFeature: row.keyFeature).value(offset: offset) * (row.mask ?? 1)
    }

    /// Pairs ranked per head by their weight at `offset` (by |value| unless `signed`), `top` per
    /// head (0 = all), heads in order; each with its value there.
    public func ranked(_ rows: [PairRow], offset: Int, top: Int, signed: Bool, ascending: Bool) throws -> [(row: PairRow, value: Float)] {
        let scored = try rows.map { ($0, try value($0, offset: offset)) }
        var out: [(row: PairRow, value: Float)] = []
        for h in Set(rows.map(\.head)).sorted() {
            let key: ((row: PairRow, value: Float)) -> Float = { signed ? $0.value : abs($0.value) }
            var group = scored.filter { $0.0.head == h }.map { (row: $0.0, value: $0.1) }
            group.sort { a, b in
                let x = key(a), y = key(b)
                if x != y { return ascending ? x < y : x > y }
                return (a.row.queryFeature, a.row.keyFeature) < (b.row.queryFeature, b.row.keyFeature)
            }
            out += top > 0 ? Array(group.prefix(top)) : group
        }
        return out
    }
}
