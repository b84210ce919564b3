// The step-2 kernel body, compiled twice by pairmap_kernel.c: once for the baseline x86-64 (or
// any other) target and once with AVX2+FMA, where every 8-lane vector below is one register and
// every `a += v * w` one fused multiply-add. KFN(name) gives each build its own names.
//
// Layout reminders: U[p] = Σ_i aQ_i(p) W[i] is [columns, lanes]; the score scratch is [s, stride]
// with stride = lanes rounded up to 8, so a key position's heads are whole 8-lane vectors and the
// softmax over s runs for all heads at once (lanes beyond the real heads stay 0 and are ignored).

static inline v8 KFN(ld8)(const float *p) { v8 v; __builtin_memcpy(&v, p, sizeof v); return v; }
static inline void KFN(st8)(float *p, v8 v) { __builtin_memcpy(p, &v, sizeof v); }
static inline v4 KFN(ld4)(const float *p) { v4 v; __builtin_memcpy(&v, p, sizeof v); return v; }
static inline void KFN(st4)(float *p, v4 v) { __builtin_memcpy(p, &v, sizeof v); }
static inline v8 KFN(widen)(v4 lo) { return __builtin_shufflevector(lo, (v4){0, 0, 0, 0}, 0, 1, 2, 3, 4, 5, 6, 7); }
static inline v4 KFN(low)(v8 x) { return __builtin_shufflevector(x, x, 0, 1, 2, 3); }
static inline v8 KFN(max8)(v8 a, v8 b) { v8i gt = a > b; return (v8)((gt & (v8i)a) | (~gt & (v8i)b)); }

/// e^x lane by lane (libm's expf has no vector form here): 2^k · e^r with
/// k = round(x·log2 e) by the 1.5·2^23 trick, r = x − k·ln 2 (ln 2 in two parts), and a degree-6
/// Taylor polynomial (relative error ~2e-7). Inputs below −87 give 0.
static inline v8 KFN(exp8)(v8 x) {
    v8i inside = x >= -87.0f;
    v8 c = (v8)((inside & (v8i)x) | (~inside & (v8i)((v8){0, 0, 0, 0, 0, 0, 0, 0} - 87.0f)));
    v8 t = c * 1.44269504f + 12582912.0f;
    v8 k = t - 12582912.0f;
    v8 r = c - k * 0.693359375f + k * 2.1219444e-4f;
    v8 p = r * (1.0f / 720) + (1.0f / 120);
    p = p * r + (1.0f / 24);
    p = p * r + (1.0f / 6);
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    // t's low mantissa bits hold k; shift k + 127 into the exponent field.
    v8i scale = ((v8i)t - 0x4B400000 + 127) << 23;
    return (v8)((v8i)(p * (v8)scale) & inside);
}

/// Column tile of the row sums: wide enough that each W row's piece is several cache lines
/// (64-float tiles measured ~30% slower on MiniLM), narrow enough that the pieces of all block rows
/// together stay within about 1 MiB (L2 on the machines this was tuned on).
static inline int64_t KFN(tile_width)(int64_t rows) {
    const int64_t w = (1 << 20) / (rows > 0 ? rows * 4 : 4) / 64 * 64;
    return w < 128 ? 128 : (w > 1024 ? 1024 : w);
}

