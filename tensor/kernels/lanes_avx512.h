/* Lane masks for the AVX-512 kernels' edges (a tile's last columns, a
 * packed panel's last values). */
#ifndef FLOWGRAD_LANES_AVX512_H
#define FLOWGRAD_LANES_AVX512_H

#include <immintrin.h>

/* The first n of 16 lanes (none for n <= 0, all for n >= 16). */
static inline __attribute__((always_inline)) __mmask16 fg_lanes_mask16(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

#endif
