import Foundation
import QKTensor
import QKModels

/// The step-2 objective on a RoPE model:
///
///     L(m) = mean over (sequence, head, query position) of KL(P ‖ softmax(score(m)))
///          + μ · Σ_entries sqrt(m + ε)
///
/// with the offset-exact scores of `RoPEPairMapKernel`. The mask is the same object as without
/// RoPE — one entry per co-firing (query feature, key feature, head), ordered as
/// `CooccurrenceIndex.entry` — but the pair weight is no longer one number, so the kernels read
/// the mask itself and the decoder rows instead of a table W = M·m.
public final class RoPEPairMapObjective {
    public let index: CooccurrenceIndex
    public let nHead: Int
    public let training: [PairMapSequence]
    let trainingPLogP: [Double]
    let threads: Int
    let decoders: RoPEDecoders
    private let kernels: [RoPEPairMapKernel]
    /// Per-thread ∂KL/∂m, `threads × entryCount`, allocated on first use.
    private var threadGrad: [Float] = []

    public var entryCount: Int { index.pairCount * nHead }

    public init(query: Transcoder, key: Transcoder, config: ModelConfig, training: [PairMapSequence],
                threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        guard !training.isEmpty else { throw PairMapError("pair map: no training sequences") }
        decoders = try RoPEDecoders(query: query, key: key, config: config)
        for (n, s) in training.enumerated() {
            try s.validate(index: n, queryWidth: query.dHidden, keyWidth: key.dHidden, nHead: config.nHead)
        }
        nHead = config.nHead
        index = CooccurrenceIndex(sequences: training, queryWidth: query.dHidden, keyWidth: key.dHidden, causal: true)
        self.training = training
        trainingPLogP = training.map { PairMapObjective.plogp($0) }
        self.threads = max(1, threads)
        let decoders = self.decoders
        kernels = (0..<self.threads).map { _ in RoPEPairMapKernel(decoders: decoders, keyWidth: key.dHidden) }
    }

    /// Mean KL over the rows of `batch`; with `gradient`, also ∂(mean KL)/∂m per entry.
    func meanKL(sequences: [PairMapSequence], batch: [Int], plogp: [Double]?, mask: [Float],
                gradient: Bool) -> (kl: Double, gradient: [Float]) {
        let rows = batch.reduce(0) { $0 + sequences[$1].length } * nHead
        guard rows > 0 else { return (0, gradient ? [Float](repeating: 0, count: entryCount) : []) }
        let n = entryCount, workers = min(threads, batch.count)
        if gradient && threadGrad.count != threads * n { threadGrad = [Float](repeating: 0, count: threads * n) }
        let scale = Float(1 / Double(rows))
        var partial = [Double](repeating: 0, count: workers)
        let blasThreads = BLAS.threads
        if workers > 1 { BLAS.setThreads(1) }
        defer { if workers > 1 { BLAS.setThreads(blasThreads) } }
        mask.withUnsafeBufferPointer { mp in
        threadGrad.withUnsafeMutableBufferPointer { gp in
        partial.withUnsafeMutableBufferPointer { part in
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var sum = 0.0, k = w
                let grad = gradient ? gp.baseAddress! + w * n : nil
                while k < batch.count {
                    let seq = sequences[batch[k]]
                    let entropy = plogp?[batch[k]] ?? PairMapObjective.plogp(seq)
                    sum += entropy
                    seq.pattern.data.withUnsafeBufferPointer { pat in
                        sum += kernels[w].run(query: seq.query, key: seq.key, index: index, mask: mp.baseAddress!,
                                              pattern: pat.baseAddress!, grad: grad, rowScale: scale)
                    }
                    k += workers
                }
                part[w] = sum
            }
        }}}
        guard gradient else { return (partial.reduce(0, +) / Double(rows), []) }
        var g = [Float](repeating: 0, count: n)
        for w in 0..<workers {
            for e in 0..<n { g[e] += threadGrad[w * n + e]; threadGrad[w * n + e] = 0 }
        }
        return (partial.reduce(0, +) / Double(rows), g)
    }

    /// KL of the map under `mask` over any sequences (e.g. a held-out sample).
    public func meanKL(mask: [Float], sequences: [PairMapSequence]) throws -> Double {
        guard mask.count == entryCount else {
            throw PairMapError("pair map: mask has \(mask.count) entries, the index has \(entryCount)")
        }
        for (n, s) in sequences.enumerated() {
            try s.validate(index: n, queryWidth: index.queryWidth, keyWidth: index.keyWidth, nHead: nHead)
        }
        return meanKL(sequences: sequences, batch: Array(sequences.indices), plogp: nil, mask: mask, gradient: false).kl
    }

    /// Loss and dL/dm for the training sequences in `batch`.
    public func lossAndGradient(mask: [Float], batch: [Int], penalty: Float, epsilon: Float) -> (loss: Double, kl: Double, gradient: [Float]) {
        var (kl, g) = meanKL(sequences: training, batch: batch, plogp: trainingPLogP, mask: mask, gradient: true)
        var pen = 0.0
        for e in 0..<g.count {
            let r = (mask[e] + epsilon).squareRoot()
            pen += Double(r)
            g[e] += penalty / (2 * r)
        }
        return (kl + Double(penalty) * pen, kl, g)
    }
}