/// U[p] = Σ_{i active at p} aQ_i(p) W[i] for every position, written once (no read-modify-write).
/// Columns are cut into tiles (`tile_width`) so that the tile of every W row a sequence reads stays
/// in L2 while all positions pass over it; within a tile, 64 floats (8 vectors) accumulate in
/// registers across the position's ~20 features.
static void KFN(forward_u)(const QKPairMapSequence *a, int64_t row_len) {
    const int64_t t = a->length;
    const int64_t tile = KFN(tile_width)(a->rows);
    for (int64_t c0 = 0; c0 < row_len; c0 += tile) {
        const int64_t c1 = c0 + tile < row_len ? c0 + tile : row_len;
        for (int64_t p = 0; p < t; p++) {
            const int64_t e0 = a->query_start[p], e1 = a->query_start[p + 1];
            float *dst = a->u + p * row_len;
            int64_t c = c0;
            for (; c + 64 <= c1; c += 64) {
                v8 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, s4 = {0}, s5 = {0}, s6 = {0}, s7 = {0};
                for (int64_t e = e0; e < e1; e++) {
                    const float *w = a->block + (int64_t)a->query_row[e] * row_len + c;
                    const float v = a->query_value[e];
                    s0 += v * KFN(ld8)(w);      s1 += v * KFN(ld8)(w + 8);
                    s2 += v * KFN(ld8)(w + 16); s3 += v * KFN(ld8)(w + 24);
                    s4 += v * KFN(ld8)(w + 32); s5 += v * KFN(ld8)(w + 40);
                    s6 += v * KFN(ld8)(w + 48); s7 += v * KFN(ld8)(w + 56);
                }
                KFN(st8)(dst + c, s0);      KFN(st8)(dst + c + 8, s1);
                KFN(st8)(dst + c + 16, s2); KFN(st8)(dst + c + 24, s3);
                KFN(st8)(dst + c + 32, s4); KFN(st8)(dst + c + 40, s5);
                KFN(st8)(dst + c + 48, s6); KFN(st8)(dst + c + 56, s7);
            }
            for (; c + 8 <= c1; c += 8) {
                v8 s0 = {0};
                for (int64_t e = e0; e < e1; e++)
                    s0 += a->query_value[e] * KFN(ld8)(a->block + (int64_t)a->query_row[e] * row_len + c);
                KFN(st8)(dst + c, s0);
            }
            for (; c + 4 <= c1; c += 4) {
                v4 s0 = {0};
                for (int64_t e = e0; e < e1; e++)
                    s0 += a->query_value[e] * KFN(ld4)(a->block + (int64_t)a->query_row[e] * row_len + c);
                KFN(st4)(dst + c, s0);
            }
        }
    }
}

/// dW[i] += Σ_{p where i fires} aQ_i(p) V[p], with V (written over U) complete. The query
/// non-zeros are first grouped by block row (counting sort into `order` as (entry, position)
/// pairs), then per column tile each row's sum over its positions builds in registers and is added
/// to dW once.
static void KFN(backward_w)(const QKPairMapSequence *a, int64_t row_len) {
    const int64_t t = a->length, rows = a->rows, nnz = a->query_start[t];
    int32_t *start = a->row_start, *order = a->order;
    for (int64_t r = 0; r <= rows; r++) start[r] = 0;
    for (int64_t e = 0; e < nnz; e++) start[a->query_row[e] + 1]++;
    for (int64_t r = 0; r < rows; r++) start[r + 1] += start[r];
    for (int64_t p = 0; p < t; p++) {
        for (int64_t e = a->query_start[p]; e < a->query_start[p + 1]; e++) {
            const int32_t k = start[a->query_row[e]]++;
            order[2 * k] = (int32_t)e; order[2 * k + 1] = (int32_t)p;
        }
    }
    for (int64_t r = rows; r > 0; r--) start[r] = start[r - 1];
    start[0] = 0;
    const int64_t tile = KFN(tile_width)(a->rows);
    for (int64_t c0 = 0; c0 < row_len; c0 += tile) {
        const int64_t c1 = c0 + tile < row_len ? c0 + tile : row_len;
        for (int64_t r = 0; r < rows; r++) {
            const int64_t k0 = start[r], k1 = start[r + 1];
            if (k0 == k1) continue;
            float *dst = a->block_grad + r * row_len;
            int64_t c = c0;
            for (; c + 64 <= c1; c += 64) {
                v8 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, s4 = {0}, s5 = {0}, s6 = {0}, s7 = {0};
                for (int64_t k = k0; k < k1; k++) {
                    const float v = a->query_value[order[2 * k]];
                    const float *src = a->u + (int64_t)order[2 * k + 1] * row_len + c;
                    s0 += v * KFN(ld8)(src);      s1 += v * KFN(ld8)(src + 8);
                    s2 += v * KFN(ld8)(src + 16); s3 += v * KFN(ld8)(src + 24);
                    s4 += v * KFN(ld8)(src + 32); s5 += v * KFN(ld8)(src + 40);
                    s6 += v * KFN(ld8)(src + 48); s7 += v * KFN(ld8)(src + 56);
                }
                KFN(st8)(dst + c, KFN(ld8)(dst + c) + s0);           KFN(st8)(dst + c + 8, KFN(ld8)(dst + c + 8) + s1);
                KFN(st8)(dst + c + 16, KFN(ld8)(dst + c + 16) + s2); KFN(st8)(dst + c + 24, KFN(ld8)(dst + c + 24) + s3);
                KFN(st8)(dst + c + 32, KFN(ld8)(dst + c + 32) + s4); KFN(st8)(dst + c + 40, KFN(ld8)(dst + c + 40) + s5);
                KFN(st8)(dst + c + 48, KFN(ld8)(dst + c + 48) + s6); KFN(st8)(dst + c + 56, KFN(ld8)(dst + c + 56) + s7);
            }
            for (; c + 8 <= c1; c += 8) {
                v8 s0 = {0};
                for (int64_t k = k0; k < k1; k++)
                    s0 += a->query_value[order[2 * k]] * KFN(ld8)(a->u + (int64_t)order[2 * k + 1] * row_len + c);
                KFN(st8)(dst + c, KFN(ld8)(dst + c) + s0);
            }
            for (; c + 4 <= c1; c += 4) {
                v4 s0 = {0};
                for (int64_t k = k0; k < k1; k++)
                    s0 += a->query_value[order[2 * k]] * KFN(ld4)(a->u + (int64_t)order[2 * k + 1] * row_len + c);
                KFN(st4)(dst + c, KFN(ld4)(dst + c) + s0);
            }
        }
    }
}

