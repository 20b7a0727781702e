/* Elementwise and per-channel kernels.
 *
 * `omp simd` makes GCC vectorize at -O2 (whose default cost model would not
 * for loops of unknown length) and states that iterations are independent,
 * which stays true when y aliases an input element for element. */
#include "tensor/parallel_internal.h"
#include "tensor/tensor.h"

#include <math.h>
#include <string.h>

void fg_k_fill(size_t n, float v, float *y)
{
    FG_FOR_SIMD(i, n, y[i] = v);
}

void fg_k_copy(size_t n, const float *x, float *y)
{
    if (x != y)
        memmove(y, x, n * sizeof(float));
}

void fg_k_add(size_t n, const float *a, const float *b, float *y)
{
    FG_FOR_SIMD(i, n, y[i] = a[i] + b[i]);
}

void fg_k_sub(size_t n, const float *a, const float *b, float *y)
{
    FG_FOR_SIMD(i, n, y[i] = a[i] - b[i]);
}

void fg_k_mul(size_t n, const float *a, const float *b, float *y)
{
    FG_FOR_SIMD(i, n, y[i] = a[i] * b[i]);
}

void fg_k_div(size_t n, const float *a, const float *b, float *y)
{
    FG_FOR_SIMD(i, n, y[i] = a[i] / b[i]);
}

void fg_k_scale(size_t n, float s, const float *x, float *y)
{
    FG_FOR_SIMD(i, n, y[i] = s * x[i]);
}

void fg_k_axpy(size_t n, float s, const float *x, float *y)
{
    FG_FOR_SIMD(i, n, y[i] += s * x[i]);
}

void fg_k_add_scalar(size_t n, float s, const float *x, float *y)
{
    FG_FOR_SIMD(i, n, y[i] = x[i] + s);
}

/* exp and log call libm per element (glibc's vector variants need
 * -ffast-math), so these loops are threaded but not vectorized. */
void fg_k_exp(size_t n, const float *x, float *y)
{
    FG_FOR(i, n, y[i] = expf(x[i]));
}

void fg_k_log(size_t n, const float *x, float *y)
{
    FG_FOR(i, n, y[i] = logf(x[i]));
}

/* exp(-|x|) never overflows: for x < 0 the sigmoid is e / (1 + e), which
 * keeps tiny values instead of rounding 1 - 1/(1 + e) to zero. */
void fg_k_sigmoid(size_t n, const float *x, float *y)
{
    FG_FOR(i, n,
        float e = expf(-fabsf(x[i]));
        float s = 1.0f / (1.0f + e);
        y[i] = x[i] >= 0.0f ? s : e * s;
    );
}

/* log sigmoid(x) = min(x, 0) - log(1 + exp(-|x|)), finite for every x. */
void fg_k_log_sigmoid(size_t n, const float *x, float *y)
{
    FG_FOR(i, n,
        float v = x[i];
        y[i] = fminf(v, 0.0f) - log1pf(expf(-fabsf(v)));
    );
}

void fg_k_relu(size_t n, const float *x, float *y)
{
    FG_FOR_SIMD(i, n, y[i] = x[i] > 0.0f ? x[i] : 0.0f);
}

void fg_k_square(size_t n, const float *x, float *y)
{
    FG_FOR_SIMD(i, n, y[i] = x[i] * x[i]);
}

void fg_k_mul_acc(size_t n, const float *a, const float *b, float *y)
{
    FG_FOR_SIMD(i, n, y[i] += a[i] * b[i]);
}

/* Plane p = s C + c of a per-channel op: y = x + v[c] or y = x v[c]. */
static inline void add_to_plane(long p, int C, int HW, const float *x, const float *v, float *y)
{
    const size_t off = (size_t)p * HW;
    const float vc = v[p % C];
    #pragma omp simd
    for (int i = 0; i < HW; i++)
        y[off + i] = x[off + i] + vc;
}

static inline void scale_plane(long p, int C, int HW, const float *x, const float *v, float *y)
{
    const size_t off = (size_t)p * HW;
    const float vc = v[p % C];
    #pragma omp simd
    for (int i = 0; i < HW; i++)
        y[off + i] = x[off + i] * vc;
}

void fg_k_add_channel(int N, int C, int HW, const float *x, const float *v, float *y)
{
    FG_FOR_ITEMS((size_t)N * C * HW, p, (long)N * C, add_to_plane(p, C, HW, x, v, y));
}

void fg_k_mul_channel(int N, int C, int HW, const float *x, const float *v, float *y)
{
    FG_FOR_ITEMS((size_t)N * C * HW, p, (long)N * C, scale_plane(p, C, HW, x, v, y));
}

int fg_k_all_finite(size_t n, const float *x)
{
    size_t bad = 0;   /* a count: the same whatever the order */
    if (fg_parallel_pays(n)) {
        #pragma omp parallel for simd reduction(+:bad)
        for (size_t i = 0; i < n; i++)
            bad += !isfinite(x[i]);
    } else {
        #pragma omp simd reduction(+:bad)
        for (size_t i = 0; i < n; i++)
            bad += !isfinite(x[i]);
    }
    return bad == 0;
}
