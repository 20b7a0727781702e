/* 8 x 8 in-register transpose shared by the AVX2 and AVX-512 packing
 * kernels: packing a row-stored panel means turning rows into columns. */
#ifndef FLOWGRAD_TRANSPOSE8_H
#define FLOWGRAD_TRANSPOSE8_H

#include <immintrin.h>

static inline __attribute__((always_inline, target("avx2")))
void fg_transpose8(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Loads rows row0..row0+7 (those below cdim; the rest are zero) of a
 * row-stored panel at column l, then transposes them: r[j] holds column l+j. */
static inline __attribute__((always_inline, target("avx2")))
void fg_load_transpose8(const float *a, inc_t inca, dim_t l, int row0,
                        dim_t cdim, __m256 r[8])
{
    for (int i = 0; i < 8; i++)
        r[i] = row0 + i < cdim ? _mm256_loadu_ps(a + (row0 + i) * inca + l)
                               : _mm256_setzero_ps();
    fg_transpose8(r);
}

#endif