/// One query position, heads in whole 8-lane vectors: the score of every allowed key position
/// (gathered from U[p] with the running max, Σ P·score and Σ P of every head built in the same
/// pass), the exponentials and their sums, the cross-entropy, and with a gradient
/// G = (P̂ − P)·row_scale scattered straight into V[p] = Σ_s G(s) aK(s) over U[p].
/// `n8`, `has4` describe lanes = 8·n8 + 4·has4 (≤ 16, both constants where it is inlined), so
/// the accumulators stay in registers.
static inline __attribute__((always_inline)) double
KFN(position_small)(const QKPairMapSequence *a, int64_t p, const int n8, const int has4) {
    const int64_t t = a->length, h = a->heads, lanes = a->lanes, stride = n8 + has4 > 1 ? 16 : 8;
    const int64_t allowed = a->causal ? p + 1 : t, row_len = a->columns * lanes;
    float *urow = a->u + p * row_len, *sc = a->scores, *tg = a->target;
    const float *kb = a->key_bias;
    const int32_t *kc = a->key_column;
    const float *kv = a->key_value;
    const v8 z = {0};
    // P(p, ·) per head, into [s, stride] (lanes past the heads stay 0 from the call's start).
    for (int64_t x = 0; x < h; x++) {
        const float *src = a->pattern + (x * t + p) * t;
        for (int64_t s = 0; s < allowed; s++) tg[s * stride + x] = src[s];
    }
    v8 mx0 = z - __builtin_inff(), mx1 = mx0, dot0 = z, dot1 = z, mass0 = z, mass1 = z;
    for (int64_t s = 0; s < allowed; s++) {
        v8 r0 = KFN(ld8)(kb + s * stride), r1 = stride > 8 ? KFN(ld8)(kb + s * stride + 8) : z;
        v4 r4 = has4 ? KFN(low)(n8 == 0 ? r0 : r1) : (v4){0, 0, 0, 0};
        // Two sets of accumulators (even and odd entries), so consecutive multiply-adds do not
        // wait on each other.
        v8 q0 = z, q1 = z;
        v4 q4 = {0, 0, 0, 0};
        int64_t e = a->key_start[s];
        const int64_t e1 = a->key_start[s + 1];
        for (; e + 2 <= e1; e += 2) {
            const float v = kv[e], w = kv[e + 1];
            const float *src = urow + (int64_t)kc[e] * lanes, *srd = urow + (int64_t)kc[e + 1] * lanes;
            if (n8 >= 1) { r0 += v * KFN(ld8)(src); q0 += w * KFN(ld8)(srd); }
            if (n8 >= 2) { r1 += v * KFN(ld8)(src + 8); q1 += w * KFN(ld8)(srd + 8); }
            if (has4) { r4 += v * KFN(ld4)(src + 8 * n8); q4 += w * KFN(ld4)(srd + 8 * n8); }
        }
        if (e < e1) {
            const float v = kv[e];
            const float *src = urow + (int64_t)kc[e] * lanes;
            if (n8 >= 1) r0 += v * KFN(ld8)(src);
            if (n8 >= 2) r1 += v * KFN(ld8)(src + 8);
            if (has4) r4 += v * KFN(ld4)(src + 8 * n8);
        }
        r0 += q0; r1 += q1; r4 += q4;
        if (has4) { if (n8 == 0) r0 = KFN(widen)(r4); else r1 = KFN(widen)(r4); }
        KFN(st8)(sc + s * stride, r0);
        const v8 p0 = KFN(ld8)(tg + s * stride);
        mx0 = KFN(max8)(mx0, r0); dot0 += p0 * r0; mass0 += p0;
        if (stride > 8) {
            KFN(st8)(sc + s * stride + 8, r1);
            const v8 p1 = KFN(ld8)(tg + s * stride + 8);
            mx1 = KFN(max8)(mx1, r1); dot1 += p1 * r1; mass1 += p1;
        }
    }
    v8 sum0 = z, sum1 = z;
    for (int64_t s = 0; s < allowed; s++) {
        const v8 e0 = KFN(exp8)(KFN(ld8)(sc + s * stride) - mx0);
        KFN(st8)(sc + s * stride, e0); sum0 += e0;
        if (stride > 8) {
            const v8 e1 = KFN(exp8)(KFN(ld8)(sc + s * stride + 8) - mx1);
            KFN(st8)(sc + s * stride + 8, e1); sum1 += e1;
        }
    }
    float mx[16], dot[16], mass[16], sum[16], inv[16];
    KFN(st8)(mx, mx0); KFN(st8)(mx + 8, mx1); KFN(st8)(dot, dot0); KFN(st8)(dot + 8, dot1);
    KFN(st8)(mass, mass0); KFN(st8)(mass + 8, mass1); KFN(st8)(sum, sum0); KFN(st8)(sum + 8, sum1);
    // −Σ P log P̂ = (Σ P)·(max + log Σ e) − Σ P·score, per head.
    double cross = 0;
    for (int64_t x = 0; x < 16; x++) {
        inv[x] = 0;
        if (x < h) {
            cross += (double)mass[x] * (double)(mx[x] + logf(sum[x])) - (double)dot[x];
            inv[x] = 1 / sum[x];
        }
    }
    if (!a->block_grad) return cross;
    const v8 scale = z + a->row_scale, inv0 = KFN(ld8)(inv), inv1 = KFN(ld8)(inv + 8);
    __builtin_memset(urow, 0, sizeof(float) * row_len);
    for (int64_t s = 0; s < allowed; s++) {
        // Lanes past the heads get inv 0 and P 0, so G is 0 there and V's padding stays 0.
        const v8 g0 = (KFN(ld8)(sc + s * stride) * inv0 - KFN(ld8)(tg + s * stride)) * scale;
        const v8 g1 = stride > 8 ? (KFN(ld8)(sc + s * stride + 8) * inv1 - KFN(ld8)(tg + s * stride + 8)) * scale : z;
        const v4 g4 = KFN(low)(n8 == 0 ? g0 : g1);
        for (int64_t e = a->key_start[s]; e < a->key_start[s + 1]; e++) {
            const float v = kv[e];
            float *dst = urow + (int64_t)kc[e] * lanes;
            if (n8 >= 1) KFN(st8)(dst, KFN(ld8)(dst) + v * g0);
            if (n8 >= 2) KFN(st8)(dst + 8, KFN(ld8)(dst + 8) + v * g1);
            if (has4) KFN(st4)(dst + 8 * n8, KFN(ld4)(dst + 8 * n8) + v * g4);
        }
    }
    return cross;
}

