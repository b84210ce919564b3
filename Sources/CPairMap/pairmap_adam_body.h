// The fused Adam step of the mask (QKPairMapAdam in CPairMap.h), compiled once per build like
// the kernel body. Eight entries at a time: their KL gradients are gathered from the store slots
// one by one (the slots are scattered), everything else runs as 8-lane vector arithmetic, with
// the same operations in the same order as the scalar step it replaces.
//
// Order: a query feature's entries are one run of its pairs per head, while the store keeps the
// heads of a pair side by side. Walking one head's whole run, then the next, would stream the
// feature's store row (and both gradient rows) once per head; instead the walk takes 16 pairs at
// a time through every head, so those 16 pairs' store cells stay in L1 while all heads visit them
// and every array is read front to back once.

static inline v8 KFN(adam_ld)(const float *p) { v8 v; __builtin_memcpy(&v, p, sizeof v); return v; }
static inline void KFN(adam_st)(float *p, v8 v) { __builtin_memcpy(p, &v, sizeof v); }

/// Entries [e, e + n), n ≤ 8; lanes past n are computed on zeros and dropped.
static inline __attribute__((always_inline)) double KFN(adam_block)(const QKPairMapAdam *a, int64_t e, int n, int64_t *below) {
    float g[8] = {0}, old[8] = {0}, mv[8] = {0}, m1in[8] = {0}, m2in[8] = {0}, out[8], o1[8], o2[8], w[8];
    int64_t at[8];
    for (int k = 0; k < n; k++) {
        const int64_t slot = a->slot ? a->slot[e + k] : e + k;
        float sum = 0;
        for (int64_t t = 0; t < a->threads; t++) {
            float *p = a->thread_grad + t * a->store_size + slot;
            sum += *p; *p = 0;
        }
        at[k] = slot; g[k] = sum;
        old[k] = a->mask[e + k]; mv[k] = a->pair_value[e + k];
        m1in[k] = a->moment1[e + k]; m2in[k] = a->moment2[e + k];
    }
    const v8 z = {0};
    const v8 m = KFN(adam_ld)(old), value = KFN(adam_ld)(mv);
    const v8 r = __builtin_elementwise_sqrt(m + a->epsilon);
    const v8 grad = KFN(adam_ld)(g) * value + a->penalty / (2 * r);
    const v8 m1 = a->beta1 * KFN(adam_ld)(m1in) + (1 - a->beta1) * grad;
    const v8 m2 = a->beta2 * KFN(adam_ld)(m2in) + (1 - a->beta2) * grad * grad;
    const v8 updated = m - a->learning_rate * (m1 * a->correction1) / (__builtin_elementwise_sqrt(m2 * a->correction2) + a->adam_epsilon);
    const v8 clamped = __builtin_elementwise_min(__builtin_elementwise_max(updated, z), z + 1);
    KFN(adam_st)(out, clamped); KFN(adam_st)(o1, m1); KFN(adam_st)(o2, m2); KFN(adam_st)(w, value * clamped);
    float rs[8];
    KFN(adam_st)(rs, r);
    double pen = 0;
    for (int k = 0; k < n; k++) {
        a->mask[e + k] = out[k]; a->moment1[e + k] = o1[k]; a->moment2[e + k] = o2[k];
        a->store[at[k]] = w[k];
        if (out[k] < a->threshold) *below += 1;
        pen += rs[k];
    }
    return pen;
}

static double KFN(adam)(const QKPairMapAdam *adam, int64_t first, int64_t end, int64_t *below) {
    const QKPairMapAdam a = *adam;  // a local copy: the stores below cannot alias its fields
    const int64_t h = a.heads;
    double pen = 0;
    *below = 0;
    for (int64_t i = first; i < end; i++) {
        const int64_t count = a.pair_start[i + 1] - a.pair_start[i], base = a.pair_start[i] * h;
        for (int64_t k0 = 0; k0 < count; k0 += 16) {
            const int64_t n = count - k0 < 16 ? count - k0 : 16;
            for (int64_t x = 0; x < h; x++) {
                const int64_t e = base + x * count + k0;
                pen += KFN(adam_block)(&a, e, n < 8 ? (int)n : 8, below);
                if (n > 8) pen += KFN(adam_block)(&a, e + 8, (int)(n - 8), below);
            }
        }
    }
    return pen;
}
