import Foundation
import QKTensor
import QKModels

extension PairMap {
    /// Step 2 on a RoPE model: the same stages as `run`, with the offset-exact objective, and
    /// statistics that use each pair's weight at the actual offset of every (p, s).
    ///
    /// `value` of a surviving pair is M(Δ*)·m at its peak offset Δ* (the offset in 0..<context
    /// where |M(Δ)| is largest); `peakOffset`/`peakValue` carry Δ* and that value, and
    /// `RoPEPairProfile` (from the decoders and θ) evaluates the pair at any other offset.
    static func runRoPE(query: Transcoder, key: Transcoder, config: ModelConfig,
                        training: [PairMapSequence], heldOut: [PairMapSequence],
                        options: MaskTrainingOptions, progress: ((MaskTrainingProgress) -> Void)?) throws -> PairMapResult {
        let objective = try RoPEPairMapObjective(query: query, key: key, config: config, training: training, threads: options.threads)
        let trainer = try RoPEMaskTrainer(objective: objective, options: options)
        let started = Date(), startedCPU = processCPUSeconds()
        trainer.train(progress: progress)
        let seconds = options.epochs == 0 ? 0 : Date().timeIntervalSince(started) / Double(options.epochs)
        let cpuSeconds = options.epochs == 0 ? 0 : (processCPUSeconds() - startedCPU) / Double(options.epochs)
        let trained = trainer.mask, pruned = trainer.prunedMask
        let h = config.nHead, index = objective.index
        for (n, s) in heldOut.enumerated() {
            try s.validate(index: n, queryWidth: query.dHidden, keyWidth: key.dHidden, nHead: h)
        }
        let klUnmasked = try objective.meanKL(mask: [Float](repeating: 1, count: objective.entryCount), sequences: heldOut)
        let klTrained = try objective.meanKL(mask: trained, sequences: heldOut)
        let klPruned = try objective.meanKL(mask: pruned, sequences: heldOut)

        var survivor = [Int32](repeating: -1, count: index.pairCount)
        var survivors = 0
        for pair in 0..<index.pairCount {
            for head in 0..<h where pruned[index.entry(pair: pair, head: head, heads: h)] > 0 {
                survivor[pair] = Int32(survivors); survivors += 1; break
            }
        }
        let context = max(training.map(\.length).max() ?? 1, heldOut.map(\.length).max() ?? 1)
        let sums = OffsetCofiring(index: index, survivor: survivor, survivors: survivors, sequences: heldOut, context: context)

        var result = PairMapResult(head: [], queryFeature: [], keyFeature: [], value: [], mask: [], importance: [],
                                   meanContribution: [], cooccurrence: [], keyBiasScore: [], metrics: PairMapMetrics(
                                    entriesConsidered: objective.entryCount,
                                    entriesBeforePruning: trained.reduce(0) { $0 + ($1 > 0 ? 1 : 0) },
                                    entriesAfterPruning: 0, liveQueryFeatures: index.liveQuery, liveKeyFeatures: index.liveKey,
                                    maskedFractionLive: 0, maskedFractionWhole: 0,
                                    klUnmasked: klUnmasked, klTrained: klTrained, klPruned: klPruned,
                                    penalty: options.penalty, threshold: options.threshold, epochs: options.epochs,
                                    secondsPerEpoch: seconds, cpuSecondsPerEpoch: cpuSeconds),
                                   queryFeatures: FeatureStatistics(codes: heldOut.map(\.query), width: query.dHidden),
                                   keyFeatures: FeatureStatistics(codes: heldOut.map(\.key), width: key.dHidden))
        result.ropeTheta = config.ropeTheta
        let dec = objective.decoders, dh = config.dHead
        let allowed = max(sums.allowed, 1)
        var curve = [Float](repeating: 0, count: context)
        try dec.u.withUnsafeBufferPointer { u in
            try dec.v.withUnsafeBufferPointer { v in
                for head in 0..<h {
                    for pair in 0..<index.pairCount {
                        let e = index.entry(pair: pair, head: head, heads: h)
                        guard pruned[e] > 0 else { continue }
                        let sp = Int(survivor[pair])
                        guard sp >= 0 else { throw PairMapError("pair map: internal error, surviving pair \(pair) has no statistics slot") }
                        let i = Int(index.pairQuery[pair]), j = Int(index.pairKey[pair]), m = pruned[e]
                        let profile = RoPEPairProfile(query: u.baseAddress! + i * h * dh + head * dh,
                                                      key: v.baseAddress! + j * config.nKVHead * dh + dec.kvOf[head] * dh, rope: dec.rope)
                        var peak = 0, absSum = 0.0, signedSum = 0.0, cofire = 0.0
                        for d in 0..<context {
                            curve[d] = profile.value(offset: d) * m
                            if abs(curve[d]) > abs(curve[peak]) { peak = d }
                            let c = sp * context + d
                            absSum += Double(abs(curve[d])) * sums.absMass[c]
                            signedSum += Double(curve[d]) * sums.mass[c]
                            cofire += sums.cofire[c]
                        }
                        result.head.append(Int32(head))
                        result.queryFeature.append(Int32(i))
                        result.keyFeature.append(Int32(j))
                        result.value.append(curve[peak])
                        result.mask.append(m)
                        result.importance.append(Float(absSum / allowed))
                        result.meanContribution.append(cofire > 0 ? Float(signedSum / cofire) : 0)
                        result.cooccurrence.append(Float(cofire / allowed))
                        result.peakOffset.append(Int32(peak))
                        result.peakValue.append(curve[peak])
                    }
                }
            }
        }
        let kept = result.count
        result.metrics.entriesAfterPruning = kept
        let liveMap = Double(index.liveQuery * index.liveKey * h)
        result.metrics.maskedFractionLive = liveMap == 0 ? 1 : 1 - Double(kept) / liveMap
        result.metrics.maskedFractionWhole = 1 - Double(kept) / Double(query.dHidden * key.dHidden * h)
        // B[h, j] at offset 0 (its value when query and key sit at the same position): the
        // offset-free summary the store's `pairmap.key_bias` tensor expects.
        let scale = 1 / Float(dh).squareRoot()
        var bias = [Float](repeating: 0, count: h * key.dHidden)
        for j in 0..<key.dHidden {
            for head in 0..<h {
                var s: Float = 0
                for d in 0..<dh { s += dec.queryBias[head * dh + d] * dec.v[j * config.nKVHead * dh + dec.kvOf[head] * dh + d] }
                bias[head * key.dHidden + j] = s * scale
            }
        }
        result.keyBiasScore = bias
        return result
    }
}

