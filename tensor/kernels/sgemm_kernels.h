/* sgemm microkernels and packing kernels in the form BLIS 0.9.0 calls them
 * through a context. Each instruction set has one register block (MR x NR),
 * one microkernel, and packing kernels for panels of width MR and NR. */
#ifndef FLOWGRAD_SGEMM_KERNELS_H
#define FLOWGRAD_SGEMM_KERNELS_H

/* blis.h trips -Wextra in its own inline functions. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <blis.h>
#pragma GCC diagnostic pop

#include "tensor/kernels/row_affine.h"

#define FG_SGEMM_UKR_ARGS                                                    \
    dim_t m, dim_t n, dim_t k, float *restrict alpha, float *restrict a,     \
    float *restrict b, float *restrict beta, float *restrict c, inc_t rs_c,  \
    inc_t cs_c, auxinfo_t *restrict aux, cntx_t *restrict cntx

/* Copies a cdim x n panel (inca along the panel, lda along its length),
 * scaled by kappa, to p[i + l*ldp]; zero-fills rows cdim..width-1 and
 * columns n..n_max-1 so that the microkernel may always compute full tiles. */
#define FG_SPACK_ARGS                                                        \
    conj_t conja, pack_t schema, dim_t cdim, dim_t n, dim_t n_max,           \
    float *restrict kappa, float *restrict a, inc_t inca, inc_t lda,         \
    float *restrict p, inc_t ldp, cntx_t *restrict cntx

/* AVX-512: 14 x 16 (one zmm of B, 14 broadcasts of A). */
enum { FG_AVX512_MR = 14, FG_AVX512_NR = 16 };
void fg_sgemm_ukr_avx512(FG_SGEMM_UKR_ARGS);
/* The same kernel as a 16 x 14 tile with columns of C in vectors. */
void fg_sgemm_ukr_avx512_t(FG_SGEMM_UKR_ARGS);
void fg_spack_14_avx512(FG_SPACK_ARGS);
void fg_spack_16_avx512(FG_SPACK_ARGS);
/* Panels of 12 rows of A for the unpacked kernel's 12 x 32 tiles. */
void fg_spack_12_avx512(FG_SPACK_ARGS);

/* AVX2 + FMA: 6 x 16 (two ymm of B, 6 broadcasts of A). */
enum { FG_AVX2_MR = 6, FG_AVX2_NR = 16 };
void fg_sgemm_ukr_avx2(FG_SGEMM_UKR_ARGS);
void fg_spack_6_avx2(FG_SPACK_ARGS);
void fg_spack_16_avx2(FG_SPACK_ARGS);

/* C = alpha op(A) B + beta C on columns [j0, j1) (j0 a multiple of 16),
 * B and C read in place with unit column stride, op(A) through any
 * strides: for products with a short inner dimension or few rows, where
 * packing does not pay (sgemm_unpacked_avx2.c). */
void fg_sgemm_unpacked_avx2(int M, int N, int K, float alpha, const float *A, long rs_a,
                            long cs_a, const float *B, long rs_b, float beta, float *C,
                            long rs_c, int j0, int j1);

/* The same on AVX-512 for products whose B is worth reading in place
 * (sgemm_unpacked_avx512.c): op(A) is first copied into packed_a, room for
 * fg_sgemm_unpacked_avx512_pack_floats(M, K) floats, unless a_is_packed
 * says that packed_a already holds it (fg_sgemm_unpacked_avx512_pack).
 * ep (or NULL) applies to the rows as they are stored. */
void fg_sgemm_unpacked_avx512(int M, int K, float alpha, const float *A, long rs_a,
                              long cs_a, const float *B, long rs_b, float beta, float *C,
                              long rs_c, int j0, int j1, float *packed_a, int a_is_packed,
                              const fg_row_affine *ep);
void fg_sgemm_unpacked_avx512_pack(int M, int K, const float *A, long rs_a, long cs_a,
                                   float *packed_a);
enum { FG_AVX512_UNPACKED_MR = 12, FG_AVX512_UNPACKED_NR = 32 };
static inline size_t fg_sgemm_unpacked_avx512_pack_floats(int M, int K)
{
    return (size_t)((M + FG_AVX512_UNPACKED_MR - 1) / FG_AVX512_UNPACKED_MR) *
           FG_AVX512_UNPACKED_MR * (size_t)K;
}

