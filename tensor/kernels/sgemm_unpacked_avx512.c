/* AVX-512 product without packing, for a coupling network's products on a
 * chunk of images: B (the chunk's columns or its output gradient) is read
 * where it lies, in strips of 16 columns, and op(A) (the weights, any
 * strides) is broadcast one value at a time. Packed, each such product
 * first copies all of B; on the Glow steps that copy took a sixth of the
 * time, as much as the products' own arithmetic saves by packing.
 *
 * Each tile (12 rows x 32 columns of C) runs its whole K and writes its
 * part of C once: no buffer is needed. The tiles go row by row through a
 * block of columns whose part of B stays in L2, so that C is written in
 * long runs along its rows. Going strip by strip instead (each strip of B
 * in L1, the 14-row tiles down it) writes one line in each of C's rows at a
 * time: 256 streams, too many for the prefetchers, and each store waits
 * for its line to come from memory. On Glow's first convolution (K = 18)
 * that made the product 3x slower than its arithmetic allows (BENCHMARKS.md,
 * "C written along its rows"). */
#include "tensor/kernels/sgemm_kernels.h"

#include <immintrin.h>

#include "tensor/kernels/row_affine_avx512.h"

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

enum { MR = FG_AVX512_UNPACKED_MR, NR = FG_AVX512_UNPACKED_NR, HALF = NR / 2 };

#define FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* op(A) (M x K, element (i, k) at A[i rs_a + k cs_a]) as panels of MR
 * rows: panel p holds rows p MR .. p MR + 11 at pa[p MR K + k MR + r], with
 * zeros past M: the panels BLIS's packing makes, copied by the same
 * vector packing kernel (sgemm_avx512.c, 8 x 8 transposes for row-stored
 * A) rather than one value at a time. */
void fg_sgemm_unpacked_avx512_pack(int M, int K, const float *A, long rs_a, long cs_a,
                                   float *pa)
{
    float one = 1.0f;
    for (int i0 = 0; i0 < M; i0 += MR, pa += (long)MR * K)
        fg_spack_12_avx512(BLIS_NO_CONJUGATE, BLIS_PACKED_ROW_PANELS, M - i0 < MR ? M - i0 : MR,
                           K, K, &one, (float *)A + (long)i0 * rs_a, rs_a, cs_a, pa, MR,
                           NULL);
}

/* One tile of `rows` rows (4, 8 or 12 after inlining; m <= rows of them are
 * inside C) and `halves` vectors of 16 columns (1 or 2), of which those in
 * mask0 and mask1 are inside C. Two vectors of B per k share each
 * broadcast of A: 14 loads feed 24 FMAs, where a 14 x 16 tile needs 15
 * loads for 14 (in L1 on Sapphire Rapids, 0.82 against 0.77 of a loop of
 * register FMAs; BENCHMARKS.md, "A 12 x 32 tile"). */
INLINE AVX512 void tile(const int rows, const int halves, int m, int K, float alpha,
                        const float *pa, const float *b, long rs_b, float beta, float *c,
                        long rs_c, __mmask16 mask0, __mmask16 mask1, const float *ep_bias,
                        const float *ep_scale, int ep_relu)
{
#define ZERO(i) __m512 c##i = _mm512_setzero_ps(), d##i = _mm512_setzero_ps();
    FOR_ROWS(ZERO)
#undef ZERO
#pragma GCC unroll 4
    for (int k = 0; k < K; k++, pa += MR) {
        const float *bk = b + (long)k * rs_b;
        const __m512 b0 = _mm512_maskz_loadu_ps(mask0, bk);
        const __m512 b1 = halves > 1 ? _mm512_maskz_loadu_ps(mask1, bk + HALF)
                                     : _mm512_setzero_ps();
#define FMA(i)                                                                      \
        if ((i) < rows) {                                                           \
            const __m512 av = _mm512_set1_ps(pa[i]);                                \
            c##i = _mm512_fmadd_ps(av, b0, c##i);                                   \
            if (halves > 1)                                                         \
                d##i = _mm512_fmadd_ps(av, b1, d##i);                               \
        }
        FOR_ROWS(FMA)
#undef FMA
    }
    const __m512 al = _mm512_set1_ps(alpha), be = _mm512_set1_ps(beta);
#define STORE_HALF(acc, i, off, mask)                                               \
    {                                                                               \
        float *cr = c + (long)(i) * rs_c + (off);                                   \
        __m512 v = _mm512_mul_ps(acc, al);                                          \
        if (beta != 0.0f) /* beta 0 never reads C, which may hold NaN */            \
            v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, cr), be, v);            \
        if (ep_bias)                                                                \
            v = fg_row_affine_v16(v, ep_bias[i], ep_scale[i], ep_relu);             \
        _mm512_mask_storeu_ps(cr, mask, v);                                         \
    }
