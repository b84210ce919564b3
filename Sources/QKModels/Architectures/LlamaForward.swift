import Foundation
import QKTensor

/// The forward pass. All positions of the batch go through each projection as one GEMM over
/// `[batch·pos, ·]` rows; attention is the shared `AttentionKernel` (one small GEMM pair per
/// sequence and head, query head h reading kv head h / (n_head / n_kv_head)). No KV cache: qkdb
/// always runs whole sequences.
extension LlamaModel {
    func run(_ tokens: TokenBatch, stopAfter: Int?, captureLayer: Int?, patch: PatternPatch?,
             onCapture: (LayerCapture) -> Void) throws -> ModelOutput {
        try validate(tokens)
        let B = tokens.batch, T = tokens.length, N = B * T
        let d = config.dModel, nH = config.nHead, nKV = config.nKVHead, dh = config.dHead
        let qDim = nH * dh, kvDim = nKV * dh, qkvDim = qDim + 2 * kvDim, dFF = weights.dFF
        if let patch {
            guard (0..<config.nLayer).contains(patch.layer) else {
                throw ModelError("\(source): pattern patch names layer \(patch.layer); the model has layers 0…\(config.nLayer - 1)")
            }
            guard patch.pattern.shape == [B, nH, T, T] else {
                throw ModelError("\(source): pattern patch for layer \(patch.layer) has shape \(patch.pattern.shape), expected \([B, nH, T, T])")
            }
        }
        // OpenBLAS' own threads spin-wait between calls and fight the cores' other work (badly so
        // on a shared machine: 3× slower, measured); instead every GEMM here is split by rows
        // over the cores, each part single-threaded, as the elementwise work between them is.
        let blasThreads = BLAS.threads
        if Parallel.cores > 1 { BLAS.setThreads(1) }
        defer { if Parallel.cores > 1 { BLAS.setThreads(blasThreads) } }
        let tables = rope.tables(positions: T)
        let attention = AttentionKernel(batch: B, length: T, nHead: nH, nKVHead: nKV, dHead: dh, causal: true,
                                        scale: 1 / Float(dh).squareRoot())

        // Not zero-filled: each buffer is written in full before it is read.
        var h = uninitialisedFloats(N * d)            // residual stream
        var x = uninitialisedFloats(N * d)            // normed input of a sublayer
        var qkv = uninitialisedFloats(N * qkvDim)
        var z = uninitialisedFloats(N * qDim)         // heads' outputs, concatenated
        var pattern = uninitialisedFloats(B * nH * T * T)
        var ff = uninitialisedFloats(N * 2 * dFF)

        weights.embedding.withUnsafeBufferPointer { e in
            h.withUnsafeMutableBufferPointer { hp in
                for (i, id) in tokens.ids.enumerated() {
                    (hp.baseAddress! + i * d).update(from: e.baseAddress! + Int(id) * d, count: d)
                }
            }
        }

        let lastLayer = stopAfter ?? (config.nLayer - 1)
        for l in 0...lastLayer {
            let w = weights.layers[l]
            // Attention sublayer: x = RMSNorm(h); [q k v] = x · [W_Q; W_K; W_V]ᵀ; RoPE on q and k.
            copyNorm(h, into: &x, rows: N, n: d, gamma: w.attnNorm)
            gemm(x, w.qkv, into: &qkv, m: N, n: qkvDim, k: d)
            var preRoPE: (q: [Float], k: [Float])?
            if l == captureLayer { preRoPE = (columns(qkv, rows: N, stride: qkvDim, from: 0, count: qDim),
                                              columns(qkv, rows: N, stride: qkvDim, from: qDim, count: kvDim)) }
            applyRoPE(&qkv, batch: B, length: T, stride: qkvDim, tables: tables)
            let replacement = patch?.layer == l ? patch?.pattern : nil
            qkv.withUnsafeBufferPointer { qp in
                z.withUnsafeMutableBufferPointer { zp in
                    pattern.withUnsafeMutableBufferPointer { pp in
                        let base = qp.baseAddress!, patternOut = pp.baseAddress!, zOut = zp.baseAddress!
                        let attend = { (replacing: UnsafePointer<Float>?) in
                            attention.run(q: base, qStride: qkvDim, k: base + qDim, kStride: qkvDim,
                                          v: base + qDim + kvDim, vStride: qkvDim,
                                          pattern: patternOut, replacement: replacing, z: zOut)
                        }
                        if let replacement { replacement.data.withUnsafeBufferPointer { attend($0.baseAddress!) } } else { attend(nil) }
                    }
                }
            }
            if l == captureLayer, let preRoPE {
                onCapture(LayerCapture(layer: l, attnIn: Tensor(shape: [B, T, d], data: x),
                                       q: Tensor(shape: [B, T, nH, dh], data: preRoPE.q),
                                       k: Tensor(shape: [B, T, nKV, dh], data: preRoPE.k),
                                       pattern: Tensor(shape: [B, nH, T, T], data: pattern)))
            }
            if l == stopAfter {
                return ModelOutput(logits: nil, hidden: Tensor(shape: [B, T, d], data: h), pooled: Tensor(zeros: [B, d]))
            }
            gemm(z, w.out, into: &h, m: N, n: d, k: qDim, accumulate: true)

            // MLP sublayer: h += W_down · (silu(gate) ⊙ up), with [gate up] = x · [W_gate; W_up]ᵀ.
            copyNorm(h, into: &x, rows: N, n: d, gamma: w.ffnNorm)
            gemm(x, w.gateUp, into: &ff, m: N, n: 2 * dFF, k: d)
            swiglu(&ff, rows: N, dFF: dFF)
            gemm(ff, w.down, into: &h, m: N, n: d, k: dFF, lda: 2 * dFF, accumulate: true)
        }

        copyNorm(h, into: &x, rows: N, n: d, gamma: weights.finalNorm)
        var logits = uninitialisedFloats(N * config.vocabSize)
        gemm(x, weights.lmHead ?? weights.embedding, into: &logits, m: N, n: config.vocabSize, k: d)
        let pooled = x.withUnsafeBufferPointer { meanPool($0.baseAddress!, batch: B, length: T, width: d) }
        return ModelOutput(logits: Tensor(shape: [B, T, config.vocabSize], data: logits),
                           hidden: Tensor(shape: [B, T, d], data: x), pooled: pooled)
    }

