import Foundation
import QKTensor
import CPairMap

/// The forward and backward pass of step 2 for one sequence.
///
/// The effective map W = M·m is read from a dense block W_blk[row, col, lane] over a set of
/// query features (rows) and key features (columns), heads innermost and padded to a multiple of
/// 4 lanes: either the live features of the whole training set (the live-block layout of
/// `PairMapObjective`, shared by all sequences) or just the features of this one sequence,
/// gathered from the co-occurrence index (`runGathered`). Then, per query position p:
///
///     U[p,j,·]  = Σ_{i active at p} aQ_i(p) W_blk[i,j,·]      (~20 rows summed in registers,
///                                                              tile by tile of columns)
///     S(s,·)    = B(s,·) + Σ_{j active at s} aK_j(s) U[p,j,·]  (~20 head vectors per key)
///     P̂(p,h,·)  = softmax over allowed s;   KL = Σ_s P (log P − log P̂)
///
/// and the backward pass runs the same sums in reverse with G = (P̂ − P)/rows:
///
///     V[p,j,·]       = Σ_s G(s,·) aK_j(s)                      (written over U[p])
///     dW_blk[i,j,·] += Σ_{p where i fires} aQ_i(p) V[p,j,·]
///
/// Both sides stay sparse: the query codes pick whole rows of W_blk, the key codes pick ~20
/// head vectors of U[p] (which sits in L1) per key position. The cost is
/// O(T · L0 · (cols · heads + T · heads)), never O(d_Q · d_K · heads). The loops themselves are
/// C (`CPairMap`, built for the baseline CPU and again with AVX2+FMA, picked at run time): the
/// heads of one key position are whole 8-lane vectors there, so the softmax over key positions
/// runs for all heads at once and every multiply-add is fused. Each worker thread owns one kernel
/// (its buffers are reused across sequences).
final class PairMapKernel {
    let nHead: Int
    /// Heads padded to a multiple of 4: the innermost dimension of every block, so that one
    /// (feature, key) cell is whole 4-lane vectors.
    let lanes: Int
    let causal: Bool
    private var queryLocal: [Int32]
    private var keyLocal: [Int32]
    private var usedQuery: [Int32] = []
    private var usedKey: [Int32] = []
    private var qIdx: [Int32] = []
    private var kIdx: [Int32] = []
    private var block = Buffer()        // gathered W_blk (per-sequence mode)
    private var blockGrad = Buffer()    // gathered dL/dW_blk (per-sequence mode)
    private var u = Buffer()            // U [T, cols, lane]; overwritten by V
    private var scores = Buffer()       // S [s, stride] of one query position; then P̂
    private var target = Buffer()       // P [s, stride] of one query position
    private var keyBias = Buffer()      // [s, stride]
    private var stats = Buffer()        // per-head figures of one query position (> 16 lanes)
    private var order: [Int32] = []     // query non-zeros grouped by block row: (entry, position)
    private var rowStart: [Int32] = []

    init(queryWidth: Int, keyWidth: Int, nHead: Int, causal: Bool) {
        self.nHead = nHead; self.causal = causal; lanes = PairMapKernel.lanes(heads: nHead)
        queryLocal = [Int32](repeating: -1, count: queryWidth)
        keyLocal = [Int32](repeating: -1, count: keyWidth)
    }

    deinit { for b in [block, blockGrad, u, scores, target, keyBias, stats] { b.free() } }

    static func lanes(heads: Int) -> Int { (heads + 3) / 4 * 4 }

    /// Per-sequence mode: gathers W_blk for this sequence's features from the per-entry map `w`,
    /// runs the pass, and scatters dW_blk back onto the per-entry gradient `grad`.
    func runGathered(_ seq: PairMapSequence, index: CooccurrenceIndex, w: UnsafePointer<Float>,
                     keyBiasTable: UnsafePointer<Float>, plogp: Double,
                     grad: UnsafeMutablePointer<Float>?, rowScale: Float) -> Double {
        let h = nHead
        usedQuery.removeAll(keepingCapacity: true); usedKey.removeAll(keepingCapacity: true)
        for f in seq.query.indices where queryLocal[Int(f)] < 0 {
            queryLocal[Int(f)] = Int32(usedQuery.count); usedQuery.append(f)
        }
        for f in seq.key.indices where keyLocal[Int(f)] < 0 { keyLocal[Int(f)] = 0; usedKey.append(f) }
        // Local key numbers ascend with the global ones, so walking a query feature's pairs (sorted
        // by key) in gather/scatter touches W_blk left to right instead of at random.
        usedKey.sort()
        for (n, f) in usedKey.enumerated() { keyLocal[Int(f)] = Int32(n) }
        defer {
            for f in usedQuery { queryLocal[Int(f)] = -1 }
            for f in usedKey { keyLocal[Int(f)] = -1 }
        }
        let uq = usedQuery.count, uk = usedKey.count
        let hp = lanes
        let wl = block.reserve(uq * uk * hp, zeroed: true)
        for (il, i) in usedQuery.enumerated() {
            let row = wl + il * uk * hp
            let start = index.pairStart[Int(i)], count = index.pairStart[Int(i) + 1] - start
            for pair in start..<(start + count) {
                let jl = Int(keyLocal[Int(index.pairKey[pair])])
                if jl >= 0 { let src = w + start * h + (pair - start); for x in 0..<h { row[jl * hp + x] = src[x * count] } }
            }
        }
        let gl = grad == nil ? nil : blockGrad.reserve(uq * uk * hp, zeroed: true)
        let kl = queryLocal.withUnsafeBufferPointer { qm in
            keyLocal.withUnsafeBufferPointer { km in
                run(seq, block: wl, blockGrad: gl, queryRow: qm.baseAddress!, keyColumn: km.baseAddress!, rows: uq, columns: uk,
                    keyBiasTable: keyBiasTable, plogp: plogp, rowScale: rowScale)
            }
        }
        if let grad, let gl {
            for (il, i) in usedQuery.enumerated() {
                let row = gl + il * uk * hp
                let start = index.pairStart[Int(i)], count = index.pairStart[Int(i) + 1] - start
                for pair in start..<(start + count) {
                    let jl = Int(keyLocal[Int(index.pairKey[pair])])
                    if jl >= 0 {
                        let dst = grad + start * h + (pair - start)
                        for x in 0..<h { dst[x * count] += row[jl * hp + x] }
                    }
                }
            }
        }
        return kl
    }