/// Per surviving pair and offset Δ = p − s, co-firing sums over a sample (the RoPE counterpart
/// of `PairCofiring`, which can sum over all offsets at once because M does not depend on them):
///
///     absMass[pair, Δ] = Σ |aQ_i(p) aK_j(s)|,  mass[pair, Δ] = Σ aQ_i(p) aK_j(s),  cofire[pair, Δ] = #both fire
///
/// so that any head's statistics follow from its curve M_h(Δ)·m with one pass over Δ.
struct OffsetCofiring {
    var absMass: [Double]
    var mass: [Double]
    var cofire: [Double]
    var allowed: Double

    init(index: CooccurrenceIndex, survivor: [Int32], survivors: Int, sequences: [PairMapSequence], context: Int) {
        absMass = [Double](repeating: 0, count: survivors * context); mass = absMass; cofire = absMass
        allowed = 0
        // Surviving pairs as CSR over query features: (key feature, slot).
        var start = [Int](repeating: 0, count: index.queryWidth + 1)
        var keys = [Int32](), slots = [Int32]()
        for i in 0..<index.queryWidth {
            for pair in index.pairStart[i]..<index.pairStart[i + 1] where survivor[pair] >= 0 {
                keys.append(index.pairKey[pair]); slots.append(survivor[pair])
            }
            start[i + 1] = keys.count
        }
        var keyLocal = [Int32](repeating: -1, count: index.keyWidth)
        for seq in sequences {
            let t = seq.length
            allowed += Double(t * (t + 1) / 2)
            // Positions and values of each key feature in this sequence.
            var used = [Int32](), firings = [[(position: Int, value: Float)]]()
            for s in 0..<t {
                for e in seq.key.rowStart[s]..<seq.key.rowStart[s + 1] {
                    let j = Int(seq.key.indices[e])
                    if keyLocal[j] < 0 { keyLocal[j] = Int32(used.count); used.append(Int32(j)); firings.append([]) }
                    firings[Int(keyLocal[j])].append((s, seq.key.values[e]))
                }
            }
            for p in 0..<t {
                for e in seq.query.rowStart[p]..<seq.query.rowStart[p + 1] {
                    let i = Int(seq.query.indices[e]), a = Double(seq.query.values[e])
                    for k in start[i]..<start[i + 1] {
                        let jl = Int(keyLocal[Int(keys[k])])
                        guard jl >= 0 else { continue }
                        let base = Int(slots[k]) * context
                        for f in firings[jl] {
                            if f.position > p { break }
                            let c = base + (p - f.position), x = a * Double(f.value)
                            absMass[c] += abs(x); mass[c] += x; cofire[c] += 1
                        }
                    }
                }
            }
            for j in used { keyLocal[Int(j)] = -1 }
        }
    }
}