    /// out[m, n] (+)= a[m, k] · wᵀ, w stored `[n, k]`, `a` rows `lda` apart. Rows are split
    /// across the cores, each slice one single-threaded GEMM (see `run`).
    private func gemm(_ a: [Float], _ w: [Float], into out: inout [Float], m: Int, n: Int, k: Int,
                      lda: Int? = nil, accumulate: Bool = false) {
        let lda = lda ?? k
        a.withUnsafeBufferPointer { ap in
            w.withUnsafeBufferPointer { wp in
                out.withUnsafeMutableBufferPointer { op in
                    let a0 = ap.baseAddress!, w0 = wp.baseAddress!, o0 = op.baseAddress!
                    Parallel.forRanges(m, minimumPerChunk: 64) { rows in
                        BLAS.gemm(transB: true, m: rows.count, n: n, k: k, a0 + rows.lowerBound * lda, lda: lda, w0,
                                  beta: accumulate ? 1 : 0, o0 + rows.lowerBound * n)
                    }
                }
            }
        }
    }

    /// x = RMSNorm(h) · gamma, row by row.
    private func copyNorm(_ h: [Float], into x: inout [Float], rows: Int, n: Int, gamma: [Float]) {
        let eps = weights.rmsEps
        x.withUnsafeMutableBufferPointer { xp in
            h.withUnsafeBufferPointer { xp.baseAddress!.update(from: $0.baseAddress!, count: rows * n) }
            gamma.withUnsafeBufferPointer { g in
                let base = xp.baseAddress!
                Parallel.forRanges(rows, minimumPerChunk: 16) { r in
                    Ops.rmsNormRows(base + r.lowerBound * n, rows: r.count, n: n, gamma: g.baseAddress!, eps: eps)
                }
            }
        }
    }

    /// A contiguous copy of `count` columns starting at `from` of a `[rows, stride]` matrix.
    private func columns(_ m: [Float], rows: Int, stride: Int, from: Int, count: Int) -> [Float] {
        m.withUnsafeBufferPointer { copyColumns($0.baseAddress!, rows: rows, stride: stride, from: from, columns: count) }
    }

    /// Rotates the q and k columns of the fused projection in place, position t of each
    /// sequence by angle t·ω (rotate-half layout, as the weights were un-permuted at load).
    private func applyRoPE(_ qkv: inout [Float], batch: Int, length: Int, stride: Int, tables: (cos: [Float], sin: [Float])) {
        let dh = config.dHead, half = dh / 2, heads = config.nHead + config.nKVHead
        qkv.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            tables.cos.withUnsafeBufferPointer { cp in
                tables.sin.withUnsafeBufferPointer { sp in
                    Parallel.forRanges(batch * length, minimumPerChunk: 16) { rows in
                        for r in rows {
                            let t = r % length
                            let c = cp.baseAddress! + t * half, s = sp.baseAddress! + t * half
                            for hd in 0..<heads {
                                let v = base + r * stride + hd * dh
                                for f in 0..<half {
                                    let a = v[f], b = v[f + half]
                                    v[f] = a * c[f] - b * s[f]
                                    v[f + half] = b * c[f] + a * s[f]
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// ff = [gate | up] per row → silu(gate) ⊙ up, written over the gate half;
    /// silu(g) = g / (1 + e^(−g)), eight lanes at a time.
    private func swiglu(_ ff: inout [Float], rows: Int, dFF: Int) {
        typealias V = VectorMath.V
        ff.withUnsafeMutableBufferPointer { fp in
            let base = fp.baseAddress!
            Parallel.forRanges(rows, minimumPerChunk: 16) { range in
                for r in range {
                    let g = base + r * 2 * dFF, u = g + dFF
                    var i = 0
                    while i + 8 <= dFF {
                        let gv = UnsafeRawPointer(g + i).loadUnaligned(as: V.self)
                        let uv = UnsafeRawPointer(u + i).loadUnaligned(as: V.self)
                        UnsafeMutableRawPointer(g + i).storeBytes(of: gv / (1 + VectorMath.exp(-gv)) * uv, as: V.self)
                        i += 8
                    }
                    while i < dFF { let gv = g[i]; g[i] = gv / (1 + expf(-gv)) * u[i]; i += 1 }
                }
            }
        }
    }
}

/// An array left as the allocator gives it (every caller overwrites it in full before reading).
private func uninitialisedFloats(_ n: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: n) { _, count in count = n }
}
