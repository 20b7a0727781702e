/* fg_row_affine_value on 16 lanes, for the AVX-512 kernels (not
 * installed; include after immintrin.h). max returns its second operand
 * when the first is NaN and when both are zeros, so NaN and -0 become +0
 * as in the scalar rule. */
#ifndef FLOWGRAD_ROW_AFFINE_AVX512_H
#define FLOWGRAD_ROW_AFFINE_AVX512_H

#include "tensor/kernels/row_affine.h"

static inline __attribute__((always_inline, target("avx512f"))) __m512
fg_row_affine_v16(__m512 v, float b, float s, int relu)
{
    const __m512 y = _mm512_mul_ps(_mm512_add_ps(v, _mm512_set1_ps(b)), _mm512_set1_ps(s));
    return relu ? _mm512_max_ps(y, _mm512_setzero_ps()) : y;
}

/* Row i's 16 columns at c (those in mask) become ep(alpha acc + beta C),
 * as every AVX-512 kernel stores its result: alpha v, then beta C added
 * by one FMA (C not read when beta is 0, so NaN there never comes
 * through), then the row's affine map (ep_bias NULL: none). */
static inline __attribute__((always_inline, target("avx512f"))) void
fg_store_row16(float *c, __mmask16 mask, __m512 acc, __m512 alpha, float beta, __m512 beta_v,
               const float *ep_bias, const float *ep_scale, int ep_relu, int i)
{
    __m512 v = _mm512_mul_ps(acc, alpha);
    if (beta != 0.0f)
        v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, c), beta_v, v);
    if (ep_bias)
        v = fg_row_affine_v16(v, ep_bias[i], ep_scale[i], ep_relu);
    _mm512_mask_storeu_ps(c, mask, v);
}

#endif
