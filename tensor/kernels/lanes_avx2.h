/* Lane masks for the AVX2 kernels' edges (packing, the microkernel's
 * partial tiles, the unpacked product's last strip). */
#ifndef FLOWGRAD_LANES_AVX2_H
#define FLOWGRAD_LANES_AVX2_H

#include <immintrin.h>

/* Lanes j with first + j < count are all ones. */
static inline __attribute__((always_inline, target("avx2")))
__m256i fg_lanes_below(long count, int first)
{
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(count - first)), idx);
}

#endif
