import Foundation
import QKTensor
import QKModels

/// The bilinear QK map restricted to co-firing pairs, read off the two decoders.
///
///     M[i,j,h] = <W_decQ[i, head h], W_decK[j, kv head g(h)]> / sqrt(d_head)
///     B[h,j]   = <b_decQ[head h],    W_decK[j, kv head g(h)]> / sqrt(d_head)
///
/// The score of head h from query position p to key position s is
/// Σ_ij aQ_i(p) aK_j(s) M[i,j,h] m[i,j,h] + Σ_j B[h,j] aK_j(s); the query-feature × key-bias and
/// bias × bias terms are constant along s and cancel in the softmax, so they are never formed.
public struct PairMapWeights: Sendable {
    public let nHead: Int
    /// `M` per mask entry (see `CooccurrenceIndex.entry(pair:head:heads:)`).
    public let pairValue: [Float]
    /// `B` as `[key feature, head]` (heads innermost, like the entries). Settable so that the
    /// decoder fit's pair-map term (`PairMapFitTerm`) can follow decoders that move.
    public internal(set) var keyBias: [Float]

    public init(query: Transcoder, key: Transcoder, config: ModelConfig, index: CooccurrenceIndex) throws {
        try self.init(query: query, key: key, geometry: AttentionGeometry(config: config), index: index)
    }

    public init(query: Transcoder, key: Transcoder, geometry config: AttentionGeometry, index: CooccurrenceIndex) throws {
        let h = config.nHead, dh = config.dHead
        guard config.nKVHead > 0, h % config.nKVHead == 0 else {
            throw PairMapError("pair map: \(h) heads cannot be grouped over \(config.nKVHead) key/value heads")
        }
        guard query.dOut == h * dh else {
            throw PairMapError("pair map: query decoder writes \(query.dOut) values, the model's q has \(h)×\(dh)")
        }
        guard key.dOut == config.nKVHead * dh else {
            throw PairMapError("pair map: key decoder writes \(key.dOut) values, the model's k has \(config.nKVHead)×\(dh)")
        }
        guard query.dHidden == index.queryWidth, key.dHidden == index.keyWidth else {
            throw PairMapError("pair map: index built for \(index.queryWidth)×\(index.keyWidth) features, transcoders have \(query.dHidden)×\(key.dHidden)")
        }
        nHead = h
        let scale = 1 / Float(dh).squareRoot()
        let kvOf = (0..<h).map { config.kvHead(of: $0) }
        let qOut = query.dOut, kOut = key.dOut
        var values = [Float](repeating: 0, count: index.pairCount * h)
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))
        query.wDec.data.withUnsafeBufferPointer { wq in
            key.wDec.data.withUnsafeBufferPointer { wk in
                values.withUnsafeMutableBufferPointer { out in
                    let wq = wq.baseAddress!, wk = wk.baseAddress!, out = out.baseAddress!
                    DispatchQueue.concurrentPerform(iterations: workers) { w in
                        var i = w
                        while i < index.queryWidth {
                            for pair in index.pairStart[i]..<index.pairStart[i + 1] {
                                let j = Int(index.pairKey[pair])
                                for head in 0..<h {
                                    out[index.entry(pair: pair, head: head, heads: h)] = PairMapWeights.entryValue(
                                        wq + i * qOut + head * dh, wk + j * kOut + kvOf[head] * dh, dHead: dh, scale: scale)
                                }
                            }
                            i += workers
                        }
                    }
                }
            }
        }
        pairValue = values
        keyBias = PairMapWeights.keyBias(queryBias: query.bDec.data, keyDecoder: key.wDec.data, keyWidth: index.keyWidth,
                                         geometry: config)
    }

    /// One entry's M: `a` is query decoder row i's head-h block, `b` key decoder row j's block of
    /// kv head g(h), `scale` = 1/sqrt(d_head).
    @inline(__always)
    static func entryValue(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dHead: Int, scale: Float) -> Float {
        var s: Float = 0
        for d in 0..<dHead { s += a[d] * b[d] }
        return s * scale
    }

    /// `B[j, h]` for every key feature, `[key feature, head]`, from b_decQ and W_decK (`[d_key, kv heads·d_head]`).
    static func keyBias(queryBias: [Float], keyDecoder: [Float], keyWidth: Int, geometry g: AttentionGeometry) -> [Float] {
        let h = g.nHead, dh = g.dHead, kOut = g.kWidth
        let scale = 1 / Float(dh).squareRoot()
        var bias = [Float](repeating: 0, count: keyWidth * h)
        for j in 0..<keyWidth {
            for head in 0..<h {
                let kv = g.kvHead(of: head)
                var s: Float = 0
                for d in 0..<dh { s += queryBias[head * dh + d] * keyDecoder[j * kOut + kv * dh + d] }
                bias[j * h + head] = s * scale
            }
        }
        return bias
    }
}
