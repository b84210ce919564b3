import QKTensor

/// The transcoder's encoder and decoder in training layout, each forward beside its backward.
///
/// Only the encoder forward is dense (one GEMM over all features: which features fire is not
/// known until it is done). Everything after it — decoding, the decoder and encoder gradients,
/// the sparsity penalty — visits only the active (token, feature) pairs, ~15–30 per token.
enum SparseCoding {
    // MARK: encoder

    /// a = act(x · W_enc + b_enc) for `[rows, d_in]` inputs, returned in CSR form.
    /// ReLU keeps every positive pre-activation; TopK keeps the k largest positive ones.
    static func encode(_ p: TranscoderParameters, activation: TranscoderActivation,
                       x: UnsafePointer<Float>, rows: Int, threads: Int) -> SparseActivations {
        let h = p.dHidden, d = p.dIn
        var pre = [Float](repeating: 0, count: rows * h)
        var parts = [SparseActivations](repeating: SparseActivations(width: h), count: max(1, threads))
        pre.withUnsafeMutableBufferPointer { preBuf in
            let preBase = preBuf.baseAddress!
            p.encoderT.withUnsafeBufferPointer { e in
                p.bEnc.withUnsafeBufferPointer { b in
                    parts.withUnsafeMutableBufferPointer { partBuf in
                        Parallel.forEachRange(rows, ways: threads) { t, r in
                            guard !r.isEmpty else { return }
                            let c = preBase + r.lowerBound * h
                            for row in 0..<r.count { (c + row * h).update(from: b.baseAddress!, count: h) }
                            BLAS.gemm(transB: true, m: r.count, n: h, k: d, x + r.lowerBound * d, e.baseAddress!, beta: 1, c)
                            var out = SparseActivations(width: h)
                            out.indices.reserveCapacity(r.count * 32); out.values.reserveCapacity(r.count * 32)
                            out.rowStart.reserveCapacity(r.count + 1)
                            for row in 0..<r.count { sparsifyRow(c + row * h, width: h, activation: activation, into: &out) }
                            partBuf[t] = out
                        }
                    }
                }
            }
        }
        return merge(parts, width: h)
    }

    /// Appends one row's active features (ascending index) to `out`.
    @inline(__always)
    static func sparsifyRow(_ pre: UnsafePointer<Float>, width h: Int, activation: TranscoderActivation,
                            into out: inout SparseActivations) {
        switch activation {
        case .relu:
            for i in 0..<h where pre[i] > 0 { out.indices.append(Int32(i)); out.values.append(pre[i]) }
        case .topK(let k):
            // Keep a small ascending list of the k best; most entries fail the threshold test.
            var best: [(Float, Int32)] = []
            best.reserveCapacity(k + 1)
            for i in 0..<h {
                let v = pre[i]
                guard v > 0, best.count < k || v > best[0].0 else { continue }
                var pos = 0
                while pos < best.count && best[pos].0 < v { pos += 1 }
                best.insert((v, Int32(i)), at: pos)
                if best.count > k { best.removeFirst() }
            }
            best.sort { $0.1 < $1.1 }
            for (v, i) in best { out.indices.append(i); out.values.append(v) }
        }
        out.rowStart.append(out.indices.count)
    }

    static func merge(_ parts: [SparseActivations], width: Int) -> SparseActivations {
        if parts.count == 1 { return parts[0] }
        var out = SparseActivations(width: width)
        for p in parts {
            let base = out.indices.count
            out.indices.append(contentsOf: p.indices); out.values.append(contentsOf: p.values)
            for r in 1..<p.rowStart.count { out.rowStart.append(base + p.rowStart[r]) }
        }
        return out
    }

    // MARK: decoder