/// The same as `position_small` for any number of lanes (more than 16 heads), one 4-lane piece
/// at a time with the per-head figures in the `stats` scratch.
static double KFN(position_any)(const QKPairMapSequence *a, int64_t p) {
    const int64_t t = a->length, h = a->heads, lanes = a->lanes, stride = (lanes + 7) / 8 * 8;
    const int64_t allowed = a->causal ? p + 1 : t, row_len = a->columns * lanes;
    float *urow = a->u + p * row_len, *sc = a->scores, *tg = a->target;
    float *mx = a->stats, *dot = mx + stride, *mass = dot + stride, *sum = mass + stride;
    for (int64_t x = 0; x < h; x++) {
        const float *src = a->pattern + (x * t + p) * t;
        for (int64_t s = 0; s < allowed; s++) tg[s * stride + x] = src[s];
    }
    for (int64_t x = 0; x < stride; x++) { mx[x] = -__builtin_inff(); dot[x] = 0; mass[x] = 0; sum[x] = 0; }
    for (int64_t s = 0; s < allowed; s++) {
        float *row = sc + s * stride;
        for (int64_t o = 0; o < lanes; o += 4) {
            v4 r = KFN(ld4)(a->key_bias + s * stride + o);
            for (int64_t e = a->key_start[s]; e < a->key_start[s + 1]; e++)
                r += a->key_value[e] * KFN(ld4)(urow + (int64_t)a->key_column[e] * lanes + o);
            KFN(st4)(row + o, r);
        }
        for (int64_t x = 0; x < h; x++) {
            mx[x] = row[x] > mx[x] ? row[x] : mx[x];
            dot[x] += tg[s * stride + x] * row[x]; mass[x] += tg[s * stride + x];
        }
    }
    for (int64_t s = 0; s < allowed; s++) {
        for (int64_t o = 0; o < stride; o += 8) {
            const v8 e = KFN(exp8)(KFN(ld8)(sc + s * stride + o) - KFN(ld8)(mx + o));
            KFN(st8)(sc + s * stride + o, e); KFN(st8)(sum + o, KFN(ld8)(sum + o) + e);
        }
    }
    double cross = 0;
    for (int64_t x = 0; x < h; x++) cross += (double)mass[x] * (double)(mx[x] + logf(sum[x])) - (double)dot[x];
    if (!a->block_grad) return cross;
    float *g = mx;  // the maxima are spent; reuse their slot for G of one key position
    __builtin_memset(urow, 0, sizeof(float) * row_len);
    for (int64_t s = 0; s < allowed; s++) {
        for (int64_t x = 0; x < lanes; x++) g[x] = x < h ? (sc[s * stride + x] / sum[x] - tg[s * stride + x]) * a->row_scale : 0;
        for (int64_t e = a->key_start[s]; e < a->key_start[s + 1]; e++) {
            float *dst = urow + (int64_t)a->key_column[e] * lanes;
            for (int64_t o = 0; o < lanes; o += 4) KFN(st4)(dst + o, KFN(ld4)(dst + o) + a->key_value[e] * KFN(ld4)(g + o));
        }
    }
    return cross;
}

