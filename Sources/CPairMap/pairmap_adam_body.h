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

/// The summed KL gradient of one entry (cleared where read) and its store slot.
static inline __attribute__((always_inline)) float KFN(adam_grad)(const QKPairMapAdam *a, int64_t e, int64_t *slot) {
    const int64_t at = a->slot ? a->slot[e] : e;
    float sum = 0;
    for (int64_t t = 0; t < a->threads; t++) {
        float *p = a->thread_grad + t * a->store_size + at;
        sum += *p; *p = 0;
    }
    *slot = at;
    return sum;
}

/// The vector half of the step for 8 entries: new m, moments and W from the old m, moments, M
/// and KL gradient g. Adds sqrt(m + ε) to `pen` and −1 per entry below the threshold to `below`.
static inline __attribute__((always_inline)) void
KFN(adam_math)(const QKPairMapAdam *a, v8 m, v8 value, v8 g, v8 *m1, v8 *m2, v8 *clamped, v8 *pen, v8i *below) {
    const v8 z = {0};
    const v8 r = __builtin_elementwise_sqrt(m + a->epsilon);
    const v8 grad = g * value + a->penalty / (2 * r);
    *m1 = a->beta1 * *m1 + (1 - a->beta1) * grad;
    *m2 = a->beta2 * *m2 + (1 - a->beta2) * grad * grad;
    const v8 updated = m - a->learning_rate * (*m1 * a->correction1) / (__builtin_elementwise_sqrt(*m2 * a->correction2) + a->adam_epsilon);
    *clamped = __builtin_elementwise_min(__builtin_elementwise_max(updated, z), z + 1);
    *pen += r;
    *below += *clamped < a->threshold;
}

/// Entries [e, e + 8): the per-entry arrays are read and written as whole vectors, the gradients
/// and W go through the scattered store slots one by one.
static inline __attribute__((always_inline)) void KFN(adam_full)(const QKPairMapAdam *a, int64_t e, v8 *pen, v8i *below) {
    int64_t at[8];
    const v8 g = {KFN(adam_grad)(a, e, &at[0]), KFN(adam_grad)(a, e + 1, &at[1]), KFN(adam_grad)(a, e + 2, &at[2]),
                  KFN(adam_grad)(a, e + 3, &at[3]), KFN(adam_grad)(a, e + 4, &at[4]), KFN(adam_grad)(a, e + 5, &at[5]),
                  KFN(adam_grad)(a, e + 6, &at[6]), KFN(adam_grad)(a, e + 7, &at[7])};
    const v8 value = KFN(adam_ld)(a->pair_value + e);
    v8 m1 = KFN(adam_ld)(a->moment1 + e), m2 = KFN(adam_ld)(a->moment2 + e), clamped;
    KFN(adam_math)(a, KFN(adam_ld)(a->mask + e), value, g, &m1, &m2, &clamped, pen, below);
    KFN(adam_st)(a->mask + e, clamped); KFN(adam_st)(a->moment1 + e, m1); KFN(adam_st)(a->moment2 + e, m2);
    const v8 w = value * clamped;
    for (int k = 0; k < 8; k++) a->store[at[k]] = w[k];
}

/// Entries [e, e + n), n < 8, through a staging buffer; lanes past n are computed on zeros and
/// dropped.
static inline void KFN(adam_part)(const QKPairMapAdam *a, int64_t e, int n, double *pen, int64_t *below) {
    float g[8] = {0}, old[8] = {0}, mv[8] = {0}, m1in[8] = {0}, m2in[8] = {0}, out[8], o1[8], o2[8], rs[8];
    int64_t at[8];
    for (int k = 0; k < n; k++) {
        g[k] = KFN(adam_grad)(a, e + k, &at[k]);
        old[k] = a->mask[e + k]; mv[k] = a->pair_value[e + k]; m1in[k] = a->moment1[e + k]; m2in[k] = a->moment2[e + k];
    }
    v8 m1 = KFN(adam_ld)(m1in), m2 = KFN(adam_ld)(m2in), clamped, r = {0};
    v8i count = {0};
    KFN(adam_math)(a, KFN(adam_ld)(old), KFN(adam_ld)(mv), KFN(adam_ld)(g), &m1, &m2, &clamped, &r, &count);
    KFN(adam_st)(out, clamped); KFN(adam_st)(o1, m1); KFN(adam_st)(o2, m2); KFN(adam_st)(rs, r);
    for (int k = 0; k < n; k++) {
        a->mask[e + k] = out[k]; a->moment1[e + k] = o1[k]; a->moment2[e + k] = o2[k];
        a->store[at[k]] = mv[k] * out[k];
        *below += count[k] != 0;
        *pen += rs[k];
    }
}

static double KFN(adam)(const QKPairMapAdam *adam, int64_t first, int64_t end, int64_t *below) {
    const QKPairMapAdam a = *adam;  // a local copy: the stores below cannot alias its fields
    const int64_t h = a.heads;
    double pen = 0;
    int64_t count = 0;
    for (int64_t i = first; i < end; i++) {
        const int64_t pairs = a.pair_start[i + 1] - a.pair_start[i], base = a.pair_start[i] * h;
        v8 featurePen = {0};
        v8i featureBelow = {0};
        for (int64_t k0 = 0; k0 < pairs; k0 += 16) {
            const int64_t n = pairs - k0 < 16 ? pairs - k0 : 16;
            // Twelve-odd interleaved runs per array are more than the hardware prefetcher follows:
            // fetch each head's line two blocks ahead by hand.
            if (k0 + 32 < pairs) {
                for (int64_t x = 0; x < h; x++) {
                    const int64_t ahead = base + x * pairs + k0 + 32;
                    __builtin_prefetch(a.mask + ahead, 1); __builtin_prefetch(a.moment1 + ahead, 1);
                    __builtin_prefetch(a.moment2 + ahead, 1); __builtin_prefetch(a.pair_value + ahead, 0);
                }
            }
            for (int64_t x = 0; x < h; x++) {
                const int64_t e = base + x * pairs + k0;
                if (n >= 8) KFN(adam_full)(&a, e, &featurePen, &featureBelow);
                else KFN(adam_part)(&a, e, (int)n, &pen, &count);
                if (n == 16) KFN(adam_full)(&a, e + 8, &featurePen, &featureBelow);
                else if (n > 8) KFN(adam_part)(&a, e + 8, (int)(n - 8), &pen, &count);
            }
        }
        for (int k = 0; k < 8; k++) { pen += featurePen[k]; count -= featureBelow[k]; }
    }
    *below = count;
    return pen;
}
