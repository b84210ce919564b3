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

        // Surviving entries in the result's order (head, query, key), then their statistics,
        // computed over slices of the surviving pairs so the per-offset sums stay within budget.
        var order = [(head: Int, pair: Int)]()
        for head in 0..<h {
            for pair in 0..<index.pairCount where pruned[index.entry(pair: pair, head: head, heads: h)] > 0 { order.append((head, pair)) }
        }
        var entriesOfSlot = [[Int]](repeating: [], count: survivors)
        for (n, o) in order.enumerated() { entriesOfSlot[Int(survivor[o.pair])].append(n) }
        var importance = [Float](repeating: 0, count: order.count), meanContribution = importance, cooccurrence = importance
        var peakOffset = [Int32](repeating: 0, count: order.count), peakValue = importance
        let dec = objective.decoders, dh = config.dHead
        let slotsPerSlice = max(1, OffsetCofiring.budgetBytes / (context * 3 * MemoryLayout<Float>.size))
        var allowed = 1.0
        var curve = [Float](repeating: 0, count: context)
        dec.u.withUnsafeBufferPointer { u in
            dec.v.withUnsafeBufferPointer { v in
                for lo in stride(from: 0, to: max(survivors, 1), by: slotsPerSlice) {
                    let hi = min(survivors, lo + slotsPerSlice)
                    let sums = OffsetCofiring(index: index, survivor: survivor, slots: lo..<hi, sequences: heldOut, context: context)
                    allowed = max(sums.allowed, 1)
                    for slot in lo..<hi {
                        for n in entriesOfSlot[slot] {
                            let (head, pair) = order[n]
                            let m = pruned[index.entry(pair: pair, head: head, heads: h)]
                            let i = Int(index.pairQuery[pair]), j = Int(index.pairKey[pair])
                            let profile = RoPEPairProfile(query: u.baseAddress! + i * h * dh + head * dh,
                                                          key: v.baseAddress! + j * config.nKVHead * dh + dec.kvOf[head] * dh, rope: dec.rope)
                            var peak = 0, absSum = 0.0, signedSum = 0.0, cofire = 0.0
                            let base = (slot - lo) * context
                            for d in 0..<context {
                                curve[d] = profile.value(offset: d) * m
                                if abs(curve[d]) > abs(curve[peak]) { peak = d }
                                absSum += Double(abs(curve[d]) * sums.absMass[base + d])
                                signedSum += Double(curve[d] * sums.mass[base + d])
                                cofire += Double(sums.cofire[base + d])
                            }
                            importance[n] = Float(absSum / allowed)
                            meanContribution[n] = cofire > 0 ? Float(signedSum / cofire) : 0
                            cooccurrence[n] = Float(cofire / allowed)
                            peakOffset[n] = Int32(peak); peakValue[n] = curve[peak]
                        }
                    }
                }
            }
        }
        var result = PairMapResult(head: order.map { Int32($0.head) }, queryFeature: order.map { index.pairQuery[$0.pair] },
                                   keyFeature: order.map { index.pairKey[$0.pair] }, value: peakValue,
                                   mask: order.map { pruned[index.entry(pair: $0.pair, head: $0.head, heads: h)] },
                                   importance: importance, meanContribution: meanContribution, cooccurrence: cooccurrence,
                                   keyBiasScore: [], metrics: PairMapMetrics(
                                    entriesConsidered: objective.entryCount, trained: trained, index: index,
                                    kl: (klUnmasked, klTrained, klPruned), options: options,
                                    secondsPerEpoch: seconds, cpuSecondsPerEpoch: cpuSeconds),
                                   queryFeatures: FeatureStatistics(codes: heldOut.map(\.query), width: query.dHidden),
                                   keyFeatures: FeatureStatistics(codes: heldOut.map(\.key), width: key.dHidden))
        result.ropeTheta = config.ropeTheta
        result.peakOffset = peakOffset
        result.peakValue = peakValue
        result.metrics.recordPruning(kept: result.count, nHead: h, dQuery: query.dHidden, dKey: key.dHidden)
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
        result.keyBiasImportance = ropeKeyBiasImportance(decoders: dec, keyWidth: key.dHidden, heldOut: heldOut,
                                                             context: context, allowed: allowed)
        return result
    }
}

