/* Reductions; every sum is accumulated in double so that large images and
 * batches lose no precision to float rounding. */
#include "tensor/tensor.h"
#include "tensor/parallel_internal.h"

#include <math.h>

double fg_k_sum(size_t n, const float *x)
{
    double s = 0.0;
    #pragma omp parallel for simd reduction(+:s) if(n > FG_PARALLEL_THRESHOLD)
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s;
}

double fg_k_dot(size_t n, const float *a, const float *b)
{
    double s = 0.0;
    #pragma omp parallel for simd reduction(+:s) if(n > FG_PARALLEL_THRESHOLD)
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

double fg_k_max_abs_diff(size_t n, const float *a, const float *b)
{
    double m = 0.0;
    #pragma omp parallel for simd reduction(max:m) if(n > FG_PARALLEL_THRESHOLD)
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        /* A NaN must show as a difference, not vanish in the max. */
        d = isnan(d) ? INFINITY : d;
        m = d > m ? d : m;
    }
    return m;
}

void fg_k_sum_per_sample(int N, size_t D, const float *x, double *out)
{
    for (int s = 0; s < N; s++)
        out[s] = fg_k_sum(D, x + (size_t)s * D);
}

/* Channel c of fg_k_sum_per_channel, summed by one thread. */
static inline void sum_channel(int c, int N, int C, int HW, const float *x, double *out,
                               double *out2)
{
    double s = 0.0, s2 = 0.0;
    for (int b = 0; b < N; b++) {
        const float *xc = x + ((size_t)b * C + c) * HW;
        #pragma omp simd reduction(+:s, s2)
        for (int i = 0; i < HW; i++) {
            double v = xc[i];
            s += v;
            s2 += v * v;
        }
    }
    out[c] = s;
    if (out2)
        out2[c] = s2;
}

void fg_k_sum_per_channel(int N, int C, int HW, const float *x, double *out, double *out2)
{
    FG_FOR_ITEMS((size_t)N * C * HW, c, C, sum_channel((int)c, N, C, HW, x, out, out2));
}
