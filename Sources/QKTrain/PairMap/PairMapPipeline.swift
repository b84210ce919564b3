import Foundation
import QKTensor
import QKModels

/// Step 2 end to end: index the co-firing pairs of the training data, train the mask, prune,
/// evaluate the pruned map on the held-out sample and compute pair and feature statistics there.
public enum PairMap {
    /// - Parameters:
    ///   - training: sequences the mask is trained on (they also define which pairs exist).
    ///   - heldOut: sequences for the KL figures and all statistics; example sequence numbers in
    ///     the result index this array.
    ///   - choosePenalty: choose μ first (`MaskPenaltySearch`, starting from `options.penalty`)
    ///     and train the mask with it; not on RoPE layers yet (their step 2 is ~100× slower).
    ///   - progress: called after every Adam step.
    public static func run(query: Transcoder, key: Transcoder, config: ModelConfig,
                           training: [PairMapSequence], heldOut: [PairMapSequence],
                           options: MaskTrainingOptions = MaskTrainingOptions(), choosePenalty: Bool = false,
                           searchProgress: ((Int, Float) -> Void)? = nil,
                           progress: ((MaskTrainingProgress) -> Void)? = nil) throws -> PairMapResult {
        guard !heldOut.isEmpty else { throw PairMapError("mask: the held-out sample is empty") }
        if config.ropeTheta != nil {
            return try runRoPE(query: query, key: key, config: config, training: training, heldOut: heldOut,
                               options: options, progress: progress)
        }
        let objective = try PairMapObjective(query: query, key: key, config: config, training: training, threads: options.threads)
        var options = options
        var search: MaskPenaltyCurve? = nil
        if choosePenalty {
            search = try MaskPenaltySearch.run(objective: objective, options: options, progress: searchProgress)
            options.penalty = search!.chosen
        }
        let trainer = try MaskTrainer(objective: objective, options: options)
        let started = Date(), startedCPU = processCPUSeconds()
        trainer.train(progress: progress)
        let seconds = options.epochs == 0 ? 0 : Date().timeIntervalSince(started) / Double(options.epochs)
        let cpuSeconds = options.epochs == 0 ? 0 : (processCPUSeconds() - startedCPU) / Double(options.epochs)
        let trained = trainer.mask
        let pruned = trainer.prunedMask

        let h = config.nHead
        let klUnmasked = try objective.meanKL(mask: [Float](repeating: 1, count: objective.entryCount), sequences: heldOut)
        let klTrained = try objective.meanKL(mask: trained, sequences: heldOut)
        let klPruned = try objective.meanKL(mask: pruned, sequences: heldOut)

        let index = objective.index
        let cofiring = PairCofiring(index: index, sequences: heldOut, causal: objective.causal)
        var result = PairMapResult(head: [], queryFeature: [], keyFeature: [], value: [], mask: [], importance: [],
                                   meanContribution: [], cooccurrence: [], keyBiasScore: [], metrics: PairMapMetrics(
                                    entriesConsidered: objective.entryCount, trained: trained, index: index,
                                    kl: (klUnmasked, klTrained, klPruned), options: options,
                                    secondsPerEpoch: seconds, cpuSecondsPerEpoch: cpuSeconds),
                                   queryFeatures: FeatureStatistics(codes: heldOut.map(\.query), width: query.dHidden),
                                   keyFeatures: FeatureStatistics(codes: heldOut.map(\.key), width: key.dHidden))
        let allowed = max(cofiring.allowed, 1)
        for head in 0..<h {
            for pair in 0..<index.pairCount {
                let e = index.entry(pair: pair, head: head, heads: h)
                guard pruned[e] > 0 else { continue }
                let w = objective.weights.pairValue[e] * pruned[e]
                result.head.append(Int32(head))
                result.queryFeature.append(index.pairQuery[pair])
                result.keyFeature.append(index.pairKey[pair])
                result.value.append(w)
                result.mask.append(pruned[e])
                result.importance.append(Float(Double(abs(w)) * cofiring.absMass[pair] / allowed))
                result.meanContribution.append(cofiring.cofire[pair] > 0 ? Float(Double(w) * cofiring.mass[pair] / cofiring.cofire[pair]) : 0)
                result.cooccurrence.append(Float(cofiring.cofire[pair] / allowed))
            }
        }
        result.metrics.recordPruning(kept: result.count, nHead: h, dQuery: query.dHidden, dKey: key.dHidden)
        result.penaltySearch = search
        var bias = [Float](repeating: 0, count: h * key.dHidden)
        for j in 0..<key.dHidden { for head in 0..<h { bias[head * key.dHidden + j] = objective.weights.keyBias[j * h + head] } }
        result.keyBiasScore = bias
        result.keyBiasImportance = (0..<(h * key.dHidden)).map { e in
            Float(Double(abs(bias[e])) * cofiring.keyAbsMass[e % key.dHidden] / allowed)
        }
        return result
    }
}

/// CPU time of the whole process (all threads), so benchmark figures survive a busy machine.
func processCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
