/* GEMM internals shared by tensor/gemm.c, its test and its benchmark (not
 * installed): which kernel path serves fg_gemm_ex. */
#ifndef FLOWGRAD_GEMM_INTERNAL_H
#define FLOWGRAD_GEMM_INTERNAL_H

/* FLOWGRAD_GEMM_KERNEL=avx512|avx2|scalar|blis picks the path at the first
 * call; unset or "auto" takes the best one for the CPU: avx512 where it is
 * supported, else BLIS's own context when BLIS has kernels for this CPU,
 * else avx2 or scalar. "blis" is BLIS's own context, untouched. */
enum fg_gemm_path {
    FG_GEMM_AUTO = -1,
    FG_GEMM_BLIS = 0,
    FG_GEMM_SCALAR,
    FG_GEMM_AVX2,
    FG_GEMM_AVX512,
    FG_GEMM_NPATHS
};

int fg_gemm_path_supported(int path);
/* The path "auto" takes on this CPU. */
int fg_gemm_best_path(void);
/* Selects the path of every later call, process-wide; FG_GEMM_AUTO returns to
 * the environment's or the CPU's choice. FG_ERR when the CPU lacks it. */
int fg_gemm_set_path(int path);
int fg_gemm_get_path(void);
const char *fg_gemm_path_name(int path);
/* FG_GEMM_AUTO for "auto", -2 for an unknown name. */
int fg_gemm_path_from_name(const char *name);

/* Which kernel fg_gemm_ex gives a product on the current path (the same
 * arguments): on AVX-512 a weight gradient with a narrow side goes to the
 * dot-product kernel, a K up to 256 to the unpacked one that reads B in
 * place (unless B is large and many rows read it), other products with
 * row-stored C to the packed 12 x 32 one; the rest,
 * and every product on other paths but the unpacked AVX2 ones, to BLIS.
 * Where AMX is on, a product that the dot-product kernel does not take,
 * with row-stored C, op(A) and op(B) each with a unit stride, 96 to 512
 * rows and K from 64 goes to the AMX tile units instead (a wide layer's
 * products and gradients). */
enum fg_gemm_route {
    FG_GEMM_ROUTE_BLIS,
    FG_GEMM_ROUTE_DOT,
    FG_GEMM_ROUTE_UNPACKED,
    FG_GEMM_ROUTE_PACKED,
    FG_GEMM_ROUTE_AMX
};
int fg_gemm_route(int trans_a, int trans_b, int M, int N, int K, long rs_a, long cs_a,
                  long rs_b, long cs_b, long rs_c, long cs_c);

/* Whether products go to the AMX tile units where the route allows
 * (FG_GEMM_ROUTE_AMX): on by default where the CPU and the kernel have
 * them, off with FLOWGRAD_GEMM_AMX=0. fg_gemm_set_amx turns it on (where
 * available) or off for every later call and returns whether it is on. */
int fg_gemm_set_amx(int on);
int fg_gemm_amx_on(void);

/* The register and cache blocks of a path's context (MR, NR, MC, KC, NC). */
void fg_gemm_path_blocks(int path, int blocks[5]);

#include "tensor/kernels/row_affine.h"   /* fg_row_affine */

/* C = ep(alpha op(A) B + beta C): fg_gemm_ex with B and C row-stored (unit
 * column stride) and ep applied to every row as it is stored; ep NULL is
 * fg_gemm_ex. Our AVX-512 kernels that read B in place or pack it apply
 * ep as they store; elsewhere (other paths, BLIS, the dot-product kernel)
 * it runs as a pass over C after the product, with the same arithmetic,
 * so the result does not depend on which one ran. */
void fg_gemm_row_affine(int trans_a, int M, int N, int K, float alpha, const float *A,
                        long lda, const float *B, long ldb, float beta, float *C, long ldc,
                        const fg_row_affine *ep);
/* op(A) copied once for the many products that share it (a layer's
 * weights over the chunks of a batch). Where a product would copy op(A)
 * into panels itself (the AVX-512 kernel that reads B in place, K up to
 * its bound), fg_gemm_prepare_a makes those panels in buf, of
 * fg_gemm_prepared_floats(M, K) floats (0: nothing to prepare; buf may
 * then be NULL), and fg_gemm_row_affine_prepared skips the copy. Other
 * products read A itself. The panels hold op(A) as it was when prepared:
 * they are for products run before A changes. */
typedef struct fg_gemm_prepared {
    int trans_a, M, K, path;
    const float *A;
    long lda;
    const float *panels;   /* NULL: none */
} fg_gemm_prepared;
size_t fg_gemm_prepared_floats(int M, int K);
fg_gemm_prepared fg_gemm_prepare_a(int trans_a, int M, int K, const float *A, long lda,
                                   float *buf);
/* fg_gemm_row_affine(a->trans_a, a->M, N, a->K, alpha, a->A, a->lda, ...). */
void fg_gemm_row_affine_prepared(const fg_gemm_prepared *a, int N, float alpha, const float *B,
                                 long ldb, float beta, float *C, long ldc,
                                 const fg_row_affine *ep);

/* ep as a pass over the M x N matrix C (row stride ldc). */
void fg_row_affine_apply(int M, int N, float *C, long ldc, const fg_row_affine *ep);

#endif
