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

#endif