/// The key-bias term's importance per `[head, key feature]`, offset-exact: the mean over allowed
/// (p, s) of |B_hj(p − s)·aK_j(s)|, where B_hj(Δ) = <R_p b_Q^h, R_s v_j>/sqrt(d_head). Per key
/// activation at s the sum over p ≥ s is a prefix sum of |B_hj| over offsets 0..<(t − s).
func ropeKeyBiasImportance(decoders dec: RoPEDecoders, keyWidth: Int, heldOut: [PairMapSequence],
                           context: Int, allowed: Double) -> [Float] {
    let h = dec.nHead, dh = dec.dHead, kOut = dec.nKVHead * dh
    var prefix = [Int: [Double]]()   // key feature → [head, context + 1]
    var total = [Double](repeating: 0, count: h * keyWidth)
    dec.queryBias.withUnsafeBufferPointer { bq in
        dec.v.withUnsafeBufferPointer { v in
            for seq in heldOut {
                let t = seq.length
                for s in 0..<t {
                    for e in seq.key.rowStart[s]..<seq.key.rowStart[s + 1] {
                        let j = Int(seq.key.indices[e]), a = Double(abs(seq.key.values[e]))
                        if prefix[j] == nil {
                            var table = [Double](repeating: 0, count: h * (context + 1))
                            for head in 0..<h {
                                let profile = RoPEPairProfile(query: bq.baseAddress! + head * dh,
                                                              key: v.baseAddress! + j * kOut + dec.kvOf[head] * dh, rope: dec.rope)
                                for d in 0..<context {
                                    table[head * (context + 1) + d + 1] = table[head * (context + 1) + d] + Double(abs(profile.value(offset: d)))
                                }
                            }
                            prefix[j] = table
                        }
                        guard let table = prefix[j] else { continue }
                        for head in 0..<h { total[head * keyWidth + j] += a * table[head * (context + 1) + (t - s)] }
                    }
                }
            }
        }
    }
    return total.map { Float($0 / max(allowed, 1)) }
}

/// Per surviving pair and offset Δ = p − s, co-firing sums over a sample (the RoPE counterpart
/// of `PairCofiring`, which can sum over all offsets at once because M does not depend on them):
///
///     absMass[pair, Δ] = Σ |aQ_i(p) aK_j(s)|,  mass[pair, Δ] = Σ aQ_i(p) aK_j(s),  cofire[pair, Δ] = #both fire
///
/// so that any head's statistics follow from its curve M_h(Δ)·m with one pass over Δ.
struct OffsetCofiring {
    /// Upper bound for the three per-offset tables of one slice of surviving pairs.
    static var budgetBytes = 512 << 20
    var absMass: [Float]
    var mass: [Float]
    var cofire: [Float]
    var allowed: Double

    /// Sums for the surviving pairs whose slot lies in `slots` (tables indexed slot − slots.lowerBound).
    init(index: CooccurrenceIndex, survivor: [Int32], slots: Range<Int>, sequences: [PairMapSequence], context: Int) {
        absMass = [Float](repeating: 0, count: slots.count * context); mass = absMass; cofire = absMass
        allowed = 0
        // Surviving pairs of the slice as CSR over query features: (key feature, slot).
        var start = [Int](repeating: 0, count: index.queryWidth + 1)
        var keys = [Int32](), local = [Int32]()
        for i in 0..<index.queryWidth {
            for pair in index.pairStart[i]..<index.pairStart[i + 1] where slots.contains(Int(survivor[pair])) {
                keys.append(index.pairKey[pair]); local.append(survivor[pair] - Int32(slots.lowerBound))
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
                    let i = Int(seq.query.indices[e]), a = seq.query.values[e]
                    for k in start[i]..<start[i + 1] {
                        let jl = Int(keyLocal[Int(keys[k])])
                        guard jl >= 0 else { continue }
                        let base = Int(local[k]) * context
                        for f in firings[jl] {
                            if f.position > p { break }
                            let c = base + (p - f.position), x = a * f.value
                            absMass[c] += abs(x); mass[c] += x; cofire[c] += 1
                        }
                    }
                }
            }
            for j in used { keyLocal[Int(j)] = -1 }
        }
    }
}
