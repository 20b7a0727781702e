/* The one GEMM entry point of flowgrad: every matrix product goes through
 * fg_gemm_ex so that every caller gets the tuned BLIS context. */
#include "tensor/tensor.h"

#include <blis.h>

/* Strides of a dimension of length 1 are meaningless to the caller but BLIS
 * checks them for consistency; give such a dimension the stride a contiguous
 * matrix would have. */
static void normalize_strides(dim_t rows, dim_t cols, inc_t *rs, inc_t *cs)
{
    if (rows <= 1 && cols <= 1) {
        *rs = 1;
        *cs = 1;
    } else if (rows <= 1) {
        *rs = cols * (*cs < 0 ? -*cs : *cs);
    } else if (cols <= 1) {
        *cs = rows * (*rs < 0 ? -*rs : *rs);
    }
}

/* C = beta C without BLIS: beta == 0 must write zeros without reading C. */
static void scale_c(int M, int N, float beta, float *C, long rs_c, long cs_c)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float *c = C + i * rs_c + j * cs_c;
            *c = beta == 0.0f ? 0.0f : beta * *c;
        }
}

void fg_gemm_ex(int trans_a, int trans_b, int M, int N, int K, float alpha,
                const float *A, long rs_a, long cs_a,
                const float *B, long rs_b, long cs_b, float beta,
                float *C, long rs_c, long cs_c)
{
    if (M < 0 || N < 0 || K < 0)
        fg_fatal("gemm", "negative size M=%d N=%d K=%d", M, N, K);
    if (M == 0 || N == 0)
        return;
    if (K == 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, rs_c, cs_c);
        return;
    }
    /* Strides describe A and B as stored: K x M when transposed. */
    inc_t ars = rs_a, acs = cs_a, brs = rs_b, bcs = cs_b, crs = rs_c, ccs = cs_c;
    normalize_strides(trans_a ? K : M, trans_a ? M : K, &ars, &acs);
    normalize_strides(trans_b ? N : K, trans_b ? K : N, &brs, &bcs);
    normalize_strides(M, N, &crs, &ccs);

    rntm_t rntm;
    bli_rntm_init_from_global(&rntm);
    bli_sgemm_ex(trans_a ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                 trans_b ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                 M, N, K, &alpha, (float *)A, ars, acs, (float *)B, brs, bcs,
                 &beta, C, crs, ccs, NULL, &rntm);
}

void fg_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc)
{
    fg_gemm_ex(trans_a, trans_b, M, N, K, alpha, A, lda, 1, B, ldb, 1, beta,
               C, ldc, 1);
}
