import Foundation
import QKTensor
import QKModels
import QKTrain

/// Explains one prompt's attention at the run's layer: runs the model, encodes the attention
/// input with both transcoders and splits each score into feature-pair terms.
///
/// Pair values are recomputed from the decoder rows rather than read from the stored map, so the
/// split is exact for every co-active pair (including pairs step 2 pruned) and on RoPE models:
/// there the rows are rotated to p and s before the dot product, which makes the value depend on
/// the offset p − s as the model's own score does. The pruned map (with its B term) is scored
/// separately, exactly as evaluation patches it in.
public struct Explainer: Sendable {
    public let model: any TransformerModel
    public let layer: Int
    public let query: Transcoder
    public let key: Transcoder
    public let scorer: PairMapScorer?

    public init(model: any TransformerModel, layer: Int, query: Transcoder, key: Transcoder, scorer: PairMapScorer?) throws {
        let c = model.config
        guard query.dOut == c.nHead * c.dHead, key.dOut == c.nKVHead * c.dHead else {
            throw PipelineError("transcoders write \(query.dOut)/\(key.dOut) values; layer \(layer) of \(model.source) has q \(c.nHead)×\(c.dHead), k \(c.nKVHead)×\(c.dHead)")
        }
        self.model = model; self.layer = layer; self.query = query; self.key = key; self.scorer = scorer
    }

