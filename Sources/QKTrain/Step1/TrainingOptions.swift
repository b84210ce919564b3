import Foundation

/// How the learning rate moves over a run.
public enum LearningRateSchedule: String, Sendable, Codable, CaseIterable {
    /// Linear warm-up, then constant.
    case constant
    /// Linear warm-up, then cosine decay to `minLRFraction` of the peak at the last step.
    case cosine
}

/// Everything that decides a step-1 run. Defaults follow the reference run (DESIGN §8).
public struct TrainingOptions: Sendable, Codable, Equatable {
    /// Features per dictionary.
    public var dHidden: Int = 1536
    public var queryActivation: TranscoderActivation = .relu
    public var keyActivation: TranscoderActivation = .relu
    public var objective = ObjectiveWeights()
    /// When set (ReLU only), λ adapts each step toward this mean L0 per dictionary: multiplied by
    /// exp(rate·(L0 − target)/target), so it rises while codes are too dense and falls when too sparse.
    public var l0Target: Double? = nil
    public var l0AdaptRate: Double = 0.01
    public var learningRate: Float = 1e-3
    public var warmupSteps: Int = 100
    public var schedule: LearningRateSchedule = .constant
    public var minLRFraction: Float = 0.1
    /// Global gradient-norm clipping per dictionary (0 = off).
    public var clipNorm: Float = 1
    /// Steps over which λ rises linearly from 0 (lets features form before sparsity bites).
    public var penaltyWarmupSteps: Int = 100
    /// When true, both warm-ups take at most a quarter of the run's optimiser steps (`warmup`).
    /// nil (configs stored before it existed) and false: the warm-ups as given.
    public var warmupsAtMostAQuarter: Bool? = nil
    /// Sequences per optimiser step.
    public var batchSequences: Int = 8
    /// Tokens to train on (the run ends when this many have been seen).
    public var trainTokens: Int = 2_500_000
    /// Sequences set aside before training, never trained on, for the metrics.
    public var heldOutSequences: Int = 64
    /// Sequences read and shuffled together (bigger mixes better; costs memory).
    public var shuffleBlockSequences: Int = 64
    public var seed: UInt64 = 0
    /// Fraction of tokens each feature fires on at the start (b_enc is calibrated on the first
    /// batch); 0 leaves b_enc = 0.
    public var initialDensity: Double = 0.03
    /// A feature that has not fired for this many training tokens is dead.
    public var deadWindowTokens: Int = 100_000
    /// Resample dead features (re-aim them at the worst-reconstructed inputs); off = `--no-resample`.
    public var resample: Bool = true
    /// Check for dead features every this many tokens (0 = every `deadWindowTokens`).
    public var resampleEveryTokens: Int = 25_000
    /// Stop resampling after this fraction of the run, so the last features settle.
    public var resampleUntilFraction: Double = 0.8
    /// Give the key dictionary a first-position feature (feature 0: activation 1 at each
    /// sequence's first position, 0 elsewhere, decoder learned, no penalty). The key there — [CLS],
    /// BOS, the attention sink — is nearly one fixed vector; without this feature step 1 spreads it
    /// over dozens of learned features that all fire at position 0, and step 2 needs a pair for each.
    /// Optional so that configs stored before it existed decode (as off); `--no-first-position-feature`.
    public var firstPositionKeyFeature: Bool? = true
    /// The key feature fixed to the first position, when there is one.
    public var keyFirstPositionFeature: Int? { firstPositionKeyFeature == true ? 0 : nil }
    /// Step 1 ends by fitting the decoders alone for this fraction of `trainTokens` more: the
    /// encoders are frozen (so the codes, L0 and live features stay as trained), the sparsity
    /// penalty is off and the learning rate is `decoderFitLearningRateFactor` × `learningRate`.
    /// Why: while the penalty λ·Σ sqrt(a)·‖W_dec[i]‖ is on, it keeps pulling decoder norms down
    /// (and activations up to compensate), so the decoders never settle where the pattern KL
    /// wants them; on MiniLM layer 2 the fit lowers the transcoders' KL by ~10% and the pruned pair
    /// map's by ~7% (README, step 2). 0 turns it off (`--decoder-fit 0`). Optional so that configs
    /// stored before it existed decode (as no fit).
    public var decoderFitFraction: Double? = 0.1
    public var decoderFitLearningRateFactor: Float? = 0.3
    /// Tokens of the decoder fit.
    public var decoderFitTokens: Int { Int(((decoderFitFraction ?? 0) * Double(trainTokens)).rounded()) }
    /// Weight β of the decoder fit's pair-map term (`PairMapFitTerm`): the fit then also lowers
    /// the KL of the pruned pair map that step 2's mask keeps, so fewer pairs carry more of the
    /// pattern. 0 fits the reconstruction terms alone (`--pair-fit-weight 0`). Not on RoPE layers
    /// (their pair values depend on the offset; the fit there has no pair-map term). 6 is twice
    /// the full pattern term's weight; on MiniLM layer 2 it beat 3 on both seeds tried (README).
    public var pairFitWeight: Float? = 6
    /// Sequences the pair-map term's mask is trained on (read from the training data at the start
    /// of the fit; the pipeline uses step 2's count).
    public var pairFitSequences: Int? = 1024
    /// The options of the term's mask; nil = `MaskTrainingOptions()`. The pipeline passes step 2's own.
    public var pairFitMask: MaskTrainingOptions? = nil
    /// One sentence on the decoder fit for exported configs, or nil when there was none.
    public func decoderFitDescription(geometry: AttentionGeometry) -> String? {
        guard decoderFitTokens > 0 else { return nil }
        var text = "after training, W_dec and b_dec were fitted alone for \(decoderFitTokens) more tokens "
            + "(encoders frozen, no sparsity penalty, learning rate x \(decoderFitLearningRateFactor ?? 1))"
        if hasPairFitTerm(geometry: geometry) {
            text += " to the pattern loss plus \(pairFitWeight ?? 0) x the KL of a pruned pair map (a step-2 mask trained on \(pairFitSequences ?? 0) sequences)"
        }
        return text
    }
    /// Whether the decoder fit includes the pair-map term.
    public func hasPairFitTerm(geometry: AttentionGeometry) -> Bool {
        decoderFitTokens > 0 && (pairFitWeight ?? 0) > 0 && (pairFitSequences ?? 0) > 0 && geometry.ropeTheta == nil
    }
    /// Threads for the trainer's own parallel loops (BLAS is kept single-threaded meanwhile).
    public var threads: Int = 2
    /// Report progress every this many steps.
    public var progressEverySteps: Int = 10

