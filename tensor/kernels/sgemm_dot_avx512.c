/* AVX-512 product C = alpha A B^T + beta C for A (M x K) and B (N x K) both
 * stored with unit stride along K: a weight gradient, dW = dY X^T, where
 * K is the pixels of a chunk of images. The microkernel of the packed
 * path wants K-major panels, so BLIS transposes both operands while it
 * packs them; on the Glow steps those transposing copies took a tenth of
 * the time. Here each element of C is a dot product along K, taken where
 * A and B lie: a block of 4 rows of A and 4 of B keeps 16 vector sums,
 * one per element, and adds their lanes once at the end.
 *
 * K is taken in slices of KC so that the 4 rows of A stay in L1 and the
 * slice of B (N x KC) in L2 while the block moves along N. */
#include "tensor/kernels/sgemm_kernels.h"

#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

enum { MB = 4, NB = 4, KC = 512 };

/* Lane sums of four vectors: r[i] = sum of v[i]'s lanes. */
INLINE AVX512 __m128 sum4(__m512 v0, __m512 v1, __m512 v2, __m512 v3)
{
    /* Halve the width twice, pairing vectors so that each step adds two
     * of them at once, then finish the last four lanes. */
    __m256 a0 = _mm256_add_ps(_mm512_castps512_ps256(v0), _mm512_extractf32x8_ps(v0, 1));
    __m256 a1 = _mm256_add_ps(_mm512_castps512_ps256(v1), _mm512_extractf32x8_ps(v1, 1));
    __m256 a2 = _mm256_add_ps(_mm512_castps512_ps256(v2), _mm512_extractf32x8_ps(v2, 1));
    __m256 a3 = _mm256_add_ps(_mm512_castps512_ps256(v3), _mm512_extractf32x8_ps(v3, 1));
    __m256 h01 = _mm256_hadd_ps(a0, a1), h23 = _mm256_hadd_ps(a2, a3);
    __m256 h = _mm256_hadd_ps(h01, h23);
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* The 4 x 4 block at a and b of one slice of kc (m x n of it inside C;
 * rows and columns past them repeat the last one's values, computed and
 * never stored). */
INLINE AVX512 void block(int m, int n, int kc, float alpha, const float *a, long lda,
                         const float *b, long ldb, float beta, float *c, long rs_c, long cs_c)
{
    const float *a0 = a, *a1 = a + (m > 1 ? 1 : 0) * lda, *a2 = a + (m > 2 ? 2 : m - 1) * lda,
                *a3 = a + (m > 3 ? 3 : m - 1) * lda;
    const float *b0 = b, *b1 = b + (n > 1 ? 1 : 0) * ldb, *b2 = b + (n > 2 ? 2 : n - 1) * ldb,
                *b3 = b + (n > 3 ? 3 : n - 1) * ldb;
#define ACC(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = c##i##0, \
                      c##i##2 = c##i##0, c##i##3 = c##i##0;
    ACC(0) ACC(1) ACC(2) ACC(3)
#undef ACC
#define ROW(i) \
    c##i##0 = _mm512_fmadd_ps(va##i, vb0, c##i##0);   \
    c##i##1 = _mm512_fmadd_ps(va##i, vb1, c##i##1);   \
    c##i##2 = _mm512_fmadd_ps(va##i, vb2, c##i##2);   \
    c##i##3 = _mm512_fmadd_ps(va##i, vb3, c##i##3);
#define STEP(LOAD)                                                                \
    do {                                                                          \
        const __m512 vb0 = LOAD(b0), vb1 = LOAD(b1), vb2 = LOAD(b2), vb3 = LOAD(b3); \
        const __m512 va0 = LOAD(a0), va1 = LOAD(a1), va2 = LOAD(a2), va3 = LOAD(a3); \
        ROW(0) ROW(1) ROW(2) ROW(3)                                               \
    } while (0)
    int k = 0;
#define FULL(p) _mm512_loadu_ps((p) + k)
    for (; k + 16 <= kc; k += 16)
        STEP(FULL);
#undef FULL
    if (k < kc) {
        const __mmask16 t = (__mmask16)((1u << (kc - k)) - 1);
#define TAIL(p) _mm512_maskz_loadu_ps(t, (p) + k)
        STEP(TAIL);
#undef TAIL
    }
#undef STEP
#undef ROW
    __m128 s[4] = {sum4(c00, c01, c02, c03), sum4(c10, c11, c12, c13),
                   sum4(c20, c21, c22, c23), sum4(c30, c31, c32, c33)};
    for (int i = 0; i < m; i++) {
        float r[4];
        _mm_storeu_ps(r, s[i]);
        for (int j = 0; j < n; j++) {
            float *cij = c + i * rs_c + j * cs_c;
            /* beta 0 never reads C, which may hold NaN */
            *cij = beta == 0.0f ? alpha * r[j] : alpha * r[j] + beta * *cij;
        }
    }
}

INLINE AVX512 void slice(int M, int N, int kc, float alpha, const float *A, long lda,
                         const float *B, long ldb, float beta, float *C, long rs_c, long cs_c)
{
    for (int i = 0; i < M; i += MB) {
        const int m = M - i < MB ? M - i : MB;
        const float *a = A + (long)i * lda;
        float *c = C + (long)i * rs_c;
        for (int j = 0; j < N; j += NB) {
            const int n = N - j < NB ? N - j : NB;
            block(m, n, kc, alpha, a, lda, B + (long)j * ldb, ldb, beta, c + j * cs_c, rs_c,
                  cs_c);
        }
    }
}

AVX512 void fg_sgemm_dot_avx512(int M, int N, int K, float alpha, const float *A, long lda,
                                const float *B, long ldb, float beta, float *C, long rs_c,
                                long cs_c)
{
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC;
        /* Slices after the first add to what the ones before stored. */
        slice(M, N, kc, alpha, A + k0, lda, B + k0, ldb, k0 == 0 ? beta : 1.0f, C, rs_c, cs_c);
    }
}
