/// Co-firing sums per pair over a sample, the raw material of the per-pair statistics:
/// for every allowed (p, s) in every sequence,
///
///     absMass[pair]  += |aQ_i(p) aK_j(s)|
///     mass[pair]     +=  aQ_i(p) aK_j(s)
///     cofire[pair]   += 1   when both fire
///
/// None of these depend on the head or the mask, so per entry (pair, h) with W = M·m:
/// importance = |W|·absMass/allowed, mean_contribution = W·mass/cofire,
/// cooccurrence = cofire/allowed. On causal models the sum over s ≤ p is a running prefix sum of
/// the key codes, so each query activation costs one pass over the sequence's key features.
///
/// The key-bias term B[h, j]·aK_j(s) gets the same treatment with the query side replaced by a
/// constant 1: keyAbsMass[j] = Σ over allowed (p, s) of |aK_j(s)|, so its importance
/// |B|·keyAbsMass/allowed is on the pairs' scale.
struct PairCofiring {
    var absMass: [Double]
    var mass: [Double]
    var cofire: [Double]
    /// Per key feature: Σ over allowed (p, s) of |aK_j(s)| (a key at s is visible from t - s
    /// queries on causal models, from all t otherwise).
    var keyAbsMass: [Double]
    /// Allowed (p, s) pairs in the sample.
    var allowed: Double

    init(index: CooccurrenceIndex, sequences: [PairMapSequence], causal: Bool) {
        let n = index.pairCount
        absMass = [Double](repeating: 0, count: n); mass = absMass; cofire = absMass
        keyAbsMass = [Double](repeating: 0, count: index.keyWidth)
        allowed = 0
        var keyLocal = [Int32](repeating: -1, count: index.keyWidth)
        for seq in sequences {
            let t = seq.length
            allowed += causal ? Double(t * (t + 1) / 2) : Double(t * t)
            for s in 0..<t {
                let seenBy = Double(causal ? t - s : t)
                for e in seq.key.rowStart[s]..<seq.key.rowStart[s + 1] { keyAbsMass[Int(seq.key.indices[e])] += abs(Double(seq.key.values[e])) * seenBy }
            }
            var usedKey = [Int32]()
            for f in seq.key.indices where keyLocal[Int(f)] < 0 { keyLocal[Int(f)] = Int32(usedKey.count); usedKey.append(f) }
            let uk = usedKey.count
            // Running sums over the keys visible so far (all keys at once on BERT).
            var runAbs = [Double](repeating: 0, count: uk), run = runAbs, runCount = runAbs
            func addKeys(_ s: Int) {
                for e in seq.key.rowStart[s]..<seq.key.rowStart[s + 1] {
                    let jl = Int(keyLocal[Int(seq.key.indices[e])]), v = Double(seq.key.values[e])
                    runAbs[jl] += abs(v); run[jl] += v; runCount[jl] += 1
                }
            }
            if !causal { for s in 0..<t { addKeys(s) } }
            // Per local query feature: its accumulated sums against every local key feature.
            var queryLocal = [Int: Int]()
            var accAbs = [Double](), acc = [Double](), accCount = [Double]()
            for p in 0..<t {
                if causal { addKeys(p) }
                for e in seq.query.rowStart[p]..<seq.query.rowStart[p + 1] {
                    let i = Int(seq.query.indices[e]), a = Double(seq.query.values[e])
                    let il: Int
                    if let known = queryLocal[i] { il = known } else {
                        il = queryLocal.count; queryLocal[i] = il
                        accAbs += [Double](repeating: 0, count: uk); acc += [Double](repeating: 0, count: uk)
                        accCount += [Double](repeating: 0, count: uk)
                    }
                    let base = il * uk
                    for jl in 0..<uk {
                        accAbs[base + jl] += abs(a) * runAbs[jl]; acc[base + jl] += a * run[jl]; accCount[base + jl] += runCount[jl]
                    }
                }
            }
            for (i, il) in queryLocal {
                for pair in index.pairStart[i]..<index.pairStart[i + 1] {
                    let jl = keyLocal[Int(index.pairKey[pair])]
                    guard jl >= 0 else { continue }
                    let c = il * uk + Int(jl)
                    absMass[pair] += accAbs[c]; mass[pair] += acc[c]; cofire[pair] += accCount[c]
                }
            }
            for f in usedKey { keyLocal[Int(f)] = -1 }
        }
    }
}
