import Foundation
import QKTensor
import QKModels
import CPairMap

/// Settings of step 2. The defaults were chosen on MiniLM layer 2 (1536-feature dictionaries,
/// 128-token sequences, ~600 training sequences); see the README's `mask` section for why.
public struct MaskTrainingOptions: Sendable, Codable, Equatable {
    /// μ, the weight of Σ sqrt(m + ε). Per entry it pulls with μ/(2·sqrt(m+ε)) against the KL.
    public var penalty: Float = 1.35e-6
    public var epsilon: Float = 1e-6
    /// Entries whose trained mask ends below this are pruned to exactly zero.
    public var threshold: Float = 0.5
    public var learningRate: Float = 2e-2
    public var epochs: Int = 4
    /// Sequences per Adam step.
    public var batchSequences: Int = 16
    /// Worker threads (each takes whole sequences of a batch).
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Seed of the per-epoch shuffle.
    public var seed: UInt64 = 0

    public init() {}

    public func validate() throws {
        guard penalty >= 0, penalty.isFinite else { throw PairMapError("mask: penalty \(penalty) must be finite and ≥ 0") }
        guard epsilon > 0 else { throw PairMapError("mask: epsilon \(epsilon) must be > 0") }
        guard threshold >= 0, threshold <= 1 else { throw PairMapError("mask: threshold \(threshold) must lie in [0, 1]") }
        guard learningRate > 0, learningRate.isFinite else { throw PairMapError("mask: learning rate \(learningRate) must be > 0") }
        guard epochs >= 0 else { throw PairMapError("mask: epochs \(epochs) must be ≥ 0") }
        guard batchSequences > 0 else { throw PairMapError("mask: batch of \(batchSequences) sequences must be > 0") }
    }
}

/// One Adam step's figures, for the CLI's progress bar.
public struct MaskTrainingProgress: Sendable {
    public var epoch: Int
    public var epochs: Int
    /// Step within the epoch (1-based) and steps per epoch.
    public var step: Int
    public var stepsPerEpoch: Int
    /// KL + penalty of this batch, and its KL alone.
    public var loss: Double
    public var kl: Double
    /// Share of mask entries currently below the pruning threshold.
    public var fractionBelowThreshold: Double
}

/// Trains the mask m over the co-firing entries with Adam, clamping m to [0, 1] after every step.
///
/// The Adam pass is fused with everything else that touches every entry: it sums the
/// per-thread KL gradients (clearing them), applies the chain rule through W = M·m, adds the
/// penalty gradient, updates and clamps m, writes the new W where the kernels read it and counts
/// entries below the threshold — one sweep over the entries per step.
public final class MaskTrainer {
    public let objective: PairMapObjective
    public let options: MaskTrainingOptions
    public private(set) var mask: [Float]
    private var moment1: [Float]
    private var moment2: [Float]
    private var adamStep = 0

    /// The Adam sweep's work split: chunks of whole query features (the C sweep walks a feature's
    /// entries together) with about the same number of entries each, as query-feature bounds.
    /// Fixed by the co-firing index, so computed once.
    private let chunkBounds: [Int]

    public init(objective: PairMapObjective, options: MaskTrainingOptions) throws {
        try options.validate()
        self.objective = objective; self.options = options
        let n = objective.entryCount
        let chunks = max(1, min(objective.threads * 4, n / 4096 + 1))
        let pairStart = objective.index.pairStart, queryWidth = objective.index.queryWidth
        var bounds = [0]
        for c in 1..<chunks {
            var i = bounds[c - 1]
            while i < queryWidth && pairStart[i] * objective.nHead < n * c / chunks { i += 1 }
            bounds.append(i)
        }
        bounds.append(queryWidth)
        chunkBounds = bounds
        mask = [Float](repeating: 1, count: n)
        objective.setMap(mask: mask)
        moment1 = [Float](repeating: 0, count: n)
        moment2 = [Float](repeating: 0, count: n)
    }

