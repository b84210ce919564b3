import Foundation
import QKTensor
import QKModels
import QKTrain

/// How a run's step-1 sparsity was set, recorded in its config.
public enum SparsityChoice: String, Codable, Sendable {
    /// A sweep traced the frontier and `SparsityFrontier`'s rule chose the L0 target.
    case fromData = "from the data (sweep)"
    /// The user pinned it: `--sparsity`, `--l0-target` or `--top-k`.
    case sparsity = "pinned by --sparsity"
    case l0Target = "pinned by --l0-target"
    case topK = "pinned by --top-k"
}

/// The sparsity sweep as a pipeline stage: the model runs once over the sweep's sequences (held-out
/// first, then training sequences), the activations are kept in memory, and every point of the
/// grid trains on them (`SparsitySweep`).
public enum SweepStage {
    /// Activations the sweep may keep in memory; beyond this it trains more epochs over fewer sequences.
    static let memoryBudgetBytes = 1 << 30
    /// Held-out sequences each point is judged on.
    static let heldOutSequences = 64

    public static func run(options o: PipelineOptions, model: any TransformerModel, plan: CorpusPlan,
                           observer: PipelineObserver, cancel: CancellationFlag? = nil) throws -> SparsityFrontier {
        let sweep = o.sweep ?? SparsitySweepOptions()
        try sweep.validate()
        let geometry = AttentionGeometry(config: model.config)
        let held = plan.heldOut.prefix(min(plan.heldOut.count, heldOutSequences))
        let bytesPerSequence = 4 * plan.context * (model.config.dModel + geometry.qWidth + geometry.kWidth)
        let wanted = (2 * sweep.tokensPerPoint + plan.context - 1) / plan.context
        let fits = max(1, memoryBudgetBytes / max(1, bytesPerSequence) - held.count)
        let train = plan.train.prefix(min(plan.train.count, wanted, fits))

        let grid = (sweep.grid ?? SparsitySweepOptions.grid(dHidden: o.training.dHidden)).filter { $0 <= o.training.dHidden }
        let stage = "step 1: choose sparsity"
        observer.stageStarted(stage, total: Double(sweep.totalTokens(points: grid.count)), unit: "tok")
        let started = Date()
        var sequences: [TrainingBatch] = []
        for batch in Captures.concatenate(held, train).batches(size: 32) {
            let captured = try TrainingBatch(model.capture(batch, layer: o.layer), geometry: geometry)
            for i in 0..<captured.sequences { sequences.append(captured.sequence(i)) }
        }
        let source = try InMemoryActivationSource(batches: sequences, geometry: geometry, layer: o.layer)
        var base = o.training
        base.heldOutSequences = held.count
        base.seed = o.seed
        let frontier = try SparsitySweep.run(base: base, source: source, sweep: SparsitySweepOptions(grid: grid, tokensPerPoint: sweep.tokensPerPoint),
            progress: { n, count, k, p in
                // The first point of the path (n = 0) has twice the budget.
                let done = Double((n == 0 ? 0 : n + 1) * sweep.tokensPerPoint + p.tokens)
                observer.stageProgress(done, String(format: "k %d (%d of %d)  KL %.4f  live %d/%d", k, n + 1, count, p.patternKL, p.liveQuery, p.liveKey))
            }, cancel: cancel)
        let byK = frontier.points.map { "\($0.k): " + String(format: "%.3f", $0.klFull) }.joined(separator: ", ")
        observer.stageFinished(stage, seconds: Date().timeIntervalSince(started), summary: String(
            format: "L0 target %.1f (mean pattern KL %.3f)", frontier.chosenL0, frontier.baselineMeanPatternKL) + "  KL by k: " + byK)
        return frontier
    }
}
