/* The numerical log-determinant the flow suites check layers against,
 * shared by tests/test_flows.c and tests/test_conditioner.c. */
#ifndef FLOWGRAD_CHECK_JACOBIAN_H
#define FLOWGRAD_CHECK_JACOBIAN_H

#include <check.h>
#include <math.h>
#include <stddef.h>

#include "flowgrad.h"

/* The map under test: out (at least d values) = f(x); *logdet, when not
 * NULL, its analytic log-determinant at x. */
typedef void (*fg_test_map)(void *ctx, const float *x, float *out, double *logdet);

/* log|det J| of the first d outputs in the first d inputs of x (n values,
 * the map's out n_out), by the five-point central difference with step
 * 2^-3. Its O(h^4) truncation lets the step be large, which keeps float
 * rounding of the outputs (~1e-7 relative, divided by h) small. x is first
 * moved onto a grid of 2^-10, where every x +- k h is exact in float, so
 * the stencil's weights hold exactly; *analytic gets the map's own
 * log-determinant at that x. */
static inline double fg_test_numerical_logdet(float *x, size_t n, size_t d, size_t n_out,
                                              fg_test_map f, void *ctx, double *analytic)
{
    static const double offsets[4] = {-2.0, -1.0, 1.0, 2.0};
    static const double weights[4] = {1.0, -8.0, 8.0, -1.0};   /* / 12 h */
    const double h = 0x1p-3;
    float *y = fg_xmalloc(n_out * sizeof(float), "test");
    double *jac = fg_xcalloc(d * d, sizeof(double), "test");
    for (size_t i = 0; i < n; i++)
        x[i] = ldexpf(nearbyintf(ldexpf(x[i], 10)), -10);
    f(ctx, x, y, analytic);
    for (size_t j = 0; j < d; j++) {
        float saved = x[j];
        for (int k = 0; k < 4; k++) {
            x[j] = (float)(saved + offsets[k] * h);
            f(ctx, x, y, NULL);
            for (size_t i = 0; i < d; i++)
                jac[i * d + j] += weights[k] * y[i] / (12.0 * h);
        }
        x[j] = saved;
    }
    double lad;
    int sign;
    fg_mat_slogdet((int)d, jac, &lad, &sign);
    ck_assert_int_ne(sign, 0);
    free(y), free(jac);
    return lad;
}

#endif
