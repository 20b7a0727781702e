/* Elementwise and per-channel kernels.
 *
 * `omp simd` makes GCC vectorize at -O2 (whose default cost model would not
 * for loops of unknown length) and states that iterations are independent,
 * which stays true when y aliases an input element for element. */
#include "tensor/tensor.h"

#include <math.h>
#include <string.h>

#define PARALLEL_SIMD _Pragma("omp parallel for simd if(n > FG_PARALLEL_THRESHOLD)")
#define PARALLEL _Pragma("omp parallel for if(n > FG_PARALLEL_THRESHOLD)")

void fg_k_fill(size_t n, float v, float *y)
{
    PARALLEL_SIMD
    for (size_t i = 0; i < n; i++)
        y[i] = v;
}

void fg_k_copy(size_t n, const float *x, float *y)
{
    if (x != y)
        memmove(y, x, n * sizeof(float));
}

void fg_k_add(size_t n, const float *a, const float *b, float *y)
{
    PARALLEL_SIMD
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

void fg_k_sub(size_t n, const float *a, const float *b, float *y)
{
    PARALLEL_SIMD
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] - b[i];
}

void fg_k_mul(size_t n, const float *a, const float *b, float *y)
{
    PARALLEL_SIMD
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] * b[i];
}

void fg_k_div(size_t n, const float *a, const float *b, float *y)
{
    PARALLEL_SIMD
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] / b[i];
}

void fg_k_scale(size_t n, float s, const float *x, float *y)
{
    PARALLEL_SIMD
    for (size_t i = 0; i < n; i++)
        y[i] = s * x[i];
}

void fg_k_axpy(size_t n, float s, const float *x, float *y)
{
    PARALLEL_SIMD
    for (size_t i = 0; i < n; i++)
        y[i] += s * x[i];
}

void fg_k_add_scalar(size_t n, float s, const float *x, float *y)
{
    PARALLEL_SIMD
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] + s;
}

/* exp and log call libm per element (glibc's vector variants need
 * -ffast-math), so these loops are threaded but not vectorized. */
void fg_k_exp(size_t n, const float *x, float *y)
{
    PARALLEL
    for (size_t i = 0; i < n; i++)
        y[i] = expf(x[i]);
}

void fg_k_log(size_t n, const float *x, float *y)
{
    PARALLEL
    for (size_t i = 0; i < n; i++)
        y[i] = logf(x[i]);
}

/* exp(-|x|) never overflows: for x < 0 the sigmoid is e / (1 + e), which
 * keeps tiny values instead of rounding 1 - 1/(1 + e) to zero. */
void fg_k_sigmoid(size_t n, const float *x, float *y)
{
    PARALLEL
    for (size_t i = 0; i < n; i++) {
        float e = expf(-fabsf(x[i]));
        float s = 1.0f / (1.0f + e);
        y[i] = x[i] >= 0.0f ? s : e * s;
    }
}

/* log sigmoid(x) = min(x, 0) - log(1 + exp(-|x|)), finite for every x. */
void fg_k_log_sigmoid(size_t n, const float *x, float *y)
{
    PARALLEL
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = fminf(v, 0.0f) - log1pf(expf(-fabsf(v)));
    }
}

void fg_k_relu(size_t n, const float *x, float *y)
{
    PARALLEL_SIMD
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void fg_k_square(size_t n, const float *x, float *y)
{
    PARALLEL_SIMD
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * x[i];
}

void fg_k_mul_acc(size_t n, const float *a, const float *b, float *y)
{
    PARALLEL_SIMD
    for (size_t i = 0; i < n; i++)
        y[i] += a[i] * b[i];
}

void fg_k_add_channel(int N, int C, int HW, const float *x, const float *v, float *y)
{
    size_t n = (size_t)N * C * HW;
    #pragma omp parallel for collapse(2) if(n > FG_PARALLEL_THRESHOLD)
    for (int s = 0; s < N; s++)
        for (int c = 0; c < C; c++) {
            size_t off = ((size_t)s * C + c) * HW;
            const float *xs = x + off;
            float *ys = y + off;
            float vc = v[c];
            #pragma omp simd
            for (int i = 0; i < HW; i++)
                ys[i] = xs[i] + vc;
        }
}

void fg_k_mul_channel(int N, int C, int HW, const float *x, const float *v, float *y)
{
    size_t n = (size_t)N * C * HW;
    #pragma omp parallel for collapse(2) if(n > FG_PARALLEL_THRESHOLD)
    for (int s = 0; s < N; s++)
        for (int c = 0; c < C; c++) {
            size_t off = ((size_t)s * C + c) * HW;
            const float *xs = x + off;
            float *ys = y + off;
            float vc = v[c];
            #pragma omp simd
            for (int i = 0; i < HW; i++)
                ys[i] = xs[i] * vc;
        }
}

int fg_k_all_finite(size_t n, const float *x)
{
    size_t bad = 0;
    #pragma omp parallel for simd reduction(+:bad) if(n > FG_PARALLEL_THRESHOLD)
    for (size_t i = 0; i < n; i++)
        bad += !isfinite(x[i]);
    return bad == 0;
}