#define STORE(i)                                                                    \
    if ((i) < rows && (i) < m) {                                                    \
        STORE_HALF(c##i, i, 0, mask0)                                               \
        if (halves > 1)                                                             \
            STORE_HALF(d##i, i, HALF, mask1)                                        \
    }
    FOR_ROWS(STORE)
#undef STORE
#undef STORE_HALF
}

static inline __mmask16 columns_mask(int cols)
{
    return cols >= 16 ? (__mmask16)0xFFFF : cols <= 0 ? 0 : (__mmask16)((1u << cols) - 1);
}

/* Columns [j0, j1) of one row of tiles, `rows` rows (m inside C) from the
 * top of pa's panel, c and ep's rows starting at that row. Tiles stop at
 * j1, which may be another thread's first column. */
INLINE AVX512 void tile_row(const int rows, int m, int j0, int j1, int K, float alpha,
                            const float *pa, const float *B, long rs_b, float beta, float *c,
                            long rs_c, const float *ep_bias, const float *ep_scale, int ep_relu)
{
    int j = j0;
    for (; j + NR <= j1; j += NR)
        tile(rows, 2, m, K, alpha, pa, B + j, rs_b, beta, c + j, rs_c, 0xFFFF, 0xFFFF,
             ep_bias, ep_scale, ep_relu);
    const int left = j1 - j;
    if (left > HALF)
        tile(rows, 2, m, K, alpha, pa, B + j, rs_b, beta, c + j, rs_c, 0xFFFF,
             columns_mask(left - HALF), ep_bias, ep_scale, ep_relu);
    else if (left > 0)
        tile(rows, 1, m, K, alpha, pa, B + j, rs_b, beta, c + j, rs_c, columns_mask(left), 0,
             ep_bias, ep_scale, ep_relu);
}

/* A block of columns holds at most this many floats of B (512 KiB): half of
 * the smallest L2 among the AVX-512 cores we run on (1 MiB), so that B stays
 * there while A's panels and C's rows pass through. */
#define BLOCK_B_FLOATS (1L << 17)

AVX512 void fg_sgemm_unpacked_avx512(int M, int K, float alpha, const float *A,
                                     long rs_a, long cs_a, const float *B, long rs_b,
                                     float beta, float *C, long rs_c, int j0, int j1,
                                     float *packed_a, int a_is_packed, const fg_row_affine *ep)
{
    if (!a_is_packed)
        fg_sgemm_unpacked_avx512_pack(M, K, A, rs_a, cs_a, packed_a);
    long width = BLOCK_B_FLOATS / (K > 0 ? K : 1) / NR * NR;
    if (width < NR)
        width = NR;
    for (int b0 = j0; b0 < j1; b0 += (int)width) {
        const int b1 = j1 - b0 > width ? b0 + (int)width : j1;
#define ROW(rows, m)                                                                  \
        tile_row(rows, m, b0, b1, K, alpha, packed_a + (long)i * K, B, rs_b, beta,     \
                 C + (long)i * rs_c, rs_c, ep ? ep->bias + i : NULL,                   \
                 ep ? ep->scale + i : NULL, ep ? ep->relu : 0)
        int i = 0;
        for (; i + MR <= M; i += MR)
            ROW(MR, MR);
        const int m = M - i;
        if (m > 8)
            ROW(MR, m);
        else if (m > 4)
            ROW(8, m);
        else if (m > 0)
            ROW(4, m);
#undef ROW
    }
}