/// Adam on the RoPE objective's mask, clamped to [0, 1] after every step; the same schedule,
/// options and progress reports as `MaskTrainer`.
public final class RoPEMaskTrainer {
    public let objective: RoPEPairMapObjective
    public let options: MaskTrainingOptions
    public private(set) var mask: [Float]
    private var moment1: [Float]
    private var moment2: [Float]
    private var adamStep = 0

    public init(objective: RoPEPairMapObjective, options: MaskTrainingOptions) throws {
        try options.validate()
        self.objective = objective; self.options = options
        mask = [Float](repeating: 1, count: objective.entryCount)
        moment1 = [Float](repeating: 0, count: objective.entryCount)
        moment2 = moment1
    }

    public func train(progress: ((MaskTrainingProgress) -> Void)? = nil) {
        let count = objective.training.count, per = options.batchSequences
        let steps = (count + per - 1) / per
        var rng = SplitMix64(seed: options.seed)
        var order = Array(0..<count)
        let b1: Float = 0.9, b2: Float = 0.999, eps: Float = 1e-8
        for epoch in 0..<options.epochs {
            for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            for step in 0..<steps {
                let batch = Array(order[(step * per)..<min(count, (step + 1) * per)])
                let (loss, kl, g) = objective.lossAndGradient(mask: mask, batch: batch, penalty: options.penalty, epsilon: options.epsilon)
                adamStep += 1
                let c1 = 1 / (1 - powf(b1, Float(adamStep))), c2 = 1 / (1 - powf(b2, Float(adamStep)))
                var below = 0
                for e in 0..<mask.count {
                    moment1[e] = b1 * moment1[e] + (1 - b1) * g[e]
                    moment2[e] = b2 * moment2[e] + (1 - b2) * g[e] * g[e]
                    let updated = mask[e] - options.learningRate * (moment1[e] * c1) / ((moment2[e] * c2).squareRoot() + eps)
                    mask[e] = min(1, max(0, updated))
                    if mask[e] < options.threshold { below += 1 }
                }
                progress?(MaskTrainingProgress(epoch: epoch + 1, epochs: options.epochs, step: step + 1, stepsPerEpoch: steps,
                                               loss: loss, kl: kl,
                                               fractionBelowThreshold: mask.isEmpty ? 0 : Double(below) / Double(mask.count)))
            }
        }
    }

    /// The trained mask with entries below the threshold set to exactly zero.
    public var prunedMask: [Float] { mask.map { $0 < options.threshold ? 0 : $0 } }
}
