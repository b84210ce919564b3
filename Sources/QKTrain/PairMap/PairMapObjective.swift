import Foundation
import QKTensor
import QKModels

/// The step-2 objective over a fixed set of training sequences:
///
///     L(m) = mean over (sequence, head, query position) of KL(P ‖ softmax(score(m)))
///          + μ · Σ_entries sqrt(m + ε)
///
/// It owns the co-occurrence index, M (both built once from the training data and the decoders),
/// the effective map W = M·m in the layout the kernels read, and one kernel and one gradient
/// buffer per worker thread; batches are split across the workers by sequence.
///
/// Layout of W ("store"): when the live features of the training data are few enough
/// (live_Q · live_K · heads · (threads + 1) floats within `liveBlockBudget`), W is kept as one dense
/// block over live features [live_Q + 1, live_K + 1, lanes] (heads padded to a multiple of 4) —
/// entries that never co-fire stay 0
/// there, and the extra row and column are a zero slot for features that are not live (held-out
/// data). Every sequence then reads it directly: no per-sequence gather or scatter. Otherwise W is
/// kept per entry and each sequence gathers the small block of its own features.
public final class PairMapObjective {
    public let index: CooccurrenceIndex
    public internal(set) var weights: PairMapWeights
    public let nHead: Int
    public let causal: Bool
    public let training: [PairMapSequence]
    /// Σ P log P per training sequence (the mask-independent half of the KL).
    let trainingPLogP: [Double]
    let threads: Int
    private let kernels: [PairMapKernel]
    /// Live-block layout: block row of each query feature, column of each key feature.
    let blockRow: [Int32]?
    let blockColumn: [Int32]?
    let blockColumns: Int
    /// Rows of the live block (live query features plus the zero row).
    let blockRows: Int
    /// Where entry e lives in the store (live-block layout only; per-entry layout is the identity).
    let slot: [Int32]?
    let storeSize: Int
    /// W in the store layout.
    var store: [Float]
    /// Per-thread dKL/dW accumulators in the store layout, `threads × storeSize`.
    var threadGrad: [Float]

    /// Upper bound in bytes for the live-block layout (W plus one gradient block per thread).
    public static var liveBlockBudget = 1 << 30

    public var entryCount: Int { index.pairCount * nHead }

    public convenience init(query: Transcoder, key: Transcoder, config: ModelConfig, training: [PairMapSequence],
                            threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        try self.init(query: query, key: key, geometry: AttentionGeometry(config: config), training: training, threads: threads)
    }

    public init(query: Transcoder, key: Transcoder, geometry config: AttentionGeometry, training: [PairMapSequence],
                threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        guard !training.isEmpty else { throw PairMapError("pair map: no training sequences") }
        // On RoPE models M depends on the offset p − s; this objective assumes one M per entry
        // (`RoPEPairMapObjective` is the offset-exact one, and `PairMap.run` picks it).
        if let theta = config.ropeTheta {
            throw PairMapError("pair map: the layer uses RoPE (rope_theta \(theta)); use RoPEPairMapObjective")
        }
        for (n, s) in training.enumerated() {
            try s.validate(index: n, queryWidth: query.dHidden, keyWidth: key.dHidden, nHead: config.nHead)
        }
        causal = config.causal
        nHead = config.nHead
        index = CooccurrenceIndex(sequences: training, queryWidth: query.dHidden, keyWidth: key.dHidden, causal: causal)
        weights = try PairMapWeights(query: query, key: key, geometry: config, index: index)
        self.training = training
        trainingPLogP = training.map { PairMapObjective.plogp($0) }
        self.threads = max(1, threads)
        kernels = (0..<self.threads).map { _ in
            PairMapKernel(queryWidth: query.dHidden, keyWidth: key.dHidden, nHead: config.nHead, causal: config.causal)
        }
        // Live features: those with at least one pair.
        var row = [Int32](repeating: -1, count: index.queryWidth), col = [Int32](repeating: -1, count: index.keyWidth)
        var rows: Int32 = 0, cols: Int32 = 0
        for i in 0..<index.queryWidth where index.pairStart[i + 1] > index.pairStart[i] { row[i] = rows; rows += 1 }
        for j in index.pairKey where col[Int(j)] < 0 { col[Int(j)] = 0 }
        for j in 0..<index.keyWidth where col[j] == 0 { col[j] = cols; cols += 1 }
        let lanes = PairMapKernel.lanes(heads: nHead)
        let blockSize = (Int(rows) + 1) * (Int(cols) + 1) * lanes
        if blockSize * 4 * (self.threads + 1) <= PairMapObjective.liveBlockBudget {
            for i in 0..<row.count where row[i] < 0 { row[i] = rows }   // the zero row
            for j in 0..<col.count where col[j] < 0 { col[j] = cols }   // the zero column
            let h = nHead, width = Int(cols) + 1
            var s = [Int32](repeating: 0, count: index.pairCount * h)
            for pair in 0..<index.pairCount {
                let r = Int(row[Int(index.pairQuery[pair])]), c = Int(col[Int(index.pairKey[pair])])
                for x in 0..<h { s[index.entry(pair: pair, head: x, heads: h)] = Int32((r * width + c) * lanes + x) }
            }
            blockRow = row; blockColumn = col; blockColumns = width; blockRows = Int(rows) + 1; slot = s; storeSize = blockSize
        } else {
            blockRow = nil; blockColumn = nil; blockColumns = 0; blockRows = 0; slot = nil; storeSize = index.pairCount * nHead
        }
        store = [Float](repeating: 0, count: storeSize)
        threadGrad = []
        setMap(mask: [Float](repeating: 1, count: entryCount))
    }

