#ifndef QKDB_CPAIRMAP_H
#define QKDB_CPAIRMAP_H

#include <stdint.h>

/// One sequence's step-2 pass, as `QKTrain.PairMapKernel` hands it to C.
///
/// The effective map W = M·m is a dense block [rows, columns, lanes] (heads innermost, padded to a
/// multiple of 4 lanes); the codes arrive as CSR tables whose feature numbers are already block
/// rows (query side) and block columns (key side). The scratch buffers belong to the caller's
/// thread and are reused across sequences; their sizes are given beside each one, with
/// `stride = qk_pairmap_score_stride(lanes)`.
typedef struct {
    int64_t length;             ///< positions T
    int64_t heads;              ///< real heads (≤ lanes)
    int64_t lanes;              ///< heads padded to a multiple of 4
    int64_t columns;            ///< block columns
    int64_t rows;               ///< block rows
    int32_t causal;             ///< 1: key positions s ≤ p only
    float row_scale;            ///< the gradient is dL/dW · row_scale, L being the summed KL
    const float *block;         ///< W [rows, columns, lanes]
    float *block_grad;          ///< dW [rows, columns, lanes], added into; NULL for the loss alone
    const int64_t *query_start; ///< [T + 1]
    const int32_t *query_row;   ///< block row of each query non-zero
    const float *query_value;
    const int64_t *key_start;   ///< [T + 1]
    const int32_t *key_column;  ///< block column of each key non-zero
    const int32_t *key_feature; ///< key feature of each key non-zero (row of the bias table)
    const float *key_value;
    const float *key_bias_table; ///< B [key features, heads]
    const float *pattern;       ///< the model's pattern [heads, T, T]
    float *u;                   ///< T · columns · lanes
    float *scores;              ///< T · stride
    float *target;              ///< T · stride
    float *key_bias;            ///< T · stride
    float *stats;               ///< 8 · stride
    int32_t *order;             ///< 2 · (query non-zeros)
    int32_t *row_start;         ///< rows + 1
} QKPairMapSequence;

/// One Adam step of the mask over entries [lo, hi), fused with everything else that touches
/// every entry (see `MaskTrainer`): sums and clears the per-thread KL gradients dL/dW at the
/// entry's store slot, applies the chain rule through W = M·m, adds the penalty gradient
/// μ/(2·sqrt(m + ε)), updates and clamps m to [0, 1] and writes the new W = M·m back to the slot.
typedef struct {
    float *thread_grad;         ///< threads × store_size, cleared where read
    int64_t threads;
    int64_t store_size;
    const int32_t *slot;        ///< store slot of each entry; NULL: entry e is slot e
    const int64_t *pair_start;  ///< pairs of query feature i: pair_start[i] ..< pair_start[i + 1]
    int64_t heads;              ///< entries of query feature i: one run of its pairs per head
    const float *pair_value;    ///< M per entry
    float *mask, *moment1, *moment2;
    float *store;               ///< W in the store layout
    float beta1, beta2, adam_epsilon;
    float correction1, correction2;  ///< 1/(1 − β1^t), 1/(1 − β2^t)
    float learning_rate, penalty, epsilon, threshold;
} QKPairMapAdam;

/// Runs the step over the entries of query features [first, end); returns Σ sqrt(m + ε) before
/// the step and sets `below` to the number of entries under the threshold after it.
double qk_pairmap_adam(const QKPairMapAdam *adam, int64_t first, int64_t end, int64_t *below);

/// Width of one key position's row in the score scratch: lanes rounded up to 8.
int64_t qk_pairmap_score_stride(int64_t lanes);

/// Σ over (head, query position, allowed key position) of −P·log P̂ for the sequence; with
/// `block_grad`, also adds row_scale · dL/dW into it. Runs the AVX2+FMA build of the kernel where
/// the CPU has it, the portable build otherwise.
double qk_pairmap_cross_entropy(const QKPairMapSequence *sequence);

/// out[i] = e^x[i] by the kernel's own vector exp (tests check it against libm).
void qk_pairmap_exp(const float *x, float *out, int64_t count);

/// 1 when the AVX2+FMA build runs, 0 for the portable one.
int qk_pairmap_vector_level(void);

/// Tests: force the portable build (1) or go back to the CPU's best (0).
void qk_pairmap_force_portable(int portable);

#endif
