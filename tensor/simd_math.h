/* exp, log1p, sigmoid and log-sigmoid in float that the compiler can
 * vectorize (internal).
 *
 * A loop that calls libm's expf or log1pf runs one scalar call per element:
 * glibc declares its vector variants only under -ffast-math, which the
 * library does not use (its NaN checks rely on IEEE semantics). These are
 * branch-free polynomials, so an `omp simd` loop over them runs four or
 * eight elements per instruction (the library is built with
 * -fno-trapping-math, without which GCC keeps their range checks as
 * branches). Accuracy, checked against double libm in tests/test_simd_math:
 * fg_simd_expf within 2 ulp over its whole range (below e^-87.3, where
 * float turns subnormal, it gives 0), fg_simd_log1pf_unit within 3 ulp on
 * [0, 1]. NaN in gives NaN out; +-inf give inf and 0 as libm does. */
#ifndef FLOWGRAD_SIMD_MATH_H
#define FLOWGRAD_SIMD_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float fg_simd_pow2i(int32_t n)   /* 2^n for -126 <= n <= 127 */
{
    int32_t bits = (n + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* e^x = 2^n e^r with n = round(x / ln 2) and |r| <= ln(2) / 2, where a
 * degree-7 Taylor polynomial is within 5e-9 of e^r. */
static inline float fg_simd_expf(float x)
{
    const float hi = 88.72283905f;    /* ln(FLT_MAX) */
    const float lo = -87.33654475f;   /* ln(FLT_MIN) */
    /* Clamped and NaN-free, so the integer conversion below is defined;
     * the true result for out-of-range x is chosen at the end. */
    float xc = x > hi ? hi : (x < lo ? lo : x);
    xc = x == x ? xc : 0.0f;
    /* Round to nearest by the 1.5 * 2^23 trick, exact for |t| < 2^22. */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693145751953125f;        /* ln 2, high bits: n * it is exact */
    r = r - n * 1.428606765330187045e-06f;        /* ln 2, the rest */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* n is in [-126, 128]; two factors keep each power of two normal. */
    int32_t ni = (int32_t)n, n1 = ni / 2;
    float y = p * fg_simd_pow2i(n1) * fg_simd_pow2i(ni - n1);
    y = x > hi ? (float)HUGE_VAL : (x < lo ? 0.0f : y);
    return x == x ? y : x;
}

/* log(1 + e) for 0 <= e <= 1: log1p(f) = 2 atanh(f / (2 + f)) as an odd
 * series in s = f / (2 + f), |s| <= 0.2, truncated where its terms fall
 * below 4e-9; above 1/2 the argument is halved first, as
 * log1p(e) = ln 2 + log1p((e - 1) / 2), where e - 1 is exact. */
static inline float fg_simd_log1pf_unit(float e)
{
    int big = e > 0.5f;
    float f = big ? (e - 1.0f) * 0.5f : e;
    float s = f / (2.0f + f), s2 = s * s;
    float p = 2.0f / 11.0f;
    p = p * s2 + 2.0f / 9.0f;
    p = p * s2 + 2.0f / 7.0f;
    p = p * s2 + 2.0f / 5.0f;
    p = p * s2 + 2.0f / 3.0f;
    p = p * s2 + 2.0f;
    return (big ? 0.69314718055994531f : 0.0f) + s * p;
}

static inline float fg_simd_sigmoidf(float z)
{
    return 1.0f / (1.0f + fg_simd_expf(-z));
}

/* log(sigmoid(z)) = min(z, 0) - log1p(e^-|z|), stable for either sign. */
static inline float fg_simd_log_sigmoidf(float z)
{
    float a = z < 0.0f ? -z : z;
    float m = z < 0.0f ? z : 0.0f;
    float l = m - fg_simd_log1pf_unit(fg_simd_expf(-a));
    return z == z ? l : z;
}

#endif