    public init() {}

    public func validate() throws {
        func bad(_ m: String) -> TrainError { TrainError("training options: \(m)") }
        guard dHidden > 0 else { throw bad("--d-hidden must be positive, got \(dHidden)") }
        guard batchSequences > 0 else { throw bad("--batch must be positive, got \(batchSequences)") }
        guard trainTokens > 0 else { throw bad("--train-tokens must be positive, got \(trainTokens)") }
        guard learningRate > 0, learningRate.isFinite else { throw bad("--lr must be a positive number, got \(learningRate)") }
        guard heldOutSequences >= 0 else { throw bad("held-out sequences must be ≥ 0, got \(heldOutSequences)") }
        guard objective.lambdaQ >= 0, objective.lambdaK >= 0 else { throw bad("--sparsity must be ≥ 0") }
        if let t = l0Target, !(t > 0) { throw bad("--l0-target must be positive, got \(t)") }
        for a in [queryActivation, keyActivation] {
            if case .topK(let k) = a, k <= 0 || k > dHidden { throw bad("TopK k must be in 1...\(dHidden), got \(k)") }
        }
        guard threads > 0 else { throw bad("threads must be positive") }
        if let f = decoderFitFraction, !(f >= 0 && f.isFinite) { throw bad("--decoder-fit must be a fraction ≥ 0, got \(f)") }
        if let f = decoderFitLearningRateFactor, !(f > 0 && f.isFinite) { throw bad("the decoder fit's learning-rate factor must be positive, got \(f)") }
        if let w = pairFitWeight, !(w >= 0 && w.isFinite) { throw bad("--pair-fit-weight must be ≥ 0, got \(w)") }
        if let n = pairFitSequences, n < 0 { throw bad("pair-fit sequences must be ≥ 0, got \(n)") }
        try pairFitMask?.validate()
        guard deadWindowTokens > 0, resampleEveryTokens >= 0 else { throw bad("--dead-window must be positive, got \(deadWindowTokens)") }
    }

    /// A warm-up of `steps` in a run of `totalSteps`: as given, or cut to a quarter of the run
    /// when `warmupsAtMostAQuarter`.
    ///
    /// Why: an L0 target adapts λ during the penalty warm-up, where the penalty applied is only a
    /// fraction of λ, so λ winds up and L0 dips far below the target once the warm-up ends. A long
    /// run climbs back out (and the dip's resampling helps it, DESIGN §4), but a 200k-token MiniLM
    /// run (195 steps, 100 + 100 of them warm-up) ended inside the dip. A quarter leaves every run
    /// of 400 steps or more as it was (the planted family at 200k tokens has 781; the default
    /// MiniLM run 2,441). `qkdb run`/`train` set it for the main step-1 run, not for the sweep.
    public func warmup(_ steps: Int, totalSteps: Int) -> Int {
        warmupsAtMostAQuarter == true ? min(steps, max(1, totalSteps / 4)) : steps
    }

    /// Learning rate at optimiser step `step` (1-based) of `totalSteps`.
    public func learningRate(step: Int, totalSteps: Int) -> Float {
        let warmupSteps = warmup(self.warmupSteps, totalSteps: totalSteps)
        if warmupSteps > 0 && step <= warmupSteps { return learningRate * Float(step) / Float(warmupSteps) }
        switch schedule {
        case .constant: return learningRate
        case .cosine:
            let span = max(1, totalSteps - warmupSteps)
            let f = min(1, Float(step - warmupSteps) / Float(span))
            let c = 0.5 * (1 + cos(Float.pi * f))
            return learningRate * (minLRFraction + (1 - minLRFraction) * c)
        }
    }

    /// Fraction of λ applied at step `step` of `totalSteps` (penalty warm-up).
    public func penaltyFactor(step: Int, totalSteps: Int) -> Float {
        let steps = warmup(penaltyWarmupSteps, totalSteps: totalSteps)
        return steps > 0 ? min(1, Float(step) / Float(steps)) : 1
    }
}