    /// The model's input for a prompt: the same start/end tokens the run's sequences have.
    /// Refuses an empty or whitespace-only prompt (it would explain nothing but [CLS]/[SEP] or
    /// BOS) and a model folder without its tokenizer files (naming them), each in one line.
    public func tokens(for text: String, bos: Bool) throws -> [Int32] {
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw PipelineError("--text is empty: give the prompt to explain")
        }
        let c = model.config
        let tokenizer = try model.requireTokenizer()
        let rule = PackingRule.forModel(c, tokenizer: tokenizer, context: Int.max, bos: bos)
        return rule.single(tokenizer.encode(text), architecture: c.architecture)
    }

    /// Explains head `head` from destination `dest` to every allowed source.
    public func explain(tokens: [Int32], head: Int, dest: Int) throws -> PromptExplanation {
        let c = model.config, t = tokens.count
        guard t > 0 else { throw PipelineError("explain: the prompt has no tokens") }
        guard head >= 0, head < c.nHead else { throw PipelineError("explain: head \(head) is out of range (the model has \(c.nHead) heads)") }
        guard dest >= 0, dest < t else { throw PipelineError("explain: destination position \(dest) is outside the prompt's \(t) tokens") }
        guard t <= c.maxPositions else { throw PipelineError("explain: the prompt has \(t) tokens, the model allows \(c.maxPositions)") }
        let capture = try model.capture(TokenBatch(sequences: [tokens]), layer: layer)
        let d = capture.attnIn.shape[2]
        let x = capture.attnIn.reshaped([t, d])
        let aQ = query.encode(x, sequenceLength: t), aK = key.encode(x, sequenceLength: t)
        let dh = c.dHead, g = c.kvHead(of: head)
        let scale = 1 / Float(dh).squareRoot()
        let causal = c.architecture.isCausal
        let sources = 0..<(causal ? dest + 1 : t)
        let rope = c.ropeTheta.map { RoPE(dHead: dh, theta: $0) }
        let tables = rope?.tables(positions: t)

        // The destination's query side: rotated decoder rows of its active features and the bias.
        func rotated(_ v: [Float], at pos: Int) -> [Float] {
            guard let rope, let tables else { return v }
            var out = v
            out.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, positions: 1, heads: 1, positionOffset: pos, tables: tables) }
            return out
        }
        func slice(_ w: Tensor, row: Int, offset: Int) -> [Float] {
            let width = w.shape[w.shape.count - 1]
            return Array(w.data[(row * width + offset)..<(row * width + offset + dh)])
        }
        let qRow = aQ.row(dest)
        let qFeatures = Array(qRow.indices), qActs = Array(qRow.values)
        let qVectors = qFeatures.map { rotated(slice(query.wDec, row: Int($0), offset: head * dh), at: dest) }
        let qBias = rotated(Array(query.bDec.data[(head * dh)..<((head + 1) * dh)]), at: dest)
        // The pruned map's row of each active query feature, as key feature → stored value.
        let stored: [[Int32: Float]] = qFeatures.map { i in
            guard let scorer else { return [:] }
            let row = scorer.pairs(head: head, queryFeature: Int(i))
            return Dictionary(zip(row.keys, row.values), uniquingKeysWith: { a, _ in a })
        }
        var qHat = qBias
        for (n, v) in qVectors.enumerated() { for e in 0..<dh { qHat[e] += qActs[n] * v[e] } }

        // True scores from the model's own q and k (RoPE applied, as the model does).
        let qTrue = rotated(Array(capture.q.data[((dest * c.nHead + head) * dh)..<((dest * c.nHead + head + 1) * dh)]), at: dest)

        var prunedRow: [Float] = []
        if let scorer {
            let s = scorer.scores(query: aQ, key: aK, causal: causal)
            prunedRow = Array(s.data[((head * t + dest) * t)..<((head * t + dest + 1) * t)])
        }
        var explanations: [ScoreExplanation] = []
        for s in sources {
            let kTrue = rotated(Array(capture.k.data[((s * c.nKVHead + g) * dh)..<((s * c.nKVHead + g + 1) * dh)]), at: s)
            let kBias = rotated(Array(key.bDec.data[(g * dh)..<((g + 1) * dh)]), at: s)
            let kRow = aK.row(s)
            var pairs: [PairContribution] = []
            var keyBiasTerm: Float = 0
            var kHat = kBias
            for (j, b) in zip(kRow.indices, kRow.values) {
                let kv = rotated(slice(key.wDec, row: Int(j), offset: g * dh), at: s)
                for e in 0..<dh { kHat[e] += b * kv[e] }
                keyBiasTerm += b * dot(qBias, kv) * scale
                for (n, i) in qFeatures.enumerated() {
                    let v = qActs[n] * b * dot(qVectors[n], kv) * scale
                    pairs.append(PairContribution(queryFeature: Int(i), keyFeature: Int(j), queryActivation: qActs[n], keyActivation: b,
                                                  contribution: v, storedValue: stored[n][j]))
                }
            }
            pairs.sort { (abs($0.contribution), -$0.queryFeature, -$0.keyFeature) > (abs($1.contribution), -$1.queryFeature, -$1.keyFeature) }
            explanations.append(ScoreExplanation(dest: dest, src: s, trueScore: dot(qTrue, kTrue) * scale,
                                                 reconstructedScore: dot(qHat, kHat) * scale,
                                                 prunedScore: prunedRow.isEmpty ? .nan : prunedRow[s],
                                                 keyBias: keyBiasTerm, rowConstant: dot(qHat, kBias) * scale, pairs: pairs))
        }
        let truePattern = Array(capture.pattern.data[((head * t + dest) * t)..<((head * t + dest + 1) * t)])
        var recon = [Float](repeating: 0, count: t), pruned = [Float](repeating: 0, count: t)
        for e in explanations { recon[e.src] = e.reconstructedScore; pruned[e.src] = prunedRow.isEmpty ? 0 : e.prunedScore }
        Explainer.softmax(&recon, allowed: sources)
        if prunedRow.isEmpty { pruned = [] } else { Explainer.softmax(&pruned, allowed: sources) }
        let vocab = model.tokenizer
        return PromptExplanation(tokens: tokens, tokenText: tokens.map { vocab.tokenString($0) }, head: head, dest: dest,
                                 sources: sources, truePattern: truePattern, reconstructedPattern: recon,
                                 prunedPattern: pruned, scores: explanations)
    }

    /// Softmax over `allowed`; other entries become 0.
    static func softmax(_ row: inout [Float], allowed: Range<Int>) {
        let m = allowed.map { row[$0] }.max() ?? 0
        var z: Float = 0
        for s in row.indices {
            if allowed.contains(s) { row[s] = expf(row[s] - m); z += row[s] } else { row[s] = 0 }
        }
        if z > 0 { for s in allowed { row[s] /= z } }
    }
}

@inline(__always) func dot(_ a: [Float], _ b: [Float]) -> Float {
    var s: Float = 0
    for e in 0..<min(a.count, b.count) { s += a[e] * b[e] }
    return s
}