/* The same tiles with op(A) and op(B) (any strides) both packed, for a K
 * longer than the unpacked kernel takes or a B stored along K
 * (sgemm_packed_avx512.c): K in blocks of kc, columns in blocks of nc (a
 * multiple of 32). pa has room for fg_sgemm_packed_avx512_a_floats floats,
 * pb for fg_sgemm_packed_avx512_b_floats; threads (at most) share them.
 * C is row-stored; ep (or NULL) applies to its rows. */
typedef struct fg_packed_blocks {
    int kc, nc;
} fg_packed_blocks;
void fg_sgemm_packed_avx512(const fg_packed_blocks *blocks, int M, int N, int K, float alpha,
                            const float *A, long rs_a, long cs_a, const float *B, long rs_b,
                            long cs_b, float beta, float *C, long rs_c, int threads, float *pa,
                            float *pb, const fg_row_affine *ep);
static inline size_t fg_sgemm_packed_avx512_a_floats(const fg_packed_blocks *blocks, int M, int K)
{
    return fg_sgemm_unpacked_avx512_pack_floats(M, K < blocks->kc ? K : blocks->kc);
}
static inline size_t fg_sgemm_packed_avx512_b_floats(const fg_packed_blocks *blocks, int N, int K)
{
    const int nc = N < blocks->nc ? N : blocks->nc;
    return (size_t)((nc + FG_AVX512_UNPACKED_NR - 1) / FG_AVX512_UNPACKED_NR) *
           FG_AVX512_UNPACKED_NR * (size_t)(K < blocks->kc ? K : blocks->kc);
}

/* C = alpha A B^T + beta C, A (M x K) and B (N x K) with unit stride along
 * K, as dot products along K without packing (sgemm_dot_avx512.c). */
void fg_sgemm_dot_avx512(int M, int N, int K, float alpha, const float *A, long lda,
                         const float *B, long ldb, float beta, float *C, long rs_c, long cs_c);

/* C = alpha op(A) op(B) + beta C on columns [j0, j1) in fp32 through the
 * AMX bfloat16 tile units, each operand split into three pieces
 * (sgemm_amx_bf16x6.c): op(A) (i, k) at A[i rs_a + k cs_a], op(B) (k, j)
 * at B[k rs_b + j cs_b], each with one stride 1 (the other way round
 * costs a transposing copy of each block), C row-stored. pa_buf has room
 * for fg_sgemm_amx_a_bytes(M, K) bytes, pb_buf for
 * fg_sgemm_amx_b_bytes(N, K) (N the columns of this call). Only where
 * fg_amx_bf16_usable(), which asks the kernel for the tile state once.
 * ep (or NULL) applies to the rows as they are stored.
 *
 * K goes in blocks of FG_AMX_KC, the columns in blocks of FG_AMX_NC,
 * split just before their products: on one thread 256 x 784 x 256 ran
 * at 198-220 GFLOP/s with blocks of 160 to 1024 columns, 239-240 with
 * 128, 244-249 with 64, 236-238 with 32 (BENCHMARKS.md, "fp32 products
 * on AMX"). */
enum { FG_AMX_KC = 256, FG_AMX_NC = 64 };
int fg_amx_bf16_usable(void);
size_t fg_sgemm_amx_a_bytes(int M, int K);
size_t fg_sgemm_amx_b_bytes(int N, int K);
void fg_sgemm_amx_bf16x6(int M, int K, float alpha, const float *A, long rs_a, long cs_a,
                         const float *B, long rs_b, long cs_b, float beta, float *C, long rs_c,
                         int j0, int j1, void *pa_buf, void *pb_buf, const fg_row_affine *ep);

/* Portable C for any x86-64 (the compiler may use SSE2). */
enum { FG_SCALAR_MR = 4, FG_SCALAR_NR = 8 };
void fg_sgemm_ukr_scalar(FG_SGEMM_UKR_ARGS);
void fg_spack_4_scalar(FG_SPACK_ARGS);
void fg_spack_8_scalar(FG_SPACK_ARGS);

/* Shared by the packing kernels of every path: the slow general case and
 * the zero fill of the panel's padding. */
void fg_spack_generic(int width, dim_t cdim, dim_t n, dim_t n_max, float kappa,
                      const float *a, inc_t inca, inc_t lda, float *p,
                      inc_t ldp);
void fg_spack_zero_tail(int width, dim_t n, dim_t n_max, float *p, inc_t ldp);

/* Writes an m x n tile held in a row-major buffer t (row stride ldt) to C
 * with general strides: C = alpha t + beta C, C unread when beta is 0. */
void fg_sgemm_store_tile(dim_t m, dim_t n, float alpha, const float *t,
                         int ldt, float beta, float *c, inc_t rs_c,
                         inc_t cs_c);

#endif
