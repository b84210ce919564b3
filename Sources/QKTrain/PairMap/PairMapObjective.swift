import Foundation
import QKTensor
import QKModels

/// The step-2 objective over a fixed set of training sequences:
///
///     L(m) = mean over (sequence, head, query position) of KL(P ‖ softmax(score(m)))
///          + μ · Σ_entries sqrt(m + ε)
///
/// It owns the co-occurrence index and M (both built once from the training data and the
/// decoders) and one kernel per worker thread; batches are split across the workers, each with
/// its own gradient buffer, and the buffers are summed where the optimiser reads them.
public final class PairMapObjective {
    public let index: CooccurrenceIndex
    public let weights: PairMapWeights
    public let nHead: Int
    public let causal: Bool
    public let training: [PairMapSequence]
    /// Σ P log P per training sequence (the mask-independent half of the KL).
    let trainingPLogP: [Double]
    let threads: Int
    private let kernels: [PairMapKernel]
    /// Per-thread dL/dW accumulators, `threads × entries`.
    var threadGrad: [Float]

    public var entryCount: Int { index.pairCount * nHead }

    public init(query: Transcoder, key: Transcoder, config: ModelConfig, training: [PairMapSequence],
                threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        guard !training.isEmpty else { throw PairMapError("pair map: no training sequences") }
        for (n, s) in training.enumerated() {
            try s.validate(index: n, queryWidth: query.dHidden, keyWidth: key.dHidden, nHead: config.nHead)
        }
        causal = config.architecture.isCausal
        nHead = config.nHead
        index = CooccurrenceIndex(sequences: training, queryWidth: query.dHidden, keyWidth: key.dHidden, causal: causal)
        weights = try PairMapWeights(query: query, key: key, config: config, index: index)
        self.training = training
        trainingPLogP = training.map { PairMapObjective.plogp($0) }
        self.threads = max(1, threads)
        kernels = (0..<self.threads).map { _ in
            PairMapKernel(queryWidth: query.dHidden, keyWidth: key.dHidden, nHead: config.nHead, causal: config.architecture.isCausal)
        }
        threadGrad = []
    }

    /// Mean KL over the (sequence, head, query position) rows of `batch` (indices into
    /// `sequences`) under the effective map `w` = M·m per entry. With `accumulateGradient`,
    /// leaves dKL/dW in the per-thread buffers (read them with `sumGradient`).
    func meanKL(w: [Float], sequences: [PairMapSequence], batch: [Int], plogp: [Double]?, accumulateGradient: Bool) -> Double {
        let rows = batch.reduce(0) { $0 + sequences[$1].length } * nHead
        guard rows > 0 else { return 0 }
        let scale = Float(1 / Double(rows))
        let entries = entryCount
        if accumulateGradient && threadGrad.count != threads * entries {
            threadGrad = [Float](repeating: 0, count: threads * entries)
        }
        var partial = [Double](repeating: 0, count: threads)
        let workers = min(threads, batch.count)
        // Each worker runs its own single-threaded BLAS calls; restore the caller's setting after.
        let blasThreads = BLAS.threads
        if workers > 1 { BLAS.setThreads(1) }
        defer { if workers > 1 { BLAS.setThreads(blasThreads) } }
        w.withUnsafeBufferPointer { wp in
        weights.keyBias.withUnsafeBufferPointer { kb in
        threadGrad.withUnsafeMutableBufferPointer { gp in
        partial.withUnsafeMutableBufferPointer { part in
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var sum = 0.0
                var n = worker
                while n < batch.count {
                    let seq = sequences[batch[n]]
                    let entropy = plogp?[batch[n]] ?? PairMapObjective.plogp(seq)
                    sum += kernels[worker].run(seq, index: index, w: wp.baseAddress!, keyBiasTable: kb.baseAddress!,
                                               plogp: entropy,
                                               grad: accumulateGradient ? gp.baseAddress! + worker * entries : nil,
                                               rowScale: scale)
                    n += workers
                }
                part[worker] = sum
            }
        }}}}
        return partial.reduce(0, +) / Double(rows)
    }

    /// The effective map W = M·m.
    func effective(mask: [Float]) -> [Float] {
        var w = weights.pairValue
        for e in 0..<w.count { w[e] *= mask[e] }
        return w
    }

    /// KL of the map under `mask` (entries absent from the index count as zero) over any
    /// sequences, e.g. a held-out sample. The mask-independent Σ P log P is computed here.
    public func meanKL(mask: [Float], sequences: [PairMapSequence]) throws -> Double {
        guard mask.count == entryCount else {
            throw PairMapError("pair map: mask has \(mask.count) entries, the index has \(entryCount)")
        }
        for (n, s) in sequences.enumerated() {
            try s.validate(index: n, queryWidth: index.queryWidth, keyWidth: index.keyWidth, nHead: nHead)
        }
        return meanKL(w: effective(mask: mask), sequences: sequences, batch: Array(sequences.indices), plogp: nil,
                      accumulateGradient: false)
    }

    /// Loss and dL/dm for the training sequences in `batch` (for tests and gradient checks; the
    /// trainer fuses the same gradient into its Adam step instead).
    public func lossAndGradient(mask: [Float], batch: [Int], penalty: Float, epsilon: Float) -> (loss: Double, kl: Double, gradient: [Float]) {
        let kl = meanKL(w: effective(mask: mask), sequences: training, batch: batch, plogp: trainingPLogP, accumulateGradient: true)
        var g = sumGradient()
        var pen = 0.0
        for e in 0..<g.count {
            let r = (mask[e] + epsilon).squareRoot()
            pen += Double(r)
            g[e] = g[e] * weights.pairValue[e] + penalty / (2 * r)
        }
        return (kl + Double(penalty) * pen, kl, g)
    }

    /// Sums (and clears) the per-thread dKL/dW buffers.
    func sumGradient() -> [Float] {
        let entries = entryCount
        var g = [Float](repeating: 0, count: entries)
        for t in 0..<threads {
            for e in 0..<entries { g[e] += threadGrad[t * entries + e]; threadGrad[t * entries + e] = 0 }
        }
        return g
    }

    /// Σ_{head, p, s} P log P of a sequence's true pattern.
    static func plogp(_ seq: PairMapSequence) -> Double {
        var s = 0.0
        for v in seq.pattern.data where v > 0 { s += Double(v) * log(Double(v)) }
        return s
    }
}