    /// out = a · W_dec + b_dec, `[rows, d_out]`, touching only active decoder rows.
    static func decode(_ p: TranscoderParameters, _ a: SparseActivations, into out: UnsafeMutablePointer<Float>, threads: Int) {
        let n = p.dOut
        p.wDec.withUnsafeBufferPointer { w in
            p.bDec.withUnsafeBufferPointer { b in
                a.indices.withUnsafeBufferPointer { idx in
                    a.values.withUnsafeBufferPointer { val in
                        Parallel.forEachRange(a.rows, ways: threads) { _, r in
                            for row in r {
                                let dst = out + row * n
                                dst.update(from: b.baseAddress!, count: n)
                                for e in a.rowStart[row]..<a.rowStart[row + 1] {
                                    BLAS.axpy(n, val[e], w.baseAddress! + Int(idx[e]) * n, dst)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: penalty

    /// The sparsity penalty of the reference code, weighted by decoder norm:
    ///     λ · Σ_(token, active i) (sqrt(a_i + ε) − sqrt(ε)) · ‖W_dec[i]‖
    /// summed (not averaged) over the batch's tokens. The sqrt makes it an L0.5-like penalty:
    /// small activations cost relatively more than under L1, pushing them to exactly zero. The
    /// decoder-norm weight stops the optimiser from shrinking activations by growing decoder rows.
    /// Subtracting sqrt(ε) makes inactive features cost exactly 0, so only active pairs matter.
    /// The first-position feature (`fixed`) is not chosen by the encoder, so it pays nothing.
    static func penalty(_ a: SparseActivations, decoderNorms: [Float], lambda: Float, epsilon: Float, fixed: Int? = nil) -> Double {
        var s: Double = 0
        let se = epsilon.squareRoot(), skip = Int32(fixed ?? -1)
        for e in 0..<a.nonZeros where a.indices[e] != skip {
            s += Double(((a.values[e] + epsilon).squareRoot() - se) * decoderNorms[Int(a.indices[e])])
        }
        return Double(lambda) * s
    }

    // MARK: backward of decoder, penalty and encoder together

    /// Given dL/d(out) `[rows, d_out]`, accumulates into `g` the gradients of decoder, penalty and
    /// encoder. Per active (token p, feature i):
    ///     dW_dec[i] += a_i · dout_p                   (decoder)
    ///     da_i       = ⟨W_dec[i], dout_p⟩ + λ‖W_dec[i]‖ / (2 sqrt(a_i + ε))
    ///     dW_encᵀ[i] += da_i · x_p,  db_enc[i] += da_i  (ReLU/TopK pass the gradient only where active)
    /// and per feature, from the penalty's decoder-norm weight:
    ///     dW_dec[i] += λ · Σ_p (sqrt(a_i+ε) − sqrtε) · W_dec[i] / ‖W_dec[i]‖
    /// The first-position feature (`fixed`) gets its decoder gradient only: its activation is set,
    /// not encoded, and it pays no penalty.
    /// Threads own features by residue (i mod threads), so no two write the same row.
    static func backward(_ p: TranscoderParameters, _ a: SparseActivations, x: UnsafePointer<Float>,
                         dOut: UnsafePointer<Float>, decoderNorms: [Float], lambda: Float, epsilon: Float,
                         fixed: Int? = nil, into g: inout TranscoderParameters, threads: Int) {
        let n = p.dOut, d = p.dIn, rows = a.rows
        // b_dec: column sums of dOut.
        g.bDec.withUnsafeMutableBufferPointer { gb in
            for r in 0..<rows { BLAS.axpy(n, 1, dOut + r * n, gb.baseAddress!) }
        }
        let se = epsilon.squareRoot()
        let ways = max(1, threads)
        p.wDec.withUnsafeBufferPointer { w in
            decoderNorms.withUnsafeBufferPointer { norms in
                a.indices.withUnsafeBufferPointer { idx in
                    a.values.withUnsafeBufferPointer { val in
                        g.wDec.withUnsafeMutableBufferPointer { gw in
                            g.encoderT.withUnsafeMutableBufferPointer { ge in
                                g.bEnc.withUnsafeMutableBufferPointer { gbe in
                                    var normCoef = [Float](repeating: 0, count: p.dHidden)
                                    normCoef.withUnsafeMutableBufferPointer { coef in
                                        Parallel.forEachThread(ways) { t in
                                            for row in 0..<rows {
                                                let dout = dOut + row * n, xp = x + row * d
                                                for e in a.rowStart[row]..<a.rowStart[row + 1] {
                                                    let i = Int(idx[e])
                                                    guard i % ways == t else { continue }
                                                    let ai = val[e]
                                                    let wi = w.baseAddress! + i * n
                                                    BLAS.axpy(n, ai, dout, gw.baseAddress! + i * n)
                                                    if i == fixed { continue }
                                                    var da = BLAS.dot(n, wi, dout)
                                                    if lambda != 0 {
                                                        let root = (ai + epsilon).squareRoot()
                                                        da += lambda * norms[i] / (2 * root)
                                                        coef[i] += root - se
                                                    }
                                                    BLAS.axpy(d, da, xp, ge.baseAddress! + i * d)
                                                    gbe[i] += da
                                                }
                                            }
                                        }
                                        if lambda != 0 {
                                            for i in 0..<p.dHidden where coef[i] != 0 && norms[i] > 0 {
                                                BLAS.axpy(n, lambda * coef[i] / norms[i], w.baseAddress! + i * n, gw.baseAddress! + i * n)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
