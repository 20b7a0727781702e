/* Portable sgemm kernels: the path for CPUs without AVX2, and the helpers
 * that the SIMD paths share for their rare cases. */
#include "tensor/kernels/sgemm_kernels.h"

#include <string.h>

void fg_sgemm_store_tile(dim_t m, dim_t n, float alpha, const float *t,
                         int ldt, float beta, float *c, inc_t rs_c,
                         inc_t cs_c)
{
    for (dim_t i = 0; i < m; i++)
        for (dim_t j = 0; j < n; j++) {
            float *cij = c + i * rs_c + j * cs_c;
            float v = alpha * t[i * ldt + j];
            *cij = beta == 0.0f ? v : v + beta * *cij;
        }
}

void fg_spack_zero_tail(int width, dim_t n, dim_t n_max, float *p, inc_t ldp)
{
    for (dim_t l = n; l < n_max; l++)
        memset(p + l * ldp, 0, (size_t)width * sizeof(float));
}

void fg_spack_generic(int width, dim_t cdim, dim_t n, dim_t n_max, float kappa,
                      const float *a, inc_t inca, inc_t lda, float *p,
                      inc_t ldp)
{
    for (dim_t l = 0; l < n; l++) {
        float *pl = p + l * ldp;
        const float *al = a + l * lda;
        dim_t i = 0;
        for (; i < cdim; i++)
            pl[i] = kappa * al[i * inca];
        for (; i < width; i++)
            pl[i] = 0.0f;
    }
    fg_spack_zero_tail(width, n, n_max, p, ldp);
}

void fg_spack_4_scalar(FG_SPACK_ARGS)
{
    fg_spack_generic(FG_SCALAR_MR, cdim, n, n_max, *kappa, a, inca, lda, p, ldp);
}

void fg_spack_8_scalar(FG_SPACK_ARGS)
{
    fg_spack_generic(FG_SCALAR_NR, cdim, n, n_max, *kappa, a, inca, lda, p, ldp);
}

void fg_sgemm_ukr_scalar(FG_SGEMM_UKR_ARGS)
{
    enum { MR = FG_SCALAR_MR, NR = FG_SCALAR_NR };
    float t[MR][NR] = {{0}};
    /* Packed panels are zero-padded, so full tiles are always valid sums. */
    for (dim_t l = 0; l < k; l++) {
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                t[i][j] += a[i] * b[j];
        a += MR;
        b += NR;
    }
    fg_sgemm_store_tile(m, n, *alpha, &t[0][0], NR, *beta, c, rs_c, cs_c);
}
