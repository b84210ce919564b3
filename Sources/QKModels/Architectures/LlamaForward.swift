import Foundation
import QKTensor

/// The forward pass. All positions of the batch go through each projection as one GEMM over
/// `[batch·pos, ·]` rows; attention is one small GEMM pair per (sequence, head), spread over
/// the cores. No KV cache: qkdb always runs whole sequences.
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
        // on a shared machine); instead every GEMM here is split by rows over the cores, each
        // part single-threaded, as the elementwise work between them already is.
        let blasThreads = BLAS.threads
        if Parallel.cores > 1 { BLAS.setThreads(1) }
        defer { if Parallel.cores > 1 { BLAS.setThreads(blasThreads) } }
        let tables = rope.tables(positions: T)
        let scale = 1 / Float(dh).squareRoot()

        var h = [Float](repeating: 0, count: N * d)            // residual stream
        var x = [Float](repeating: 0, count: N * d)            // normed input of a sublayer
        var qkv = [Float](repeating: 0, count: N * qkvDim)
        var attn = [Float](repeating: 0, count: N * qDim)      // heads' outputs, concatenated
        var pattern = [Float](repeating: 0, count: B * nH * T * T)
        var ff = [Float](repeating: 0, count: N * 2 * dFF)

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
            // Attention sublayer: x = RMSNorm(h); [q k v] = x · [W_Q; W_K; W_V]ᵀ.
            copyNorm(h, into: &x, rows: N, n: d, gamma: w.attnNorm)
            gemm(x, w.qkv, into: &qkv, m: N, n: qkvDim, k: d)
            var preRoPE: (q: [Float], k: [Float])?
            if l == captureLayer { preRoPE = (columns(qkv, rows: N, stride: qkvDim, from: 0, count: qDim),
                                              columns(qkv, rows: N, stride: qkvDim, from: qDim, count: kvDim)) }
            applyRoPE(&qkv, batch: B, length: T, stride: qkvDim, tables: tables)
            let patched = patch?.layer == l ? patch?.pattern.data : nil
            attention(qkv: qkv, into: &attn, pattern: &pattern, batch: B, length: T, scale: scale, patched: patched)
            if l == captureLayer, let preRoPE {
                onCapture(LayerCapture(layer: l, attnIn: Tensor(shape: [B, T, d], data: x),
                                       q: Tensor(shape: [B, T, nH, dh], data: preRoPE.q),
                                       k: Tensor(shape: [B, T, nKV, dh], data: preRoPE.k),
                                       pattern: Tensor(shape: [B, nH, T, T], data: pattern)))
            }
            if l == stopAfter {
                return ModelOutput(logits: nil, hidden: Tensor(shape: [B, T, d], data: h), pooled: Tensor(zeros: [B, d]))
            }
            gemm(attn, w.out, into: &h, m: N, n: d, k: qDim, accumulate: true)

            // MLP sublayer: h += W_down · (silu(gate) ⊙ up), with [gate up] = x · [W_gate; W_up]ᵀ.
            copyNorm(h, into: &x, rows: N, n: d, gamma: w.ffnNorm)
            gemm(x, w.gateUp, into: &ff, m: N, n: 2 * dFF, k: d)
            swiglu(&ff, rows: N, dFF: dFF)
            gemm(ff, w.down, into: &h, m: N, n: d, k: dFF, lda: 2 * dFF, accumulate: true)
        }

        copyNorm(h, into: &x, rows: N, n: d, gamma: weights.finalNorm)
        var logits = [Float](repeating: 0, count: N * config.vocabSize)
        gemm(x, weights.lmHead ?? weights.embedding, into: &logits, m: N, n: config.vocabSize, k: d)
        var pooled = [Float](repeating: 0, count: B * d)
        for b in 0..<B { for t in 0..<T { for i in 0..<d { pooled[b * d + i] += x[(b * T + t) * d + i] } } }
        for i in 0..<(B * d) { pooled[i] /= Float(T) }
        return ModelOutput(logits: Tensor(shape: [B, T, config.vocabSize], data: logits),
                           hidden: Tensor(shape: [B, T, d], data: x), pooled: Tensor(shape: [B, d], data: pooled))
    }

    /// out[m, n] (+)= a[m, k] · wᵀ, w stored `[n, k]`, `a` rows `lda` apart. Rows are split
    /// across the cores, each slice one single-threaded GEMM (see `run`).
    private func gemm(_ a: [Float], _ w: [Float], into out: inout [Float], m: Int, n: Int, k: Int, lda: Int? = nil, accumulate: Bool = false) {
        let lda = lda ?? k
        a.withUnsafeBufferPointer { ap in
            w.withUnsafeBufferPointer { wp in
                out.withUnsafeMutableBufferPointer { op in
                    let a0 = ap.baseAddress!, w0 = wp.baseAddress!, o0 = op.baseAddress!
                    Parallel.forRanges(m, minimumPerChunk: 64) { range in let r0 = range.lowerBound, r1 = range.upperBound;
                        BLAS.gemm(transB: true, m: r1 - r0, n: n, k: k, a0 + r0 * lda, lda: lda, w0,
                                  beta: accumulate ? 1 : 0, o0 + r0 * n)
                    }
                }
            }
        }
    }

    private func copyNorm(_ h: [Float], into x: inout [Float], rows: Int, n: Int, gamma: [Float]) {
        let eps = weights.rmsEps
        x.withUnsafeMutableBufferPointer { xp in
            h.withUnsafeBufferPointer { xp.baseAddress!.update(from: $0.baseAddress!, count: rows * n) }
            gamma.withUnsafeBufferPointer { g in
                let base = xp.baseAddress!
                Parallel.forRanges(rows, minimumPerChunk: 16) { range in let r0 = range.lowerBound, r1 = range.upperBound; Ops.rmsNormRows(base + r0 * n, rows: r1 - r0, n: n, gamma: g.baseAddress!, eps: eps) }
            }
        }
    }

    /// A contiguous copy of `count` columns starting at `from` of a `[rows, stride]` matrix.
    private func columns(_ m: [Float], rows: Int, stride: Int, from: Int, count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * count)
        m.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows { (dst.baseAddress! + r * count).update(from: src.baseAddress! + r * stride + from, count: count) }
            }
        }
        return out
    }

    /// Rotates the q and k columns of the fused projection in place, position t of each
    /// sequence by angle t·ω (rotate-half layout, as the weights were un-permuted at load).
    private func applyRoPE(_ qkv: inout [Float], batch: Int, length: Int, stride: Int, tables: (cos: [Float], sin: [Float])) {
        let dh = config.dHead, half = dh / 2, heads = config.nHead + config.nKVHead
        qkv.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            tables.cos.withUnsafeBufferPointer { cp in
                tables.sin.withUnsafeBufferPointer { sp in
                    Parallel.forRanges(batch * length, minimumPerChunk: 16) { range in let r0 = range.lowerBound, r1 = range.upperBound;
                        for r in r0..<r1 {
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

    /// Causal softmax attention for every (sequence, head). Scores = q·kᵀ/√d_head with -inf
    /// above the diagonal; `patched`, when given, replaces the softmax output.
    private func attention(qkv: [Float], into out: inout [Float], pattern: inout [Float], batch B: Int, length T: Int,
                           scale: Float, patched: [Float]?) {
        let nH = config.nHead, dh = config.dHead, qDim = nH * dh, kvDim = config.nKVHead * dh
        let stride = qDim + 2 * kvDim
        qkv.withUnsafeBufferPointer { qp in
            out.withUnsafeMutableBufferPointer { op in
                pattern.withUnsafeMutableBufferPointer { pp in
                    let q = qp.baseAddress!, o = op.baseAddress!, pat = pp.baseAddress!
                    Parallel.forRanges(B * nH, minimumPerChunk: 1) { range in let j0 = range.lowerBound, j1 = range.upperBound;
                        for job in j0..<j1 {
                            let b = job / nH, hd = job % nH, g = config.kvHead(of: hd)
                            let rows = q + b * T * stride
                            let p = pat + job * T * T
                            if let patched {
                                patched.withUnsafeBufferPointer { (p).update(from: $0.baseAddress! + job * T * T, count: T * T) }
                            } else {
                                BLAS.gemm(transB: true, m: T, n: T, k: dh, alpha: scale, rows + hd * dh, lda: stride,
                                          rows + qDim + g * dh, ldb: stride, p)
                                Ops.applyCausalMask(p, q: T, k: T)
                                Ops.softmaxRows(p, rows: T, n: T)
                            }
                            BLAS.gemm(m: T, n: dh, k: T, p, rows + qDim + kvDim + g * dh, ldb: stride,
                                      o + b * T * qDim + hd * dh, ldc: qDim)
                        }
                    }
                }
            }
        }
    }

    /// ff = [gate | up] per row → silu(gate) ⊙ up, written over the gate half.
    private func swiglu(_ ff: inout [Float], rows: Int, dFF: Int) {
        ff.withUnsafeMutableBufferPointer { fp in
            let base = fp.baseAddress!
            Parallel.forRanges(rows, minimumPerChunk: 16) { range in let r0 = range.lowerBound, r1 = range.upperBound;
                for r in r0..<r1 {
                    let g = base + r * 2 * dFF, u = g + dFF
                    for i in 0..<dFF { let z = g[i]; g[i] = z / (1 + expf(-z)) * u[i] }
                }
            }
        }
    }
}
