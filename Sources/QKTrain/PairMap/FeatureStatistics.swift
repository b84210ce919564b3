/// Per-feature statistics of one dictionary over a sample of sequences.
///
/// `bosFraction` is the share of a feature's activation mass that sits on position 0: a key
/// feature near 1 fires on the BOS/[CLS] token alone, the usual carrier of attention sinks.
public struct FeatureStatistics: Sendable {
    public var width: Int
    /// Fires at least once in the sample.
    public var alive: [Bool]
    /// Fraction of positions where the feature fires.
    public var density: [Float]
    /// Mean activation over the positions where it fires (0 if it never does).
    public var meanActivation: [Float]
    public var maxActivation: [Float]
    public var bosFraction: [Float]
    /// Max-activating examples as CSR over features, strongest first:
    /// `exampleStart[f]..<exampleStart[f+1]` index the three arrays below.
    public var exampleStart: [Int]
    public var exampleSequence: [Int32]
    public var examplePosition: [Int32]
    public var exampleActivation: [Float]

    /// - Parameters:
    ///   - codes: one `SparseActivations` per sequence (rows = positions); the example sequence
    ///     numbers are indices into this array.
    ///   - examples: how many max-activating examples to keep per feature.
    public init(codes: [SparseActivations], width: Int, examples: Int = 20) {
        self.width = width
        var count = [Int](repeating: 0, count: width)
        var mass = [Double](repeating: 0, count: width)
        var bosMass = [Double](repeating: 0, count: width)
        var peak = [Float](repeating: 0, count: width)
        // Top-k per feature in a fixed slab: `kept` entries, the weakest of which is replaced.
        let k = max(0, examples)
        var kept = [Int](repeating: 0, count: width)
        var slabAct = [Float](repeating: 0, count: width * k)
        var slabSeq = [Int32](repeating: 0, count: width * k)
        var slabPos = [Int32](repeating: 0, count: width * k)
        var weakest = [Int](repeating: 0, count: width)   // slot of the smallest kept activation
        var positions = 0
        for (n, a) in codes.enumerated() {
            positions += a.rows
            for p in 0..<a.rows {
                for e in a.rowStart[p]..<a.rowStart[p + 1] {
                    let f = Int(a.indices[e]), v = a.values[e]
                    count[f] += 1; mass[f] += Double(v)
                    if p == 0 { bosMass[f] += Double(v) }
                    if count[f] == 1 || v > peak[f] { peak[f] = v }
                    guard k > 0 else { continue }
                    let base = f * k
                    if kept[f] < k {
                        slabAct[base + kept[f]] = v; slabSeq[base + kept[f]] = Int32(n); slabPos[base + kept[f]] = Int32(p)
                        kept[f] += 1
                        if kept[f] == k { weakest[f] = FeatureStatistics.argmin(slabAct, base, k) }
                    } else if v > slabAct[base + weakest[f]] {
                        let slot = base + weakest[f]
                        slabAct[slot] = v; slabSeq[slot] = Int32(n); slabPos[slot] = Int32(p)
                        weakest[f] = FeatureStatistics.argmin(slabAct, base, k)
                    }
                }
            }
        }
        alive = count.map { $0 > 0 }
        density = count.map { positions == 0 ? 0 : Float(Double($0) / Double(positions)) }
        meanActivation = (0..<width).map { count[$0] == 0 ? 0 : Float(mass[$0] / Double(count[$0])) }
        maxActivation = peak
        bosFraction = (0..<width).map { mass[$0] == 0 ? 0 : Float(bosMass[$0] / mass[$0]) }
        var start = [0], seqs = [Int32](), pos = [Int32](), acts = [Float]()
        for f in 0..<width {
            let base = f * k
            let order = (0..<kept[f]).sorted { (slabAct[base + $0], -slabSeq[base + $0], -slabPos[base + $0]) > (slabAct[base + $1], -slabSeq[base + $1], -slabPos[base + $1]) }
            for o in order { seqs.append(slabSeq[base + o]); pos.append(slabPos[base + o]); acts.append(slabAct[base + o]) }
            start.append(seqs.count)
        }
        exampleStart = start; exampleSequence = seqs; examplePosition = pos; exampleActivation = acts
    }

    private static func argmin(_ a: [Float], _ base: Int, _ k: Int) -> Int {
        var best = 0
        for i in 1..<k where a[base + i] < a[base + best] { best = i }
        return best
    }
}