    /// Writes W = M·mask into the store.
    func setMap(mask: [Float]) {
        let m = weights.pairValue
        if let slot { for e in 0..<m.count { store[Int(slot[e])] = m[e] * mask[e] } }
        else { for e in 0..<m.count { store[e] = m[e] * mask[e] } }
    }

    /// Mean KL over the (sequence, head, query position) rows of `batch` (indices into
    /// `sequences`) under the W in the store. With `accumulateGradient`, leaves dKL/dW in the
    /// per-thread buffers (the trainer's Adam pass or `sumGradient` reads and clears them).
    func meanKL(sequences: [PairMapSequence], batch: [Int], plogp: [Double]?, accumulateGradient: Bool) -> Double {
        let rows = batch.reduce(0) { $0 + sequences[$1].length } * nHead
        guard rows > 0 else { return 0 }
        let scale = Float(1 / Double(rows))
        let size = storeSize
        if accumulateGradient && threadGrad.count != threads * size {
            threadGrad = [Float](repeating: 0, count: threads * size)
        }
        var partial = [Double](repeating: 0, count: threads)
        let workers = min(threads, batch.count)
        // Each worker runs its own single-threaded BLAS calls; restore the caller's setting after.
        let blasThreads = BLAS.threads
        if workers > 1 { BLAS.setThreads(1) }
        defer { if workers > 1 { BLAS.setThreads(blasThreads) } }
        let blockRow = self.blockRow ?? [], blockColumn = self.blockColumn ?? [], live = slot != nil
        store.withUnsafeBufferPointer { wp in
        weights.keyBias.withUnsafeBufferPointer { kb in
        threadGrad.withUnsafeMutableBufferPointer { gp in
        partial.withUnsafeMutableBufferPointer { part in
        blockRow.withUnsafeBufferPointer { br in
        blockColumn.withUnsafeBufferPointer { bc in
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var sum = 0.0
                var n = worker
                let grad = accumulateGradient ? gp.baseAddress! + worker * size : nil
                while n < batch.count {
                    let seq = sequences[batch[n]]
                    let entropy = plogp?[batch[n]] ?? PairMapObjective.plogp(seq)
                    if live {
                        sum += kernels[worker].run(seq, block: wp.baseAddress!, blockGrad: grad, queryRow: br.baseAddress!,
                                                   keyColumn: bc.baseAddress!, rows: blockRows, columns: blockColumns,
                                                   keyBiasTable: kb.baseAddress!, plogp: entropy, rowScale: scale)
                    } else {
                        sum += kernels[worker].runGathered(seq, index: index, w: wp.baseAddress!, keyBiasTable: kb.baseAddress!,
                                                           plogp: entropy, grad: grad, rowScale: scale)
                    }
                    n += workers
                }
                part[worker] = sum
            }
        }}}}}}
        return partial.reduce(0, +) / Double(rows)
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
        setMap(mask: mask)
        return meanKL(sequences: sequences, batch: Array(sequences.indices), plogp: nil, accumulateGradient: false)
    }

    /// Loss and dL/dm for the training sequences in `batch` (for tests and gradient checks; the
    /// trainer fuses the same gradient into its Adam step instead).
    public func lossAndGradient(mask: [Float], batch: [Int], penalty: Float, epsilon: Float) -> (loss: Double, kl: Double, gradient: [Float]) {
        setMap(mask: mask)
        let kl = meanKL(sequences: training, batch: batch, plogp: trainingPLogP, accumulateGradient: true)
        var g = sumGradient()
        var pen = 0.0
        for e in 0..<g.count {
            let r = (mask[e] + epsilon).squareRoot()
            pen += Double(r)
            g[e] = g[e] * weights.pairValue[e] + penalty / (2 * r)
        }
        return (kl + Double(penalty) * pen, kl, g)
    }

    /// Per-entry dKL/dW summed over threads; clears the per-thread buffers.
    func sumGradient() -> [Float] {
        var g = [Float](repeating: 0, count: entryCount)
        for e in 0..<entryCount {
            let at = slot.map { Int($0[e]) } ?? e
            for t in 0..<threads { g[e] += threadGrad[t * storeSize + at] }
        }
        for i in threadGrad.indices { threadGrad[i] = 0 }
        return g
    }

    /// Σ_{head, p, s} P log P of a sequence's true pattern.
    static func plogp(_ seq: PairMapSequence) -> Double {
        var s = 0.0
        for v in seq.pattern.data where v > 0 { s += Double(v) * log(Double(v)) }
        return s
    }
}
