// Step 2's per-sequence kernel (see QKTrain/PairMap/PairMapKernel.swift for the maths), built
// twice: for the baseline target, and with AVX2+FMA for CPUs that have them (picked at run time,
// so the package still runs on any x86-64 or non-x86 machine).
#include "CPairMap.h"

// The portable build passes 8-lane vectors between its own static helpers only, so the AVX
// calling-convention warning does not apply.
#pragma clang diagnostic ignored "-Wpsabi"
#include <math.h>
#include <string.h>

#include "pairmap_vectors.h"

#define KFN(name) portable_##name
#include "pairmap_kernel_body.h"
#include "pairmap_adam_body.h"
#undef KFN

#if defined(__x86_64__) && defined(__clang__)
#define QK_HAVE_AVX2_BUILD 1
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define KFN(name) avx2_##name
#include "pairmap_kernel_body.h"
#include "pairmap_adam_body.h"
#undef KFN
#pragma clang attribute pop

#include <cpuid.h>

/// AVX2 and FMA in the CPU, and the OS saving the YMM registers (XCR0 bits 1 and 2).
static int cpu_has_avx2_fma(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned fma = 1u << 12, osxsave = 1u << 27, avx = 1u << 28;
    if ((c & (fma | osxsave | avx)) != (fma | osxsave | avx)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b & (1u << 5)) != 0;
}
#endif

static int forced_portable = 0;
static int detected = -1;  // -1 until the first call asks the CPU

int qk_pairmap_vector_level(void) {
#ifdef QK_HAVE_AVX2_BUILD
    int level = __atomic_load_n(&detected, __ATOMIC_RELAXED);
    if (level < 0) { level = cpu_has_avx2_fma(); __atomic_store_n(&detected, level, __ATOMIC_RELAXED); }
    return __atomic_load_n(&forced_portable, __ATOMIC_RELAXED) ? 0 : level;
#else
    return 0;
#endif
}

void qk_pairmap_force_portable(int portable) { __atomic_store_n(&forced_portable, portable != 0, __ATOMIC_RELAXED); }

int64_t qk_pairmap_score_stride(int64_t lanes) { return (lanes + 7) / 8 * 8; }

double qk_pairmap_cross_entropy(const QKPairMapSequence *sequence) {
#ifdef QK_HAVE_AVX2_BUILD
    if (qk_pairmap_vector_level()) return avx2_cross_entropy(sequence);
#endif
    return portable_cross_entropy(sequence);
}

void qk_pairmap_exp(const float *x, float *out, int64_t count) {
#ifdef QK_HAVE_AVX2_BUILD
    if (qk_pairmap_vector_level()) { avx2_exp_all(x, out, count); return; }
#endif
    portable_exp_all(x, out, count);
}

double qk_pairmap_adam(const QKPairMapAdam *adam, int64_t first, int64_t end, int64_t *below) {
#ifdef QK_HAVE_AVX2_BUILD
    if (qk_pairmap_vector_level()) return avx2_adam(adam, first, end, below);
#endif
    return portable_adam(adam, first, end, below);
}
