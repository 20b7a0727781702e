/* AVX2 + FMA product without packing, for the shapes where BLIS's packing
 * costs more than it saves: a short inner dimension (a coupling network's
 * first 3x3 convolution, K = 9 Ci = 18 or 36) or few rows (its last one, 36
 * output-side rows). There each packed value of B is used only K or M
 * times, and the product is a few hundred microseconds, so BLIS's copy of
 * B and its loop setup are a large share of it.
 *
 * B and C are read in place, row by row, with unit column stride; a strip
 * of 16 columns of B (K x 16) is read once from where it lies and then
 * stays in L1 while every 6-row tile of C in that strip uses it. A is read
 * through any strides (its values are broadcast one at a time), so a
 * transposed A costs nothing. */
#include "tensor/kernels/lanes_avx2.h"
#include "tensor/kernels/sgemm_kernels.h"

#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

enum { MR = 6, NR = 16 };

/* One tile of mr (a constant after inlining) rows and 16 columns, of which
 * the lanes of m0 and m1 are inside C. */
INLINE AVX2 void tile(int mr, int K, float alpha, const float *a, long rs_a, long cs_a,
                      const float *b, long rs_b, float beta, float *c, long rs_c,
                      int full, __m256i m0, __m256i m1)
{
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        const float *bk = b + k * rs_b;
        const __m256 b0 = full ? _mm256_loadu_ps(bk) : _mm256_maskload_ps(bk, m0);
        const __m256 b1 = full ? _mm256_loadu_ps(bk + 8) : _mm256_maskload_ps(bk + 8, m1);
        const float *ak = a + k * cs_a;
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            const __m256 av = _mm256_broadcast_ss(ak + r * rs_a);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    const __m256 al = _mm256_set1_ps(alpha), be = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * rs_c;
        __m256 v0 = _mm256_mul_ps(al, acc[r][0]), v1 = _mm256_mul_ps(al, acc[r][1]);
        if (full) {
            if (beta != 0.0f) {   /* beta 0 never reads C, which may hold NaN */
                v0 = _mm256_fmadd_ps(be, _mm256_loadu_ps(cr), v0);
                v1 = _mm256_fmadd_ps(be, _mm256_loadu_ps(cr + 8), v1);
            }
            _mm256_storeu_ps(cr, v0);
            _mm256_storeu_ps(cr + 8, v1);
        } else {
            if (beta != 0.0f) {
                v0 = _mm256_fmadd_ps(be, _mm256_maskload_ps(cr, m0), v0);
                v1 = _mm256_fmadd_ps(be, _mm256_maskload_ps(cr + 8, m1), v1);
            }
            _mm256_maskstore_ps(cr, m0, v0);
            _mm256_maskstore_ps(cr + 8, m1, v1);
        }
    }
}

/* Every tile of one strip of columns [j, j + 16) clipped to N. */
INLINE AVX2 void strip(int M, int K, float alpha, const float *A, long rs_a, long cs_a,
                       const float *b, long rs_b, float beta, float *c, long rs_c, int full,
                       __m256i m0, __m256i m1)
{
    int i = 0;
    for (; i + MR <= M; i += MR)
        tile(MR, K, alpha, A + i * rs_a, rs_a, cs_a, b, rs_b, beta, c + i * rs_c, rs_c, full,
             m0, m1);
    switch (M - i) {
#define EDGE(mr) case mr: \
        tile(mr, K, alpha, A + i * rs_a, rs_a, cs_a, b, rs_b, beta, c + i * rs_c, rs_c, full, \
             m0, m1); \
        break;
    EDGE(1) EDGE(2) EDGE(3) EDGE(4) EDGE(5)
#undef EDGE
    default:
        break;
    }
}

AVX2 void fg_sgemm_unpacked_avx2(int M, int N, int K, float alpha, const float *A, long rs_a,
                                 long cs_a, const float *B, long rs_b, float beta, float *C,
                                 long rs_c, int j0, int j1)
{
    const __m256i all = _mm256_set1_epi32(-1);
    for (int j = j0; j < j1; j += NR) {
        if (j + NR <= N)
            strip(M, K, alpha, A, rs_a, cs_a, B + j, rs_b, beta, C + j, rs_c, 1, all, all);
        else
            strip(M, K, alpha, A, rs_a, cs_a, B + j, rs_b, beta, C + j, rs_c, 0,
                  fg_lanes_below(N - j, 0), fg_lanes_below(N - j, 8));
    }
}