static double KFN(cross_entropy)(const QKPairMapSequence *a) {
    const int64_t t = a->length, h = a->heads, lanes = a->lanes, stride = (lanes + 7) / 8 * 8;
    const int64_t row_len = a->columns * lanes;
    if (t <= 0) return 0;
    __builtin_memset(a->scores, 0, sizeof(float) * t * stride);
    __builtin_memset(a->target, 0, sizeof(float) * t * stride);
    __builtin_memset(a->key_bias, 0, sizeof(float) * t * stride);
    // Key-side bias Σ_j B[h, j] aK_j(s), as [s, stride].
    for (int64_t s = 0; s < t; s++) {
        float *dst = a->key_bias + s * stride;
        for (int64_t e = a->key_start[s]; e < a->key_start[s + 1]; e++) {
            const float v = a->key_value[e], *src = a->key_bias_table + (int64_t)a->key_feature[e] * h;
            for (int64_t x = 0; x < h; x++) dst[x] += v * src[x];
        }
    }
    KFN(forward_u)(a, row_len);
    double cross = 0;
    for (int64_t p = 0; p < t; p++) {
        switch (lanes) {
        case 4: cross += KFN(position_small)(a, p, 0, 1); break;
        case 8: cross += KFN(position_small)(a, p, 1, 0); break;
        case 12: cross += KFN(position_small)(a, p, 1, 1); break;
        case 16: cross += KFN(position_small)(a, p, 2, 0); break;
        default: cross += KFN(position_any)(a, p); break;
        }
    }
    if (a->block_grad) KFN(backward_w)(a, row_len);
    return cross;
}

static void KFN(exp_all)(const float *x, float *out, int64_t count) {
    float in[8], res[8];
    for (int64_t i = 0; i < count; i += 8) {
        const int64_t n = count - i < 8 ? count - i : 8;
        for (int64_t k = 0; k < 8; k++) in[k] = k < n ? x[i + k] : 0;
        KFN(st8)(res, KFN(exp8)(KFN(ld8)(in)));
        for (int64_t k = 0; k < n; k++) out[i + k] = res[k];
    }
}
