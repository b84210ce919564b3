import Foundation
import QKTensor

/// The figures a step-1 run is judged by, on sequences it never trained on (issue 4 item 8).
public struct Step1Metrics: Sendable, Codable, Equatable {
    /// Pattern KL(P‖P̂), nats per query row: both reconstructed, q̂ with the true k, q with k̂.
    public var klFull: Double, klQOnly: Double, klKOnly: Double
    /// Baselines that give the KLs a scale: uniform attention over allowed positions, and the
    /// mean pattern of the held-out set (per head and position pair).
    public var baselineUniformKL: Double, baselineMeanPatternKL: Double
    /// Fraction of query rows whose reconstructed pattern puts its maximum on the true argmax.
    public var top1Agreement: Double
    public var l0Query: Double, l0Key: Double
    /// Features that fire at least once on the held-out set.
    public var liveQuery: Int, liveKey: Int
    public var explainedVarianceQ: Double, explainedVarianceK: Double
    public var heldOutTokens: Int
    /// Training throughput (0 when only evaluated).
    public var tokensPerSecond: Double
}

/// Held-out metrics plus per-feature firing counts (for densities and the SAELens sparsity file).
public struct Step1Evaluation: Sendable {
    public var metrics: Step1Metrics
    public var firingCountsQuery: [Int], firingCountsKey: [Int]
    public var tokens: Int
    /// log10 of the fraction of held-out tokens on which each feature fires (−10 for never).
    public var log10DensityQuery: [Float] { firingCountsQuery.map { Self.log10Density($0, tokens) } }
    public var log10DensityKey: [Float] { firingCountsKey.map { Self.log10Density($0, tokens) } }
    static func log10Density(_ c: Int, _ n: Int) -> Float { c > 0 && n > 0 ? Float(log10(Double(c) / Double(n))) : -10 }
}

public enum HeldOutEvaluator {
    /// Runs both transcoders over `sequences` in chunks of `chunk` and pools every figure.
    public static func evaluate(query: TranscoderParameters, key: TranscoderParameters,
                                activations: (query: TranscoderActivation, key: TranscoderActivation),
                                sequences: [TrainingBatch], geometry: AttentionGeometry,
                                weights: ObjectiveWeights = ObjectiveWeights(), keyFirstPosition: Int? = nil,
                                chunk: Int = 8, threads: Int = 2) -> Step1Evaluation {
        var countsQ = [Int](repeating: 0, count: query.dHidden), countsK = [Int](repeating: 0, count: key.dHidden)
        var klF = 0.0, klQ = 0.0, klK = 0.0, rows = 0.0, agree = 0, agreeRows = 0
        var sseQ = 0.0, sstQ = 0.0, sseK = 0.0, sstK = 0.0, nzQ = 0, nzK = 0, tokens = 0
        var start = 0
        while start < sequences.count {
            let part = TrainingBatch.stacking(Array(sequences[start..<min(sequences.count, start + chunk)]))
            start += chunk
            let r = Step1Objective.evaluate(query: query, key: key, activations: activations, batch: part,
                                            geometry: geometry, weights: weights, gradQ: nil, gradK: nil,
                                            keyFirstPosition: keyFirstPosition, threads: threads)
            let n = Double(part.sequences * geometry.nHead * part.length)
            klF += r.klFull * n; klQ += r.klQOnly * n; klK += r.klKOnly * n; rows += n
            agree += r.top1Agree; agreeRows += r.rows
            // SST is pooled per chunk around the chunk mean: close to the pooled variance for chunks of several sequences.
            sseQ += r.sseQ; sstQ += r.sstQ; sseK += r.sseK; sstK += r.sstK
            nzQ += r.codesQ.nonZeros; nzK += r.codesK.nonZeros; tokens += part.tokens
            for i in r.codesQ.indices { countsQ[Int(i)] += 1 }
            for i in r.codesK.indices { countsK[Int(i)] += 1 }
        }
        let base = baselines(sequences, geometry: geometry)
        let m = Step1Metrics(
            klFull: rows > 0 ? klF / rows : 0, klQOnly: rows > 0 ? klQ / rows : 0, klKOnly: rows > 0 ? klK / rows : 0,
            baselineUniformKL: base.uniform, baselineMeanPatternKL: base.mean,
            top1Agreement: agreeRows > 0 ? Double(agree) / Double(agreeRows) : 0,
            l0Query: tokens > 0 ? Double(nzQ) / Double(tokens) : 0, l0Key: tokens > 0 ? Double(nzK) / Double(tokens) : 0,
            liveQuery: countsQ.filter { $0 > 0 }.count, liveKey: countsK.filter { $0 > 0 }.count,
            explainedVarianceQ: sstQ > 0 ? 1 - sseQ / sstQ : 0, explainedVarianceK: sstK > 0 ? 1 - sseK / sstK : 0,
            heldOutTokens: tokens, tokensPerSecond: 0)
        return Step1Evaluation(metrics: m, firingCountsQuery: countsQ, firingCountsKey: countsK, tokens: tokens)
    }

    /// KL of the true patterns against uniform attention over the allowed keys, and against the
    /// mean pattern over these same sequences (nats per query row with any mass).
    public static func baselines(_ sequences: [TrainingBatch], geometry g: AttentionGeometry) -> (uniform: Double, mean: Double) {
        guard let first = sequences.first else { return (0, 0) }
        let t = first.length, per = g.nHead * t * t
        var mean = [Double](repeating: 0, count: per)
        for s in sequences { for i in 0..<per { mean[i] += Double(s.pattern[i]) } }
        for i in 0..<per { mean[i] /= Double(sequences.count) }
        var uni = 0.0, mk = 0.0, rows = 0
        for s in sequences {
            for h in 0..<g.nHead {
                for i in 0..<t {
                    let allowed = g.causal ? i + 1 : t
                    let row = h * t * t + i * t
                    var ent = 0.0, rs = 0.0, cross = 0.0
                    for j in 0..<t where s.pattern[row + j] > 0 {
                        let p = Double(s.pattern[row + j])
                        ent += p * log(p); rs += p; cross += p * log(max(mean[row + j], 1e-30))
                    }
                    guard rs > 0 else { continue }
                    uni += ent + rs * log(Double(allowed)); mk += ent - cross; rows += 1
                }
            }
        }
        return rows > 0 ? (uni / Double(rows), mk / Double(rows)) : (0, 0)
    }
}
