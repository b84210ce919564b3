import QKTensor

/// One transcoder's weights in the layout the trainer works in, and the same layout for its
/// gradients and Adam moments.
///
/// The encoder is stored transposed (`encoderT` is `[d_hidden, d_in]`, i.e. `W_encᵀ`), so that
/// the sparse encoder backward — one `axpy` of x into the row of each active feature — writes
/// contiguous memory. The forward GEMM reads it with `transB`, at the same speed. `Transcoder`
/// (SAELens layout, `W_enc [d_in, d_hidden]`) is produced on export.
public struct TranscoderParameters: Sendable, Equatable {
    public var dIn: Int, dHidden: Int, dOut: Int
    /// `[d_hidden, d_in]`: row i is feature i's encoder direction.
    public var encoderT: [Float]
    public var bEnc: [Float]
    /// `[d_hidden, d_out]`: row i is feature i's decoder direction.
    public var wDec: [Float]
    public var bDec: [Float]

    /// All zeros (the shape of a gradient or an Adam moment).
    public init(zerosIn dIn: Int, hidden: Int, out: Int) {
        self.dIn = dIn; dHidden = hidden; dOut = out
        encoderT = [Float](repeating: 0, count: hidden * dIn); bEnc = [Float](repeating: 0, count: hidden)
        wDec = [Float](repeating: 0, count: hidden * out); bDec = [Float](repeating: 0, count: out)
    }

    /// Initialisation:
    /// - decoder rows are random directions of unit norm (the decoder-norm-weighted penalty then
    ///   starts every feature on an equal footing);
    /// - the encoder starts tied to the decoder (`W_enc = W_decᵀ` scaled) when d_in == d_out, so
    ///   a feature first fires on inputs that point where it writes; when the sizes differ there is
    ///   nothing to tie to and the encoder rows are independent random unit directions;
    /// - `b_enc` = 0; `b_dec` = the mean target over the first batch (`dataMean`), so training
    ///   starts from the best constant reconstruction rather than spending its first steps there.
    /// The encoder is scaled by `encoderScale / rms(‖x‖)` so pre-activations start O(encoderScale).
    public init(dIn: Int, hidden: Int, out: Int, dataMean: [Float]?, inputNorm: Float,
                encoderScale: Float = 1, rng: inout TrainingRandom) {
        self.init(zerosIn: dIn, hidden: hidden, out: out)
        func unitRows(_ rows: Int, _ cols: Int) -> [Float] {
            var w = [Float](repeating: 0, count: rows * cols)
            for r in 0..<rows {
                var n: Float = 0
                for c in 0..<cols { let v = rng.normal(); w[r * cols + c] = v; n += v * v }
                let inv = 1 / max(n.squareRoot(), 1e-12)
                for c in 0..<cols { w[r * cols + c] *= inv }
            }
            return w
        }
        wDec = unitRows(hidden, out)
        encoderT = dIn == out ? wDec : unitRows(hidden, dIn)
        let s = encoderScale / max(inputNorm, 1e-6)
        for i in 0..<encoderT.count { encoderT[i] *= s }
        if let dataMean, dataMean.count == out { bDec = dataMean }
    }

    public var parameterCount: Int { encoderT.count + bEnc.count + wDec.count + bDec.count }

    /// ‖W_dec[i]‖ for every feature.
    public func decoderNorms() -> [Float] {
        var out = [Float](repeating: 0, count: dHidden)
        wDec.withUnsafeBufferPointer { w in
            for i in 0..<dHidden { out[i] = BLAS.dot(dOut, w.baseAddress! + i * dOut, w.baseAddress! + i * dOut).squareRoot() }
        }
        return out
    }

    /// The SAELens-layout transcoder (`W_enc [d_in, d_hidden]`).
    public func transcoder(activation: TranscoderActivation, firstPositionFeature: Int? = nil) -> Transcoder {
        var enc = [Float](repeating: 0, count: dIn * dHidden)
        for i in 0..<dHidden { for j in 0..<dIn { enc[j * dHidden + i] = encoderT[i * dIn + j] } }
        return Transcoder(wEnc: Tensor(shape: [dIn, dHidden], data: enc), bEnc: Tensor(shape: [dHidden], data: bEnc),
                          wDec: Tensor(shape: [dHidden, dOut], data: wDec), bDec: Tensor(shape: [dOut], data: bDec),
                          activation: activation, firstPositionFeature: firstPositionFeature)
    }

