/* The 12 x 32 register tile of the AVX-512 products that read B with a
 * row stride: in place (sgemm_unpacked_avx512.c) or packed into panels of
 * 32 columns (sgemm_packed_avx512.c). Each tile runs its K and writes its
 * part of C once. */
#ifndef FLOWGRAD_TILE_12X32_AVX512_H
#define FLOWGRAD_TILE_12X32_AVX512_H

#include "tensor/kernels/sgemm_kernels.h"

#include <immintrin.h>

#include "tensor/kernels/lanes_avx512.h"
#include "tensor/kernels/row_affine_avx512.h"

#define FG_TILE_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#define FG_TILE_INLINE static inline __attribute__((always_inline))

enum { FG_TILE_MR = FG_AVX512_UNPACKED_MR, FG_TILE_NR = FG_AVX512_UNPACKED_NR,
       FG_TILE_HALF = FG_TILE_NR / 2 };

#define FG_TILE_FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* One tile of `rows` rows (4, 8 or 12 after inlining; m <= rows of them are
 * inside C) and `halves` vectors of 16 columns (1 or 2), of which those in
 * mask0 and mask1 are inside C. Two vectors of B per k share each
 * broadcast of A: 14 loads feed 24 FMAs, where a 14 x 16 tile needs 15
 * loads for 14 (in L1 on Sapphire Rapids, 0.82 against 0.77 of a loop of
 * register FMAs; BENCHMARKS.md, "A 12 x 32 tile"). */
FG_TILE_INLINE FG_TILE_AVX512 void fg_tile(const int rows, const int halves, int m, int K,
                                           float alpha, const float *pa, const float *b,
                                           long rs_b, float beta, float *c, long rs_c,
                                           __mmask16 mask0, __mmask16 mask1,
                                           const float *ep_bias, const float *ep_scale,
                                           int ep_relu)
{
#define ZERO(i) __m512 c##i = _mm512_setzero_ps(), d##i = _mm512_setzero_ps();
    FG_TILE_FOR_ROWS(ZERO)
#undef ZERO
#pragma GCC unroll 4
    for (int k = 0; k < K; k++, pa += FG_TILE_MR) {
        const float *bk = b + (long)k * rs_b;
        const __m512 b0 = _mm512_maskz_loadu_ps(mask0, bk);
        const __m512 b1 = halves > 1 ? _mm512_maskz_loadu_ps(mask1, bk + FG_TILE_HALF)
                                     : _mm512_setzero_ps();
#define FMA(i)                                                                      \
        if ((i) < rows) {                                                           \
            const __m512 av = _mm512_set1_ps(pa[i]);                                \
            c##i = _mm512_fmadd_ps(av, b0, c##i);                                   \
            if (halves > 1)                                                         \
                d##i = _mm512_fmadd_ps(av, b1, d##i);                               \
        }
        FG_TILE_FOR_ROWS(FMA)
#undef FMA
    }
    const __m512 al = _mm512_set1_ps(alpha), be = _mm512_set1_ps(beta);
#define STORE_HALF(acc, i, off, mask)                                               \
    fg_store_row16(c + (long)(i) * rs_c + (off), mask, acc, al, beta, be, ep_bias, ep_scale, \
                   ep_relu, i);
#define STORE(i)                                                                    \
    if ((i) < rows && (i) < m) {                                                    \
        STORE_HALF(c##i, i, 0, mask0)                                               \
        if (halves > 1)                                                             \
            STORE_HALF(d##i, i, FG_TILE_HALF, mask1)                                \
    }
    FG_TILE_FOR_ROWS(STORE)
#undef STORE
#undef STORE_HALF
}

/* Columns [j0, j1) of one row of tiles, `rows` rows (m inside C) from the
 * top of pa's panel, c and ep's rows starting at that row. b holds column
 * j0's part of B, and each tile's part lies b_step floats after the one
 * before: 32 where B is read in place, a whole panel where it is packed.
 * Tiles stop at j1, which may be another thread's first column. */
FG_TILE_INLINE FG_TILE_AVX512 void fg_tile_row(const int rows, int m, int j0, int j1, int K,
                                               float alpha, const float *pa, const float *b,
                                               long rs_b, long b_step, float beta, float *c,
                                               long rs_c, const float *ep_bias,
                                               const float *ep_scale, int ep_relu)
{
    int j = j0;
    for (; j + FG_TILE_NR <= j1; j += FG_TILE_NR, b += b_step)
        fg_tile(rows, 2, m, K, alpha, pa, b, rs_b, beta, c + j, rs_c, 0xFFFF, 0xFFFF, ep_bias,
                ep_scale, ep_relu);
    const int left = j1 - j;
    if (left > FG_TILE_HALF)
        fg_tile(rows, 2, m, K, alpha, pa, b, rs_b, beta, c + j, rs_c, 0xFFFF,
                fg_lanes_mask16(left - FG_TILE_HALF), ep_bias, ep_scale, ep_relu);
    else if (left > 0)
        fg_tile(rows, 1, m, K, alpha, pa, b, rs_b, beta, c + j, rs_c,
                fg_lanes_mask16(left), 0, ep_bias, ep_scale, ep_relu);
}

/* Rows [i0, i1) of C (i0 a multiple of 12, i1 one or M) by columns
 * [j0, j1), row by row of tiles: pa holds op(A)'s panels of 12 rows from
 * row 0, each K long; b, rs_b and b_step as for fg_tile_row; c is C's
 * row 0 and ep (or NULL) its rows' epilogue. */
FG_TILE_INLINE FG_TILE_AVX512 void fg_tile_rows(int i0, int i1, int j0, int j1, int K,
                                                float alpha, const float *pa, const float *b,
                                                long rs_b, long b_step, float beta, float *c,
                                                long rs_c, const fg_row_affine *ep)
{
#define ROW(rows, m)                                                                      \
    fg_tile_row(rows, m, j0, j1, K, alpha, pa + (long)i * K, b, rs_b, b_step, beta,       \
                c + (long)i * rs_c, rs_c, ep ? ep->bias + i : NULL,                       \
                ep ? ep->scale + i : NULL, ep ? ep->relu : 0)
    int i = i0;
    for (; i + FG_TILE_MR <= i1; i += FG_TILE_MR)
        ROW(FG_TILE_MR, FG_TILE_MR);
    const int m = i1 - i;
    if (m > 8)
        ROW(FG_TILE_MR, m);
    else if (m > 4)
        ROW(8, m);
    else if (m > 0)
        ROW(4, m);
#undef ROW
}

#endif