    /// Runs `options.epochs` epochs over the objective's training sequences.
    public func train(progress: ((MaskTrainingProgress) -> Void)? = nil) {
        let count = objective.training.count
        let per = options.batchSequences
        let steps = (count + per - 1) / per
        var rng = SplitMix64(seed: options.seed)
        var order = Array(0..<count)
        for epoch in 0..<options.epochs {
            for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            for step in 0..<steps {
                let batch = Array(order[(step * per)..<min(count, (step + 1) * per)])
                let kl = objective.meanKL(sequences: objective.training, batch: batch,
                                          plogp: objective.trainingPLogP, accumulateGradient: true)
                let (penaltySum, below) = adamUpdate()
                progress?(MaskTrainingProgress(epoch: epoch + 1, epochs: options.epochs, step: step + 1, stepsPerEpoch: steps,
                                               loss: kl + Double(options.penalty) * penaltySum, kl: kl,
                                               fractionBelowThreshold: mask.isEmpty ? 0 : Double(below) / Double(mask.count)))
            }
        }
    }

    /// One fused Adam step (see the type's doc). Returns Σ sqrt(m + ε) before the step and the
    /// number of entries below the threshold after it.
    private func adamUpdate() -> (Double, Int) {
        adamStep += 1
        let b1: Float = 0.9, b2: Float = 0.999, eps: Float = 1e-8
        let c1 = 1 / (1 - powf(b1, Float(adamStep))), c2 = 1 / (1 - powf(b2, Float(adamStep)))
        let lr = options.learningRate, mu = options.penalty, pe = options.epsilon, tau = options.threshold
        let threads = objective.threads, size = objective.storeSize
        let slots = objective.slot ?? []
        let identity = objective.slot == nil
        let bounds = chunkBounds, chunks = bounds.count - 1
        var penaltyParts = [Double](repeating: 0, count: chunks)
        var belowParts = [Int](repeating: 0, count: chunks)
        let pairStart = objective.index.pairStart
        objective.weights.pairValue.withUnsafeBufferPointer { mv in
        objective.threadGrad.withUnsafeMutableBufferPointer { tg in
        mask.withUnsafeMutableBufferPointer { m in
        objective.store.withUnsafeMutableBufferPointer { wv in
        slots.withUnsafeBufferPointer { sl in
        moment1.withUnsafeMutableBufferPointer { a in
        moment2.withUnsafeMutableBufferPointer { b in
        penaltyParts.withUnsafeMutableBufferPointer { pp in
        belowParts.withUnsafeMutableBufferPointer { bp in
        pairStart.withUnsafeBufferPointer { ps in
            // The sweep itself is C (`qk_pairmap_adam`: 8 entries per vector step, AVX2 where the
            // CPU has it).
            let step = QKPairMapAdam(
                thread_grad: tg.baseAddress, threads: Int64(threads), store_size: Int64(size), slot: identity ? nil : sl.baseAddress,
                pair_start: UnsafePointer<Int64>(OpaquePointer(ps.baseAddress)), heads: Int64(objective.nHead),
                pair_value: mv.baseAddress, mask: m.baseAddress, moment1: a.baseAddress, moment2: b.baseAddress, store: wv.baseAddress,
                beta1: b1, beta2: b2, adam_epsilon: eps, correction1: c1, correction2: c2,
                learning_rate: lr, penalty: mu, epsilon: pe, threshold: tau)
            withUnsafePointer(to: step) { sp in
                DispatchQueue.concurrentPerform(iterations: chunks) { c in
                    var below: Int64 = 0
                    pp[c] = qk_pairmap_adam(sp, Int64(bounds[c]), Int64(bounds[c + 1]), &below)
                    bp[c] = Int(below)
                }
            }
        }}}}}}}}}}
        return (penaltyParts.reduce(0, +), belowParts.reduce(0, +))
    }

    /// The trained mask with entries below the threshold set to exactly zero.
    public var prunedMask: [Float] { mask.map { $0 < options.threshold ? 0 : $0 } }
}