    /// Makes feature `f` the first-position feature. Its activation is set (1 at each sequence's
    /// first position), never encoded, so it gets no encoder gradient; its decoder row starts at
    /// `meanFirstKey − b_dec` (q̂·k̂ at position 0 starts right) and is learned.
    ///
    /// Its encoder is still made meaningful, for anyone who applies the exported dictionary to
    /// activations themselves: when the first positions' inputs `x` (`[rows, d_in]`, sequences of
    /// `sequenceLength`) are separable from the rest along d = mean(first) − mean(rest) — [CLS] and
    /// BOS are — the encoder is set to pre(x) = 1 − k·⟨d, mean(first) − x⟩ with k chosen so that
    /// pre ≈ 1 on first positions and pre ≤ −1 on every other row seen; otherwise it is switched
    /// off (zero weights, b_enc = −1e4).
    public mutating func setFirstPositionFeature(_ f: Int, meanFirstKey: [Float], x: [Float], rows: Int, sequenceLength t: Int) {
        precondition(f >= 0 && f < dHidden && meanFirstKey.count == dOut && x.count == rows * dIn && t > 0)
        for c in 0..<dOut { wDec[f * dOut + c] = meanFirstKey[c] - bDec[c] }
        for j in 0..<dIn { encoderT[f * dIn + j] = 0 }
        bEnc[f] = -1e4
        var first = [Double](repeating: 0, count: dIn), rest = [Double](repeating: 0, count: dIn)
        var nFirst = 0, nRest = 0
        for r in 0..<rows {
            if r % t == 0 { nFirst += 1; for j in 0..<dIn { first[j] += Double(x[r * dIn + j]) } }
            else { nRest += 1; for j in 0..<dIn { rest[j] += Double(x[r * dIn + j]) } }
        }
        guard nFirst > 0, nRest > 0 else { return }
        let mu0 = first.map { $0 / Double(nFirst) }
        var d = (0..<dIn).map { mu0[$0] - rest[$0] / Double(nRest) }
        let norm = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard norm > 0 else { return }
        d = d.map { $0 / norm }
        // Margins along d: how far below mean(first) each row sits.
        var worstFirst = 0.0, closestRest = Double.infinity
        for r in 0..<rows {
            var m = 0.0
            for j in 0..<dIn { m += d[j] * (mu0[j] - Double(x[r * dIn + j])) }
            if r % t == 0 { worstFirst = max(worstFirst, m) } else { closestRest = min(closestRest, m) }
        }
        guard closestRest > 4 * worstFirst, closestRest > 0 else { return }
        let k = 2 / closestRest
        var dotMu = 0.0
        for j in 0..<dIn { encoderT[f * dIn + j] = Float(k * d[j]); dotMu += d[j] * mu0[j] }
        bEnc[f] = Float(1 - k * dotMu)
    }

    /// Back from the SAELens layout.
    public init(_ t: Transcoder) {
        self.init(zerosIn: t.dIn, hidden: t.dHidden, out: t.dOut)
        for i in 0..<dHidden { for j in 0..<dIn { encoderT[i * dIn + j] = t.wEnc.data[j * dHidden + i] } }
        bEnc = t.bEnc.data; wDec = t.wDec.data; bDec = t.bDec.data
    }

    /// Calls `body` on each of the four tensors of `self` and `other` side by side (Adam, clipping).
    mutating func forEachTensor(with other: TranscoderParameters,
                                _ body: (inout [Float], [Float]) -> Void) {
        body(&encoderT, other.encoderT); body(&bEnc, other.bEnc); body(&wDec, other.wDec); body(&bDec, other.bDec)
    }

    mutating func zero() {
        for i in encoderT.indices { encoderT[i] = 0 }
        for i in bEnc.indices { bEnc[i] = 0 }
        for i in wDec.indices { wDec[i] = 0 }
        for i in bDec.indices { bDec[i] = 0 }
    }

    /// Σ of squared entries over all four tensors (for gradient-norm clipping).
    func squaredNorm() -> Double {
        var s: Double = 0
        for a in [encoderT, bEnc, wDec, bDec] {
            a.withUnsafeBufferPointer { s += Double(BLAS.dot(a.count, $0.baseAddress!, $0.baseAddress!)) }
        }
        return s
    }

    mutating func scale(by f: Float) {
        for i in encoderT.indices { encoderT[i] *= f }
        for i in bEnc.indices { bEnc[i] *= f }
        for i in wDec.indices { wDec[i] *= f }
        for i in bDec.indices { bDec[i] *= f }
    }
}

extension TranscoderParameters {
    /// Sets each b_enc[i] so feature i fires on about `density` of the given inputs' tokens.
    ///
    /// Without this, a tied or random encoder with b_enc = 0 fires on about half the tokens for
    /// every feature: the first steps then run dense (hundreds of active features per token) and
    /// the sparse backward is no cheaper than a dense one. Starting near the target sparsity
    /// keeps every step sparse, and no feature starts dead.
    public mutating func calibrateEncoderBias(x: [Float], rows: Int, density: Double) {
        guard rows > 0, density > 0, density < 1 else { return }
        let h = dHidden, d = dIn
        var pre = [Float](repeating: 0, count: rows * h)
        x.withUnsafeBufferPointer { xb in encoderT.withUnsafeBufferPointer { e in pre.withUnsafeMutableBufferPointer { p in
            BLAS.gemm(transB: true, m: rows, n: h, k: d, xb.baseAddress!, e.baseAddress!, p.baseAddress!)
        }}}
        let rank = min(rows - 1, max(0, Int((1 - density) * Double(rows))))
        var column = [Float](repeating: 0, count: rows)
        for i in 0..<h {
            for r in 0..<rows { column[r] = pre[r * h + i] }
            column.sort()
            bEnc[i] = -column[rank]
        }
    }
}
