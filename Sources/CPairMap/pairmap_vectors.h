// 8- and 4-lane vector types shared by the C kernels (clang's generic vectors: one register in
// the AVX2 builds, two SSE registers in the portable ones).
#ifndef QKDB_PAIRMAP_VECTORS_H
#define QKDB_PAIRMAP_VECTORS_H
#include <stdint.h>
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));
typedef int32_t v8i __attribute__((vector_size(32)));
#endif
