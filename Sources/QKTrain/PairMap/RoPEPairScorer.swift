import Foundation
import QKTensor
import QKModels

extension CooccurrenceIndex {
    /// An index holding exactly the given (query feature, key feature) pairs (any order,
    /// duplicates allowed), e.g. the surviving pairs of a stored map.
    init(pairs: [(query: Int32, key: Int32)], queryWidth: Int, keyWidth: Int) {
        let sorted = Array(Set(pairs.map { Int64($0.query) << 32 | Int64($0.key) })).sorted()
        var start = [Int](repeating: 0, count: queryWidth + 1)
        var keys = [Int32](), queries = [Int32]()
        for code in sorted {
            let i = Int32(code >> 32), j = Int32(truncatingIfNeeded: code)
            keys.append(j); queries.append(i); start[Int(i) + 1] += 1
        }
        for i in 0..<queryWidth { start[i + 1] += start[i] }
        self.queryWidth = queryWidth; self.keyWidth = keyWidth
        pairStart = start; pairKey = keys; pairQuery = queries
        liveQuery = Set(queries).count; liveKey = Set(keys).count
    }
}

/// Attention scores of a (pruned) pair map on a RoPE model, exact at every offset: the masked
/// feature × feature term plus the three bias terms (see `RoPEPairMapKernel`). Built from the two
/// decoders, θ and the stored pairs with their masks — what evaluation patches in as the pruned
/// map's pattern.
public final class RoPEPairScorer {
    public let nHead: Int
    let index: CooccurrenceIndex
    let mask: [Float]
    private let kernel: RoPEPairMapKernel

    /// `head`, `queryFeature`, `keyFeature`, `mask`: the surviving pairs (COO, any order).
    public init(query: Transcoder, key: Transcoder, config: ModelConfig,
                head: [Int32], queryFeature: [Int32], keyFeature: [Int32], mask m: [Float]) throws {
        guard head.count == queryFeature.count, head.count == keyFeature.count, head.count == m.count else {
            throw PairMapError("pair map: COO columns differ in length")
        }
        let decoders = try RoPEDecoders(query: query, key: key, config: config)
        let h = config.nHead
        for e in 0..<head.count {
            guard head[e] >= 0, Int(head[e]) < h, queryFeature[e] >= 0, Int(queryFeature[e]) < query.dHidden,
                  keyFeature[e] >= 0, Int(keyFeature[e]) < key.dHidden else {
                throw PairMapError("pair map: pair (head \(head[e]), query \(queryFeature[e]), key \(keyFeature[e])) is outside [\(h), \(query.dHidden), \(key.dHidden)]")
            }
        }
        nHead = h
        index = CooccurrenceIndex(pairs: (0..<head.count).map { (queryFeature[$0], keyFeature[$0]) },
                                  queryWidth: query.dHidden, keyWidth: key.dHidden)
        var entries = [Float](repeating: 0, count: index.pairCount * h)
        for e in 0..<head.count {
            if let pair = index.pair(query: Int(queryFeature[e]), key: Int(keyFeature[e])) {
                entries[index.entry(pair: pair, head: Int(head[e]), heads: h)] = m[e]
            }
        }
        mask = entries
        kernel = RoPEPairMapKernel(decoders: decoders, keyWidth: key.dHidden)
    }

    /// Scores `[n_head, t, t]` of one sequence, -inf on future keys. Not thread-safe (one kernel).
    public func scores(query aQ: SparseActivations, key aK: SparseActivations) throws -> Tensor {
        guard aQ.rows == aK.rows, aQ.width == index.queryWidth, aK.width == index.keyWidth else {
            throw PairMapError("pair map: codes (\(aQ.rows)×\(aQ.width), \(aK.rows)×\(aK.width)) do not fit the scorer's \(index.queryWidth)/\(index.keyWidth) features")
        }
        let t = aQ.rows
        var out = Tensor(zeros: [nHead, t, t])
        mask.withUnsafeBufferPointer { m in
            out.data.withUnsafeMutableBufferPointer { o in
                _ = kernel.run(query: aQ, key: aK, index: index, mask: m.baseAddress!, pattern: nil, grad: nil,
                               rowScale: 0, scoresOut: o.baseAddress!)
            }
        }
        return out
    }

    /// The pattern of one sequence: softmax over allowed keys of `scores`.
    public func pattern(query aQ: SparseActivations, key aK: SparseActivations) throws -> Tensor {
        var s = try scores(query: aQ, key: aK)
        let t = aQ.rows
        s.data.withUnsafeMutableBufferPointer { Ops.softmaxRows($0.baseAddress!, rows: nHead * t, n: t) }
        return s
    }
}
