/* tensor/simd_math.h: the vectorizable exp, log1p, sigmoid and log-sigmoid
 * against libm in double, over their whole float ranges, and their special
 * values. */
#include "tensor/simd_math.h"
#include "check_main.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The float spacing at a double value v (a float's ulp there). */
static double ulp_at(double v)
{
    return ldexp(1.0, ilogb(fmax(fabs(v), FLT_MIN)) - 23);
}

/* Every float from lo to hi, with a stride of step in their bit patterns
 * (monotone within one sign); f gets each and returns its error. */
static double sweep(float lo, float hi, uint32_t step, double (*f)(float), float *at)
{
    double worst = 0.0;
    for (float x = lo; x <= hi;) {
        double e = f(x);
        if (!(e <= worst)) {
            worst = e;
            *at = x;
        }
        uint32_t u = to_bits(x);
        float next = x < 0.0f ? (u - step > 0x80000000u ? from_bits(u - step) : 0.0f)
                              : from_bits(u + step);
        if (next <= x) break;
        x = next;
    }
    return worst;
}

static double exp_error(float x)
{
    double want = exp((double)x);
    return fabs(fg_simd_expf(x) - want) / ulp_at(want);
}

static double log1p_error(float e)
{
    double want = log1p((double)e);
    return e == 0.0f ? fabs(fg_simd_log1pf_unit(e)) : fabs(fg_simd_log1pf_unit(e) - want) /
                                                       ulp_at(want);
}

static double log_sigmoid_error(float z)
{
    double want = z < 0.0f ? z - log1p(exp((double)z)) : -log1p(exp(-(double)z));
    return fabs(fg_simd_log_sigmoidf(z) - want) / fmax(1.0, fabs(want));
}

static double sigmoid_error(float z)
{
    double want = 1.0 / (1.0 + exp(-(double)z));
    return fabs(fg_simd_sigmoidf(z) - want) / ulp_at(want);
}

START_TEST(test_exp_range)
{
    /* lo: the float nearest ln(FLT_MIN); hi: the largest float whose
     * exponential is finite in float, the one above it overflows. */
    const float lo = -87.33654475f, hi = 88.7228317f;
    ck_assert(exp((double)hi) <= FLT_MAX && exp((double)nextafterf(hi, INFINITY)) > FLT_MAX);
    float at = 0.0f;
    double worst = fmax(sweep(lo, -FLT_MIN, 127, exp_error, &at),
                        sweep(0.0f, hi, 127, exp_error, &at));
    ck_assert_msg(worst <= 2.0, "exp: %.3f ulp at %.9g", worst, (double)at);
    /* Both ends, exactly. */
    ck_assert(exp_error(hi) <= 2.0 && exp_error(lo) <= 2.0);
    ck_assert(isinf(fg_simd_expf(nextafterf(hi, INFINITY))));
    ck_assert(isinf(fg_simd_expf(INFINITY)) && fg_simd_expf(INFINITY) > 0.0f);
    ck_assert(fg_simd_expf(-INFINITY) == 0.0f && fg_simd_expf(-100.0f) == 0.0f);
    ck_assert(isnan(fg_simd_expf(NAN)));
    ck_assert(fg_simd_expf(0.0f) == 1.0f);
}
END_TEST

START_TEST(test_log1p_unit)
{
    float at = 0.0f;
    double worst = sweep(0.0f, 1.0f, 29, log1p_error, &at);
    ck_assert_msg(worst <= 3.0, "log1p: %.3f ulp at %.9g", worst, (double)at);
    ck_assert(fg_simd_log1pf_unit(0.0f) == 0.0f);
    ck_assert(fabs(fg_simd_log1pf_unit(1.0f) - M_LN2) <= ulp_at(M_LN2));
    /* Tiny arguments keep their relative accuracy: log1p(e) ~ e. */
    ck_assert(fg_simd_log1pf_unit(1e-30f) == 1e-30f);
}
END_TEST

START_TEST(test_sigmoids)
{
    float at = 0.0f;
    /* Below -87.3 sigmoid is subnormal in float, and libm's expf overflows
     * there too; from there up, within 4 ulp. */
    double worst = fmax(sweep(-87.0f, -FLT_MIN, 211, sigmoid_error, &at),
                        sweep(0.0f, 100.0f, 211, sigmoid_error, &at));
    ck_assert_msg(worst <= 4.0, "sigmoid: %.3f ulp at %.9g", worst, (double)at);
    worst = fmax(sweep(-200.0f, -FLT_MIN, 211, log_sigmoid_error, &at),
                 sweep(0.0f, 200.0f, 211, log_sigmoid_error, &at));
    ck_assert_msg(worst <= 3e-7, "log_sigmoid: error %.3g at %.9g", worst, (double)at);
    ck_assert(fg_simd_sigmoidf(-INFINITY) == 0.0f && fg_simd_sigmoidf(INFINITY) == 1.0f);
    ck_assert(isnan(fg_simd_sigmoidf(NAN)) && isnan(fg_simd_log_sigmoidf(NAN)));
    ck_assert(fg_simd_log_sigmoidf(INFINITY) == 0.0f);
    ck_assert(isinf(fg_simd_log_sigmoidf(-INFINITY)) && fg_simd_log_sigmoidf(-INFINITY) < 0.0f);
    ck_assert(fg_simd_log_sigmoidf(-1e30f) == -1e30f);
}
END_TEST

/* A loop that the compiler vectorizes (this file is built with the
 * library's -fno-trapping-math) gives the same bits as single calls. */
START_TEST(test_loop_matches_calls)
{
    enum { N = 1031 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = -100.0f + 200.0f * (float)i / (N - 1);
    #pragma omp simd
    for (int i = 0; i < N; i++)
        y[i] = fg_simd_log_sigmoidf(x[i]) + fg_simd_expf(x[i] * 0.5f);
    for (int i = 0; i < N; i++) {
        volatile float xi = x[i];
        float want = fg_simd_log_sigmoidf(xi) + fg_simd_expf(xi * 0.5f);
        ck_assert_msg(to_bits(y[i]) == to_bits(want), "x = %.9g: loop %.9g, call %.9g",
                      (double)x[i], (double)y[i], (double)want);
    }
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("simd_math");
    TCase *tc = fg_tcase("simd_math");
    tcase_add_test(tc, test_exp_range);
    tcase_add_test(tc, test_log1p_unit);
    tcase_add_test(tc, test_sigmoids);
    tcase_add_test(tc, test_loop_matches_calls);
    suite_add_tcase(s, tc);
    return s;
}