    /// Σ over (head, query position) of KL(P‖P̂) for one sequence (not yet averaged). W_blk
    /// (`rows` × `columns` × lanes) row of query feature f is `queryRow[f]`, column of key feature
    /// f is `keyColumn[f]` (every feature of the sequence must have one). With `blockGrad`, adds
    /// dL/dW_blk · rowScale into it, where L is that KL sum; `plogp` is the sequence's Σ P log P
    /// (constant in the mask).
    func run(_ seq: PairMapSequence, block wl: UnsafePointer<Float>, blockGrad gl: UnsafeMutablePointer<Float>?,
             queryRow: UnsafePointer<Int32>, keyColumn: UnsafePointer<Int32>, rows: Int, columns uk: Int,
             keyBiasTable: UnsafePointer<Float>, plogp: Double, rowScale: Float) -> Double {
        let t = seq.length, hp = lanes
        if t == 0 { return 0 }
        qIdx.removeAll(keepingCapacity: true)
        for f in seq.query.indices { qIdx.append(queryRow[Int(f)]) }
        kIdx.removeAll(keepingCapacity: true)
        for f in seq.key.indices { kIdx.append(keyColumn[Int(f)]) }
        let stride = Int(qk_pairmap_score_stride(Int64(hp)))
        let up = u.reserve(t * uk * hp, zeroed: false)
        let sc = scores.reserve(t * stride, zeroed: false)
        let tg = target.reserve(t * stride, zeroed: false)
        let kb = keyBias.reserve(t * stride, zeroed: false)
        let st = stats.reserve(8 * stride, zeroed: false)
        if order.count < 2 * qIdx.count { order = [Int32](repeating: 0, count: 2 * qIdx.count) }
        if rowStart.count < rows + 1 { rowStart = [Int32](repeating: 0, count: rows + 1) }
        let cross = seq.query.rowStart.withUnsafeBufferPointer { qs in
        seq.query.values.withUnsafeBufferPointer { qv in
        seq.key.rowStart.withUnsafeBufferPointer { ks in
        seq.key.values.withUnsafeBufferPointer { kv in
        seq.key.indices.withUnsafeBufferPointer { kf in
        seq.pattern.data.withUnsafeBufferPointer { pat in
        qIdx.withUnsafeBufferPointer { qi in
        kIdx.withUnsafeBufferPointer { kc in
        order.withUnsafeMutableBufferPointer { ord in
        rowStart.withUnsafeMutableBufferPointer { rst in
            qs.withMemoryRebound(to: Int64.self) { qs64 in
            ks.withMemoryRebound(to: Int64.self) { ks64 in
                var args = QKPairMapSequence(
                    length: Int64(t), heads: Int64(nHead), lanes: Int64(hp), columns: Int64(uk), rows: Int64(rows),
                    causal: causal ? 1 : 0, row_scale: rowScale, block: wl, block_grad: gl,
                    query_start: qs64.baseAddress, query_row: qi.baseAddress, query_value: qv.baseAddress,
                    key_start: ks64.baseAddress, key_column: kc.baseAddress, key_feature: kf.baseAddress, key_value: kv.baseAddress,
                    key_bias_table: keyBiasTable, pattern: pat.baseAddress, u: up, scores: sc, target: tg, key_bias: kb,
                    stats: st, order: ord.baseAddress, row_start: rst.baseAddress)
                return qk_pairmap_cross_entropy(&args)
            }}
        }}}}}}}}}}
        return cross + plogp
    }
}

/// A growable scratch buffer owned by one thread.
struct Buffer {
    private(set) var pointer = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var capacity = 1

    mutating func reserve(_ n: Int, zeroed: Bool) -> UnsafeMutablePointer<Float> {
        if n > capacity {
            pointer.deallocate()
            capacity = max(n, capacity * 2)
            pointer = .allocate(capacity: capacity)
        }
        if zeroed { pointer.initialize(repeating: 0, count: n) }
        return pointer
    }

    func free() { pointer.deallocate() }
}
