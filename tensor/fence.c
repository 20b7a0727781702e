/* Tukey's far-out fence: where a value stops being spread and becomes an
 * outlier (a diverged run among converged ones, say). */
#include "tensor/tensor.h"

#include <math.h>
#include <stdlib.h>

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double fg_far_out_fence(double *v, int n)
{
    if (n < 4)
        return INFINITY;
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    double q1 = v[n / 4], q3 = v[(3 * n) / 4];
    double fence = q3 + 3 * (q3 - q1);
    return v[n - 1] > fence ? fence : INFINITY;
}
