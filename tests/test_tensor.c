/* tensor/: kernels against naive loops, conv2d against direct convolution,
 * linear algebra against hand-computed matrices, RNG reproducibility and
 * statistics, arena footprint. */
#include "tensor/tensor.h"
#include "tensor/parallel_internal.h"
#include "check_main.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Sizes straddling FG_PARALLEL_THRESHOLD so both the serial and the OpenMP
 * branch of every kernel run. */
static const size_t sizes[] = {1, 7, 1000, FG_PARALLEL_THRESHOLD + 12345};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static float *random_floats(fg_rng *r, size_t n, float lo, float hi)
{
    float *p = fg_xmalloc(n * sizeof(float), "test");
    fg_rng_uniform(r, p, n);
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * p[i];
    return p;
}

static void assert_close(const float *got, const float *want, size_t n, double tol, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        ck_assert_msg(d <= tol * (1.0 + fabs(want[i])), "%s[%zu]: got %.9g want %.9g",
                      what, i, got[i], want[i]);
    }
}

/* ---------------------------------------------------------------- elementwise */

START_TEST(test_binary_kernels)
{
    fg_rng r;
    fg_rng_seed(&r, 1);
    for (size_t t = 0; t < NSIZES; t++) {
        size_t n = sizes[t];
        float *a = random_floats(&r, n, -2, 2), *b = random_floats(&r, n, 0.5f, 3);
        float *y = fg_xmalloc(n * sizeof(float), "y"), *want = fg_xmalloc(n * sizeof(float), "w");

        fg_k_add(n, a, b, y);
        for (size_t i = 0; i < n; i++) want[i] = a[i] + b[i];
        assert_close(y, want, n, 0, "add");
        fg_k_sub(n, a, b, y);
        for (size_t i = 0; i < n; i++) want[i] = a[i] - b[i];
        assert_close(y, want, n, 0, "sub");
        fg_k_mul(n, a, b, y);
        for (size_t i = 0; i < n; i++) want[i] = a[i] * b[i];
        assert_close(y, want, n, 0, "mul");
        fg_k_div(n, a, b, y);
        for (size_t i = 0; i < n; i++) want[i] = a[i] / b[i];
        assert_close(y, want, n, 0, "div");
        fg_k_scale(n, -1.5f, a, y);
        for (size_t i = 0; i < n; i++) want[i] = -1.5f * a[i];
        assert_close(y, want, n, 0, "scale");
        fg_k_add_scalar(n, 0.25f, a, y);
        for (size_t i = 0; i < n; i++) want[i] = a[i] + 0.25f;
        assert_close(y, want, n, 0, "add_scalar");

        /* Accumulating kernels start from a nonzero y. */
        fg_k_fill(n, 0.5f, y);
        for (size_t i = 0; i < n; i++) ck_assert(y[i] == 0.5f);
        fg_k_axpy(n, 3.0f, a, y);
        for (size_t i = 0; i < n; i++) want[i] = 0.5f + 3.0f * a[i];
        assert_close(y, want, n, 1e-6, "axpy");
        fg_k_mul_acc(n, a, b, y);
        for (size_t i = 0; i < n; i++) want[i] += a[i] * b[i];
        assert_close(y, want, n, 1e-6, "mul_acc");

        /* Output aliasing an input. */
        fg_k_copy(n, a, y);
        assert_close(y, a, n, 0, "copy");
        fg_k_add(n, y, b, y);
        for (size_t i = 0; i < n; i++) want[i] = a[i] + b[i];
        assert_close(y, want, n, 0, "add in place");
        free(a); free(b); free(y); free(want);
    }
}
END_TEST

START_TEST(test_unary_kernels)
{
    fg_rng r;
    fg_rng_seed(&r, 2);
    for (size_t t = 0; t < NSIZES; t++) {
        size_t n = sizes[t];
        float *x = random_floats(&r, n, -20, 20), *pos = random_floats(&r, n, 1e-3f, 50);
        float *y = fg_xmalloc(n * sizeof(float), "y"), *want = fg_xmalloc(n * sizeof(float), "w");

        fg_k_exp(n, x, y);
        for (size_t i = 0; i < n; i++) want[i] = expf(x[i]);
        assert_close(y, want, n, 0, "exp");
        fg_k_log(n, pos, y);
        for (size_t i = 0; i < n; i++) want[i] = logf(pos[i]);
        assert_close(y, want, n, 0, "log");
        fg_k_sigmoid(n, x, y);
        for (size_t i = 0; i < n; i++) want[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
        assert_close(y, want, n, 2e-7, "sigmoid");
        fg_k_log_sigmoid(n, x, y);
        for (size_t i = 0; i < n; i++) want[i] = (float)-log1p(exp(-(double)x[i]));
        assert_close(y, want, n, 2e-7, "log_sigmoid");
        fg_k_relu(n, x, y);
        for (size_t i = 0; i < n; i++) want[i] = x[i] > 0 ? x[i] : 0;
        assert_close(y, want, n, 0, "relu");
        fg_k_square(n, x, y);
        for (size_t i = 0; i < n; i++) want[i] = x[i] * x[i];
        assert_close(y, want, n, 0, "square");
        free(x); free(pos); free(y); free(want);
    }
}
END_TEST

START_TEST(test_sigmoid_extremes)
{
    float x[4] = {100.0f, -100.0f, 1000.0f, -1000.0f}, s[4], ls[4];
    fg_k_sigmoid(4, x, s);
    fg_k_log_sigmoid(4, x, ls);
    ck_assert(s[0] == 1.0f);
    /* exp(-100) = 3.72e-44 is a float denormal: nonzero, within its coarse
     * precision. */
    ck_assert(s[1] > 0.0f);
    ck_assert(fabs(s[1] - exp(-100.0)) <= 0.05 * exp(-100.0));
    ck_assert(s[2] == 1.0f && s[3] == 0.0f);
    ck_assert(ls[0] <= 0.0f && ls[0] > -1e-30f);
    ck_assert(fabsf(ls[1] + 100.0f) < 1e-5f);
    ck_assert(isfinite(ls[2]) && ls[2] <= 0.0f && ls[2] > -1e-30f);
    ck_assert(fabsf(ls[3] + 1000.0f) < 1e-3f);
}
END_TEST

START_TEST(test_channel_kernels)
{
    const int shapes[][3] = {{1, 1, 1}, {2, 3, 5}, {4, 8, 2048}}; /* last above threshold */
    fg_rng r;
    fg_rng_seed(&r, 3);
    for (int t = 0; t < 3; t++) {
        int N = shapes[t][0], C = shapes[t][1], HW = shapes[t][2];
        size_t n = (size_t)N * C * HW;
        float *x = random_floats(&r, n, -1, 1), *v = random_floats(&r, (size_t)C, -2, 2);
        float *y = fg_xmalloc(n * sizeof(float), "y"), *want = fg_xmalloc(n * sizeof(float), "w");
        for (int b = 0; b < N; b++)
            for (int c = 0; c < C; c++)
                for (int i = 0; i < HW; i++) {
                    size_t k = ((size_t)b * C + c) * HW + i;
                    want[k] = x[k] + v[c];
                }
        fg_k_add_channel(N, C, HW, x, v, y);
        assert_close(y, want, n, 0, "add_channel");
        for (int b = 0; b < N; b++)
            for (int c = 0; c < C; c++)
                for (int i = 0; i < HW; i++) {
                    size_t k = ((size_t)b * C + c) * HW + i;
                    want[k] = x[k] * v[c];
                }
        fg_k_mul_channel(N, C, HW, x, v, y);
        assert_close(y, want, n, 0, "mul_channel");
        free(x); free(v); free(y); free(want);
    }
}
END_TEST

START_TEST(test_all_finite)
{
    size_t n = sizes[NSIZES - 1];
    float *x = fg_xcalloc(n, sizeof(float), "x");
    ck_assert(fg_k_all_finite(n, x));
    x[n - 3] = NAN;
    ck_assert(!fg_k_all_finite(n, x));
    x[n - 3] = -INFINITY;
    ck_assert(!fg_k_all_finite(n, x));
    x[n - 3] = 3e38f;
    ck_assert(fg_k_all_finite(n, x));
    free(x);
}
END_TEST

/* ---------------------------------------------------------------- reductions */

START_TEST(test_reductions)
{
    fg_rng r;
    fg_rng_seed(&r, 4);
    for (size_t t = 0; t < NSIZES; t++) {
        size_t n = sizes[t];
        float *a = random_floats(&r, n, -1, 3), *b = random_floats(&r, n, -2, 1);
        double s = 0, d = 0, m = 0;
        for (size_t i = 0; i < n; i++) {
            s += a[i];
            d += (double)a[i] * b[i];
            m = fmax(m, fabs((double)a[i] - b[i]));
        }
        ck_assert(fabs(fg_k_sum(n, a) - s) <= 1e-12 * (1 + fabs(s)) * n);
        ck_assert(fabs(fg_k_dot(n, a, b) - d) <= 1e-12 * (1 + fabs(d)) * n);
        ck_assert(fg_k_max_abs_diff(n, a, b) == m);
        a[n / 2] = NAN;
        ck_assert(isinf(fg_k_max_abs_diff(n, a, b)));
        free(a); free(b);
    }
}
END_TEST

START_TEST(test_per_sample_and_channel_sums)
{
    const int shapes[][3] = {{1, 1, 1}, {3, 2, 7}, {4, 16, 1024}}; /* last above threshold */
    fg_rng r;
    fg_rng_seed(&r, 5);
    for (int t = 0; t < 3; t++) {
        int N = shapes[t][0], C = shapes[t][1], HW = shapes[t][2];
        size_t D = (size_t)C * HW;
        float *x = random_floats(&r, N * D, -1, 2);
        double per_sample[4], per_channel[16], squares[16];
        fg_k_sum_per_sample(N, D, x, per_sample);
        fg_k_sum_per_channel(N, C, HW, x, per_channel, squares);
        for (int b = 0; b < N; b++) {
            double s = 0;
            for (size_t i = 0; i < D; i++)
                s += x[b * D + i];
            ck_assert_msg(fabs(per_sample[b] - s) < 1e-9, "sample %d: %g vs %g", b, per_sample[b], s);
        }
        for (int c = 0; c < C; c++) {
            double s = 0, s2 = 0;
            for (int b = 0; b < N; b++)
                for (int i = 0; i < HW; i++) {
                    double v = x[b * D + (size_t)c * HW + i];
                    s += v;
                    s2 += v * v;
                }
            ck_assert_msg(fabs(per_channel[c] - s) < 1e-9, "channel %d: %g vs %g", c, per_channel[c], s);
            ck_assert_msg(fabs(squares[c] - s2) < 1e-9, "channel %d squares: %g vs %g", c, squares[c], s2);
        }
        /* out2 is optional */
        fg_k_sum_per_channel(N, C, HW, x, per_channel, NULL);
        free(x);
    }
}
END_TEST

/* ---------------------------------------------------------------- conv2d */

typedef struct { int N, Ci, Co, H, W, k; } conv_case;
static const conv_case conv_cases[] = {
    {2, 3, 4, 5, 7, 3}, {1, 2, 5, 5, 7, 1}, {3, 4, 2, 6, 5, 3},
    {2, 1, 3, 1, 1, 3}, {1, 2, 2, 5, 7, 5}, {2, 5, 3, 4, 4, 1},
    /* Images of 1024+ pixels take one GEMM per sample; 300 pixels group
     * three samples per GEMM and leave a partial group. */
    {2, 2, 3, 32, 33, 3}, {2, 3, 2, 32, 32, 1}, {4, 2, 3, 15, 20, 3}, {5, 3, 2, 15, 20, 1},
    /* Fewer output than input channels with k > 1 take the narrow path:
     * one sample per GEMM, then 49 pixels (groups of 5 and a partial
     * group), a 5x5 kernel, and a 1x1 image. */
    {3, 9, 2, 16, 17, 3}, {7, 6, 3, 7, 7, 3}, {2, 5, 2, 6, 5, 5}, {3, 4, 1, 1, 1, 3},
    /* 1x1 with few channels runs as direct loops; with more than 64 x 64
     * as GEMMs, one per sample or (25 pixels) grouped. */
    {2, 65, 64, 3, 4, 1}, {3, 70, 60, 5, 5, 1},
};
#define NCONV (sizeof conv_cases / sizeof conv_cases[0])

/* x value at (n, c, h, w), zero outside the image. */
static double at(const float *x, int C, int H, int W, int n, int c, int h, int w)
{
    if (h < 0 || h >= H || w < 0 || w >= W)
        return 0.0;
    return x[(((size_t)n * C + c) * H + h) * W + w];
}

static void naive_conv(conv_case p, const float *x, const float *w, const float *bias, double *y)
{
    int pad = p.k / 2;
    for (int n = 0; n < p.N; n++)
        for (int o = 0; o < p.Co; o++)
            for (int h = 0; h < p.H; h++)
                for (int v = 0; v < p.W; v++) {
                    double s = bias ? bias[o] : 0.0;
                    for (int c = 0; c < p.Ci; c++)
                        for (int i = 0; i < p.k; i++)
                            for (int j = 0; j < p.k; j++)
                                s += w[((o * p.Ci + c) * p.k + i) * p.k + j] *
                                     at(x, p.Ci, p.H, p.W, n, c, h + i - pad, v + j - pad);
                    y[(((size_t)n * p.Co + o) * p.H + h) * p.W + v] = s;
                }
}

/* dx[n,c,h,w] = sum over o,i,j of w[o,c,i,j] dy[n,o,h-i+pad,w-j+pad] */
static void naive_conv_input_grad(conv_case p, const float *dy, const float *w, double *dx)
{
    int pad = p.k / 2;
    for (int n = 0; n < p.N; n++)
        for (int c = 0; c < p.Ci; c++)
            for (int h = 0; h < p.H; h++)
                for (int v = 0; v < p.W; v++) {
                    double s = 0;
                    for (int o = 0; o < p.Co; o++)
                        for (int i = 0; i < p.k; i++)
                            for (int j = 0; j < p.k; j++)
                                s += w[((o * p.Ci + c) * p.k + i) * p.k + j] *
                                     at(dy, p.Co, p.H, p.W, n, o, h - i + pad, v - j + pad);
                    dx[(((size_t)n * p.Ci + c) * p.H + h) * p.W + v] = s;
                }
}

static void naive_conv_weight_grad(conv_case p, const float *dy, const float *x, double *dw, double *db)
{
    int pad = p.k / 2;
    for (int o = 0; o < p.Co; o++) {
        for (int c = 0; c < p.Ci; c++)
            for (int i = 0; i < p.k; i++)
                for (int j = 0; j < p.k; j++) {
                    double s = 0;
                    for (int n = 0; n < p.N; n++)
                        for (int h = 0; h < p.H; h++)
                            for (int v = 0; v < p.W; v++)
                                s += at(dy, p.Co, p.H, p.W, n, o, h, v) *
                                     at(x, p.Ci, p.H, p.W, n, c, h + i - pad, v + j - pad);
                    dw[((o * p.Ci + c) * p.k + i) * p.k + j] = s;
                }
        double s = 0;
        for (int n = 0; n < p.N; n++)
            for (int h = 0; h < p.H; h++)
                for (int v = 0; v < p.W; v++)
                    s += at(dy, p.Co, p.H, p.W, n, o, h, v);
        db[o] = s;
    }
}

static void assert_close_double(const float *got, const double *want, size_t n, double tol, const char *what)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= tol * (1.0 + fabs(want[i])),
                      "%s[%zu]: got %.9g want %.9g", what, i, got[i], want[i]);
}

START_TEST(test_conv2d_forward)
{
    conv_case p = conv_cases[_i];
    size_t nx = (size_t)p.N * p.Ci * p.H * p.W, ny = (size_t)p.N * p.Co * p.H * p.W;
    size_t nw = (size_t)p.Co * p.Ci * p.k * p.k;
    fg_rng r;
    fg_rng_seed(&r, 10 + _i);
    float *x = random_floats(&r, nx, -1, 1), *w = random_floats(&r, nw, -1, 1);
    float *bias = random_floats(&r, (size_t)p.Co, -1, 1);
    float *y = fg_xmalloc(ny * sizeof(float), "y");
    double *want = fg_xmalloc(ny * sizeof(double), "want");
    fg_arena *arena = fg_arena_create(1 << 16);

    naive_conv(p, x, w, bias, want);
    fg_k_fill(ny, NAN, y);      /* forward must overwrite, never read y */
    fg_conv2d_forward(p.N, p.Ci, p.H, p.W, p.Co, p.k, x, w, bias, y, arena);
    assert_close_double(y, want, ny, 1e-5, "conv forward (bias, arena)");

    naive_conv(p, x, w, NULL, want);
    fg_k_fill(ny, NAN, y);
    fg_conv2d_forward(p.N, p.Ci, p.H, p.W, p.Co, p.k, x, w, NULL, y, NULL);
    assert_close_double(y, want, ny, 1e-5, "conv forward (no bias, malloc scratch)");

    fg_arena_destroy(arena);
    free(x); free(w); free(bias); free(y); free(want);
}
END_TEST

START_TEST(test_conv2d_backward)
{
    conv_case p = conv_cases[_i];
    size_t nx = (size_t)p.N * p.Ci * p.H * p.W, ny = (size_t)p.N * p.Co * p.H * p.W;
    size_t nw = (size_t)p.Co * p.Ci * p.k * p.k;
    fg_rng r;
    fg_rng_seed(&r, 20 + _i);
    float *x = random_floats(&r, nx, -1, 1), *w = random_floats(&r, nw, -1, 1);
    float *dy = random_floats(&r, ny, -1, 1);
    /* Gradients accumulate, so start from known nonzero values. */
    float *dx = random_floats(&r, nx, -1, 1), *dw = random_floats(&r, nw, -1, 1);
    float *db = random_floats(&r, (size_t)p.Co, -1, 1);
    double *want_dx = fg_xmalloc(nx * sizeof(double), "dx"), *want_dw = fg_xmalloc(nw * sizeof(double), "dw");
    double *want_db = fg_xmalloc((size_t)p.Co * sizeof(double), "db");
    fg_arena *arena = fg_arena_create(1 << 16);

    naive_conv_input_grad(p, dy, w, want_dx);
    naive_conv_weight_grad(p, dy, x, want_dw, want_db);
    for (size_t i = 0; i < nx; i++) want_dx[i] += dx[i];
    for (size_t i = 0; i < nw; i++) want_dw[i] += dw[i];
    for (int o = 0; o < p.Co; o++) want_db[o] += db[o];

    fg_conv2d_backward_input(p.N, p.Ci, p.H, p.W, p.Co, p.k, dy, w, dx, arena);
    fg_conv2d_backward_weight(p.N, p.Ci, p.H, p.W, p.Co, p.k, dy, x, dw, db, arena);
    assert_close_double(dx, want_dx, nx, 1e-5, "conv dx");
    assert_close_double(dw, want_dw, nw, 1e-5, "conv dw");
    assert_close_double(db, want_db, (size_t)p.Co, 1e-5, "conv db");

    /* Without scratch arena and without bias gradient. */
    float *dw2 = fg_xcalloc(nw, sizeof(float), "dw2");
    fg_conv2d_backward_weight(p.N, p.Ci, p.H, p.W, p.Co, p.k, dy, x, dw2, NULL, NULL);
    naive_conv_weight_grad(p, dy, x, want_dw, want_db);
    assert_close_double(dw2, want_dw, nw, 1e-5, "conv dw (malloc scratch)");

    fg_arena_destroy(arena);
    free(x); free(w); free(dy); free(dx); free(dw); free(dw2); free(db);
    free(want_dx); free(want_dw); free(want_db);
}
END_TEST

/* <conv(x), dy> == <x, conv^T(dy)>: backward_input is the adjoint of the
 * bias-free forward, checked without any naive reference. */
START_TEST(test_conv2d_adjoint)
{
    conv_case p = conv_cases[_i];
    size_t nx = (size_t)p.N * p.Ci * p.H * p.W, ny = (size_t)p.N * p.Co * p.H * p.W;
    size_t nw = (size_t)p.Co * p.Ci * p.k * p.k;
    fg_rng r;
    fg_rng_seed(&r, 30 + _i);
    float *x = random_floats(&r, nx, -1, 1), *w = random_floats(&r, nw, -1, 1);
    float *dy = random_floats(&r, ny, -1, 1);
    float *y = fg_xmalloc(ny * sizeof(float), "y"), *dx = fg_xcalloc(nx, sizeof(float), "dx");
    fg_conv2d_forward(p.N, p.Ci, p.H, p.W, p.Co, p.k, x, w, NULL, y, NULL);
    fg_conv2d_backward_input(p.N, p.Ci, p.H, p.W, p.Co, p.k, dy, w, dx, NULL);
    double lhs = fg_k_dot(ny, y, dy), rhs = fg_k_dot(nx, x, dx);
    ck_assert_msg(fabs(lhs - rhs) <= 1e-5 * (1 + fabs(lhs)), "<conv x, dy> %.9g vs <x, conv^T dy> %.9g", lhs, rhs);
    free(x); free(w); free(dy); free(y); free(dx);
}
END_TEST

/* (N, C, P) <-> (C, N, P) */
static void to_channel_major(int N, int C, size_t P, const float *x, float *y)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            memcpy(y + ((size_t)c * N + n) * P, x + ((size_t)n * C + c) * P, P * sizeof(float));
}

static void from_channel_major_double(int N, int C, size_t P, const double *x, double *y)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            memcpy(y + ((size_t)c * N + n) * P, x + ((size_t)n * C + c) * P, P * sizeof(double));
}

/* The channel-major kernels against the naive convolution, with the
 * default column budget (one run) and a budget of one byte (one sample per
 * run, so runs and their column offsets are exercised). */
START_TEST(test_conv2d_channel_major)
{
    conv_case p = conv_cases[_i];
    const size_t P = (size_t)p.H * p.W;
    size_t nx = (size_t)p.N * p.Ci * P, ny = (size_t)p.N * p.Co * P;
    size_t nw = (size_t)p.Co * p.Ci * p.k * p.k;
    fg_rng r;
    fg_rng_seed(&r, 50 + _i);
    float *x = random_floats(&r, nx, -1, 1), *w = random_floats(&r, nw, -1, 1);
    float *bias = random_floats(&r, (size_t)p.Co, -1, 1), *dy = random_floats(&r, ny, -1, 1);
    float *xc = fg_xmalloc(nx * sizeof(float), "xc"), *dyc = fg_xmalloc(ny * sizeof(float), "dyc");
    to_channel_major(p.N, p.Ci, P, x, xc);
    to_channel_major(p.N, p.Co, P, dy, dyc);
    double *naive = fg_xmalloc((nx > ny ? nx : ny) * sizeof(double), "naive");
    double *want_y = fg_xmalloc(ny * sizeof(double), "want y");
    double *want_dx = fg_xmalloc(nx * sizeof(double), "want dx");
    double *want_dw = fg_xmalloc(nw * sizeof(double), "want dw");
    double *want_db = fg_xmalloc((size_t)p.Co * sizeof(double), "want db");
    naive_conv(p, x, w, bias, naive);
    from_channel_major_double(p.N, p.Co, P, naive, want_y);
    naive_conv_input_grad(p, dy, w, naive);
    from_channel_major_double(p.N, p.Ci, P, naive, want_dx);
    naive_conv_weight_grad(p, dy, x, want_dw, want_db);

    float *y = fg_xmalloc(ny * sizeof(float), "y"), *dx = fg_xmalloc(nx * sizeof(float), "dx");
    float *dw = fg_xmalloc(nw * sizeof(float), "dw"), *db = fg_xmalloc((size_t)p.Co * sizeof(float), "db");
    fg_arena *arena = fg_arena_create(1 << 16);
    const size_t budgets[2] = {(size_t)32 << 20, 1};
    for (int b = 0; b < 2; b++) {
        size_t old = fg_conv_set_column_budget(budgets[b]);
        fg_k_fill(ny, NAN, y);      /* forward must overwrite, never read y */
        fg_conv2d_cm_forward(p.N, p.Ci, p.H, p.W, p.Co, p.k, xc, w, bias, y, arena);
        assert_close_double(y, want_y, ny, 1e-5, "channel-major forward");
        /* Gradients accumulate: start from ones. */
        fg_k_fill(nx, 1.0f, dx);
        fg_k_fill(nw, 1.0f, dw);
        fg_k_fill((size_t)p.Co, 1.0f, db);
        fg_conv2d_cm_backward_input(p.N, p.Ci, p.H, p.W, p.Co, p.k, dyc, w, dx, 1, arena);
        fg_conv2d_cm_backward_weight(p.N, p.Ci, p.H, p.W, p.Co, p.k, dyc, xc, dw, db, NULL);
        for (size_t i = 0; i < nx; i++) dx[i] -= 1.0f;
        for (size_t i = 0; i < nw; i++) dw[i] -= 1.0f;
        for (int o = 0; o < p.Co; o++) db[o] -= 1.0f;
        assert_close_double(dx, want_dx, nx, 1e-5, "channel-major dx");
        assert_close_double(dw, want_dw, nw, 1e-5, "channel-major dw");
        assert_close_double(db, want_db, (size_t)p.Co, 1e-5, "channel-major db");
        /* Without accumulation dx is stored over, never read. */
        fg_k_fill(nx, NAN, dx);
        fg_conv2d_cm_backward_input(p.N, p.Ci, p.H, p.W, p.Co, p.k, dyc, w, dx, 0, arena);
        assert_close_double(dx, want_dx, nx, 1e-5, "channel-major dx (stored)");
        fg_arena_reset(arena);
        fg_conv_set_column_budget(old);
    }
    fg_arena_destroy(arena);
    free(x); free(w); free(bias); free(dy); free(xc); free(dyc); free(naive);
    free(want_y); free(want_dx); free(want_dw); free(want_db);
    free(y); free(dx); free(dw); free(db);
}
END_TEST

START_TEST(test_im2col_adjoint)
{
    const int shapes[][4] = {{3, 5, 7, 3}, {2, 4, 4, 1}, {1, 1, 1, 3}, {2, 6, 3, 5}};
    fg_rng r;
    fg_rng_seed(&r, 40);
    for (int t = 0; t < 4; t++) {
        int Ci = shapes[t][0], H = shapes[t][1], W = shapes[t][2], k = shapes[t][3];
        size_t nx = (size_t)Ci * H * W, nc = nx * k * k;
        /* Small integers make every sum exact (col2im adds in float), so
         * the two inner products must agree to the last bit. */
        float *x = random_floats(&r, nx, -8, 8), *c = random_floats(&r, nc, -8, 8);
        for (size_t i = 0; i < nx; i++) x[i] = floorf(x[i]);
        for (size_t i = 0; i < nc; i++) c[i] = floorf(c[i]);
        float *col = fg_xmalloc(nc * sizeof(float), "col"), *xt = fg_xcalloc(nx, sizeof(float), "xt");
        fg_im2col(Ci, H, W, k, x, col);
        fg_col2im(Ci, H, W, k, c, xt);
        double lhs = fg_k_dot(nc, col, c), rhs = fg_k_dot(nx, x, xt);
        ck_assert_msg(lhs == rhs, "%.12g vs %.12g", lhs, rhs);
        /* The centre tap of the column matrix is the image itself. */
        int centre = (k / 2) * k + k / 2;
        for (int ch = 0; ch < Ci; ch++)
            for (int i = 0; i < H * W; i++)
                ck_assert(col[((size_t)ch * k * k + centre) * H * W + i] == x[(size_t)ch * H * W + i]);
        free(x); free(c); free(col); free(xt);
    }
}
END_TEST

/* ---------------------------------------------------------------- layout */

START_TEST(test_squeeze_order)
{
    float x[16], y[16], back[16];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i;      /* x[h][w] = 4h + w */
    fg_k_squeeze2d(1, 1, 4, 4, x, y);
    const float want[16] = {0, 2, 8, 10,   1, 3, 9, 11,   4, 6, 12, 14,   5, 7, 13, 15};
    for (int i = 0; i < 16; i++)
        ck_assert_msg(y[i] == want[i], "y[%d] = %g, want %g", i, y[i], want[i]);
    fg_k_unsqueeze2d(1, 4, 2, 2, y, back);
    ck_assert(memcmp(back, x, sizeof x) == 0);
}
END_TEST

START_TEST(test_squeeze_roundtrip)
{
    const int shapes[][4] = {{2, 3, 6, 8}, {1, 2, 2, 2}, {4, 12, 32, 32}}; /* last above threshold */
    fg_rng r;
    fg_rng_seed(&r, 50);
    for (int t = 0; t < 3; t++) {
        int N = shapes[t][0], C = shapes[t][1], H = shapes[t][2], W = shapes[t][3];
        size_t n = (size_t)N * C * H * W;
        float *x = random_floats(&r, n, -1, 1), *y = fg_xmalloc(n * sizeof(float), "y");
        float *back = fg_xmalloc(n * sizeof(float), "back");
        fg_k_squeeze2d(N, C, H, W, x, y);
        /* Spot check against the index formula. */
        int b = N - 1, c = C - 1, h = H / 2 - 1, w = 0, i = 1, j = 0;
        ck_assert(y[(((size_t)b * 4 * C + c * 4 + i * 2 + j) * (H / 2) + h) * (W / 2) + w] ==
                  x[(((size_t)b * C + c) * H + 2 * h + i) * W + 2 * w + j]);
        fg_k_unsqueeze2d(N, 4 * C, H / 2, W / 2, y, back);
        ck_assert(memcmp(back, x, n * sizeof(float)) == 0);
        fg_k_squeeze2d(N, C, H, W, back, y);
        fg_k_unsqueeze2d(N, 4 * C, H / 2, W / 2, y, back);
        ck_assert(memcmp(back, x, n * sizeof(float)) == 0);
        free(x); free(y); free(back);
    }
}
END_TEST

/* ---------------------------------------------------------------- linalg */

static void assert_mat_close(int n, const double *a, const double *b, double tol, const char *what)
{
    for (int i = 0; i < n * n; i++)
        ck_assert_msg(fabs(a[i] - b[i]) <= tol, "%s[%d,%d]: %.15g vs %.15g", what, i / n, i % n, a[i], b[i]);
}

static void identity(int n, double *m)
{
    memset(m, 0, (size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++)
        m[i * n + i] = 1.0;
}

static void transpose(int n, const double *a, double *t)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            t[j * n + i] = a[i * n + j];
}

START_TEST(test_linalg_hand_computed)
{
    double logabs, inv[9];
    int sign;
    /* det [[1,2],[3,4]] = -2; inverse [[-2,1],[1.5,-0.5]] */
    const double a2[4] = {1, 2, 3, 4}, inv2[4] = {-2, 1, 1.5, -0.5};
    fg_mat_slogdet(2, a2, &logabs, &sign);
    ck_assert_int_eq(sign, -1);
    ck_assert(fabs(logabs - log(2.0)) < 1e-14);
    ck_assert_int_eq(fg_mat_inverse(2, a2, inv), FG_OK);
    assert_mat_close(2, inv, inv2, 1e-14, "inverse 2x2");

    /* A zero in the top-left corner needs a row swap. det = -5, inverse = adj / det. */
    const double a3[9] = {0, 2, 1, 1, 1, 0, 3, 0, 1};
    const double inv3[9] = {-0.2, 0.4, 0.2, 0.2, 0.6, -0.2, 0.6, -1.2, 0.4};
    fg_mat_slogdet(3, a3, &logabs, &sign);
    ck_assert_int_eq(sign, -1);
    ck_assert(fabs(logabs - log(5.0)) < 1e-14);
    ck_assert_int_eq(fg_mat_inverse(3, a3, inv), FG_OK);
    assert_mat_close(3, inv, inv3, 1e-14, "inverse 3x3");

    /* A cyclic permutation: det +1 although LU swaps rows twice. */
    const double cyc[9] = {0, 1, 0, 0, 0, 1, 1, 0, 0};
    const double cyc_inv[9] = {0, 0, 1, 1, 0, 0, 0, 1, 0};
    fg_mat_slogdet(3, cyc, &logabs, &sign);
    ck_assert_int_eq(sign, 1);
    ck_assert(fabs(logabs) < 1e-15);
    ck_assert_int_eq(fg_mat_inverse(3, cyc, inv), FG_OK);
    assert_mat_close(3, inv, cyc_inv, 0, "inverse of a permutation");

    /* Diagonal with one negative entry: det = 2 * -3 * 0.5 = -3 */
    const double diag[9] = {2, 0, 0, 0, -3, 0, 0, 0, 0.5};
    fg_mat_slogdet(3, diag, &logabs, &sign);
    ck_assert_int_eq(sign, -1);
    ck_assert(fabs(logabs - log(3.0)) < 1e-14);
}
END_TEST

START_TEST(test_linalg_singular)
{
    double logabs, inv[9], lu[9];
    int sign, piv[3];
    const double s2[4] = {1, 2, 2, 4};
    const double s3[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};   /* rank 2 */
    const double *mats[2] = {s2, s3};
    const int dims[2] = {2, 3};
    for (int t = 0; t < 2; t++) {
        fg_clear_error();
        ck_assert_int_eq(fg_mat_inverse(dims[t], mats[t], inv), FG_ERR);
        ck_assert(strstr(fg_last_error(), "singular") != NULL);
        fg_mat_slogdet(dims[t], mats[t], &logabs, &sign);
        ck_assert_int_eq(sign, 0);
        ck_assert(isinf(logabs) && logabs < 0);
        memcpy(lu, mats[t], sizeof(double) * dims[t] * dims[t]);
        ck_assert_int_eq(fg_lu_decompose(dims[t], lu, piv, &sign), FG_ERR);
    }
}
END_TEST

START_TEST(test_linalg_random)
{
    enum { n = 8 };
    double a[n * n], inv[n * n], prod[n * n], eye[n * n], q[n * n], r[n * n], qt[n * n];
    fg_rng rng;
    fg_rng_seed(&rng, 60);
    fg_rng_normal_double(&rng, a, n * n);
    identity(n, eye);

    ck_assert_int_eq(fg_mat_inverse(n, a, inv), FG_OK);
    fg_matmul_double(n, a, inv, prod);
    assert_mat_close(n, prod, eye, 1e-10, "A inv(A)");
    fg_matmul_double(n, inv, a, prod);
    assert_mat_close(n, prod, eye, 1e-10, "inv(A) A");

    /* PA = LU reconstructs A. */
    double lu[n * n], l[n * n], u[n * n], pa[n * n];
    int piv[n], sign;
    memcpy(lu, a, sizeof a);
    ck_assert_int_eq(fg_lu_decompose(n, lu, piv, &sign), FG_OK);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            l[i * n + j] = i > j ? lu[i * n + j] : (i == j ? 1.0 : 0.0);
            u[i * n + j] = i <= j ? lu[i * n + j] : 0.0;
        }
    memcpy(pa, a, sizeof a);
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++) {
            double t = pa[k * n + j];
            pa[k * n + j] = pa[piv[k] * n + j];
            pa[piv[k] * n + j] = t;
        }
    fg_matmul_double(n, l, u, prod);
    assert_mat_close(n, prod, pa, 1e-12, "PA = LU");

    /* QR: A = QR, Q orthogonal, R upper triangular; |det A| = prod |R_ii|. */
    fg_qr(n, a, q, r);
    fg_matmul_double(n, q, r, prod);
    assert_mat_close(n, prod, a, 1e-12, "QR");
    transpose(n, q, qt);
    fg_matmul_double(n, qt, q, prod);
    assert_mat_close(n, prod, eye, 1e-12, "Q^T Q");
    double logabs_r = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++)
            ck_assert(r[i * n + j] == 0.0);
        logabs_r += log(fabs(r[i * n + i]));
    }
    double logabs;
    fg_mat_slogdet(n, a, &logabs, &sign);
    ck_assert_msg(fabs(logabs - logabs_r) < 1e-10, "slogdet %.15g vs QR %.15g", logabs, logabs_r);
    ck_assert(sign == 1 || sign == -1);

    /* Random orthogonal: Q^T Q = I and |det Q| = 1; the streams differ. */
    fg_random_orthogonal(n, &rng, q);
    transpose(n, q, qt);
    fg_matmul_double(n, qt, q, prod);
    assert_mat_close(n, prod, eye, 1e-12, "random orthogonal Q^T Q");
    fg_mat_slogdet(n, q, &logabs, &sign);
    ck_assert(fabs(logabs) < 1e-12);
    double q2[n * n];
    fg_random_orthogonal(n, &rng, q2);
    ck_assert(memcmp(q, q2, sizeof q) != 0);
}
END_TEST

/* ---------------------------------------------------------------- RNG */

enum { RNG_N = 100000 };   /* above the OpenMP threshold */

START_TEST(test_rng_thread_independent)
{
    static float u1[RNG_N], u2[RNG_N], n1[RNG_N], n2[RNG_N];
    static double d1[RNG_N], d2[RNG_N];
    int saved = fg_get_threads();
    fg_rng r;

    fg_set_threads(1);
    fg_rng_seed(&r, 42);
    fg_rng_uniform(&r, u1, RNG_N);
    fg_rng_normal(&r, n1, RNG_N);
    fg_rng_normal_double(&r, d1, RNG_N);

    fg_set_threads(2);
    ck_assert_int_eq(fg_get_threads(), 2);
    fg_rng_seed(&r, 42);
    fg_rng_uniform(&r, u2, RNG_N);
    fg_rng_normal(&r, n2, RNG_N);
    fg_rng_normal_double(&r, d2, RNG_N);
    fg_set_threads(saved);

    ck_assert(memcmp(u1, u2, sizeof u1) == 0);
    ck_assert(memcmp(n1, n2, sizeof n1) == 0);
    ck_assert(memcmp(d1, d2, sizeof d1) == 0);
    ck_assert(r.counter == 3 * (uint64_t)RNG_N);
}
END_TEST

/* Parts of a batch drawn apart (fg_rng_part) get exactly their images'
 * share of each draw for the whole batch, odd sizes splitting Box-Muller
 * pairs, and all end where the whole batch's stream ends. */
START_TEST(test_rng_parts)
{
    enum { TOTAL = 7, D1 = 13, D2 = 5 };
    float whole1[TOTAL * D1], whole2[TOTAL * D2], u_whole[TOTAL * D2];
    fg_rng w;
    fg_rng_seed_stream(&w, 11, 3);
    w.counter = 5;
    fg_rng start = w;
    fg_rng_normal(&w, whole1, TOTAL * D1);
    fg_rng_uniform(&w, u_whole, TOTAL * D2);
    fg_rng_normal(&w, whole2, TOTAL * D2);
    const int bounds[4] = {0, 3, 4, TOTAL};
    for (int p = 0; p < 3; p++) {
        int first = bounds[p], count = bounds[p + 1] - bounds[p];
        float a[TOTAL * D1], u[TOTAL * D2], b[TOTAL * D2];
        fg_rng r = fg_rng_part(&start, first, count, TOTAL);
        fg_rng_normal(&r, a, (size_t)count * D1);
        fg_rng_uniform(&r, u, (size_t)count * D2);
        fg_rng_normal(&r, b, (size_t)count * D2);
        ck_assert(memcmp(a, whole1 + first * D1, (size_t)count * D1 * sizeof(float)) == 0);
        ck_assert(memcmp(u, u_whole + first * D2, (size_t)count * D2 * sizeof(float)) == 0);
        ck_assert(memcmp(b, whole2 + first * D2, (size_t)count * D2 * sizeof(float)) == 0);
        ck_assert(r.counter == w.counter);
    }
}
END_TEST

START_TEST(test_rng_continuation)
{
    static float whole[RNG_N], parts[RNG_N];
    static double dwhole[RNG_N], dparts[RNG_N];
    const size_t first = 33333;    /* odd: splits a Box-Muller pair */
    fg_rng a, b;

    fg_rng_seed(&a, 7);
    fg_rng_uniform(&a, whole, RNG_N);
    fg_rng_seed(&b, 7);
    fg_rng_uniform(&b, parts, first);
    fg_rng_uniform(&b, parts + first, RNG_N - first);
    ck_assert(memcmp(whole, parts, sizeof whole) == 0);

    fg_rng_normal(&a, whole, RNG_N);
    fg_rng_normal(&b, parts, first);
    fg_rng_normal(&b, parts + first, RNG_N - first);
    ck_assert(memcmp(whole, parts, sizeof whole) == 0);

    fg_rng_normal_double(&a, dwhole, 5);
    for (int i = 0; i < 5; i++)
        fg_rng_normal_double(&b, dparts + i, 1);
    ck_assert(memcmp(dwhole, dparts, 5 * sizeof(double)) == 0);
    /* float normals are the double normals rounded */
    fg_rng_seed(&a, 9);
    fg_rng_seed(&b, 9);
    fg_rng_normal(&a, whole, 11);
    fg_rng_normal_double(&b, dwhole, 11);
    for (int i = 0; i < 11; i++)
        ck_assert(whole[i] == (float)dwhole[i]);
}
END_TEST

START_TEST(test_rng_statistics)
{
    static float u[RNG_N], z[RNG_N];
    fg_rng r;
    fg_rng_seed(&r, 123);
    fg_rng_uniform(&r, u, RNG_N);
    fg_rng_normal(&r, z, RNG_N);
    double su = 0, su2 = 0, sz = 0, sz2 = 0, sz4 = 0;
    for (int i = 0; i < RNG_N; i++) {
        ck_assert(u[i] >= 0.0f && u[i] < 1.0f);
        ck_assert(isfinite(z[i]));
        su += u[i]; su2 += (double)u[i] * u[i];
        sz += z[i]; sz2 += (double)z[i] * z[i]; sz4 += pow(z[i], 4);
    }
    double n = RNG_N;
    double mu = su / n, vu = su2 / n - mu * mu;
    double mz = sz / n, vz = sz2 / n - mz * mz;
    /* Five standard errors: sd(mean) = sqrt(var / n); sd of a variance
     * estimate = sqrt((m4 - var^2) / n), m4 = 1/80 for U(0,1), 3 for N(0,1). */
    ck_assert_msg(fabs(mu - 0.5) < 5 * sqrt(1.0 / 12 / n), "uniform mean %g", mu);
    ck_assert_msg(fabs(vu - 1.0 / 12) < 5 * sqrt((1.0 / 80 - 1.0 / 144) / n), "uniform var %g", vu);
    ck_assert_msg(fabs(mz) < 5 * sqrt(1.0 / n), "normal mean %g", mz);
    ck_assert_msg(fabs(vz - 1.0) < 5 * sqrt(2.0 / n), "normal var %g", vz);
    ck_assert_msg(fabs(sz4 / n - 3.0) < 5 * sqrt(96.0 / n), "normal 4th moment %g", sz4 / n);
}
END_TEST

START_TEST(test_rng_streams_and_permutation)
{
    float a[64], b[64];
    fg_rng r1, r2;
    fg_rng_seed_stream(&r1, 5, 0);
    fg_rng_seed_stream(&r2, 5, 1);
    fg_rng_uniform(&r1, a, 64);
    fg_rng_uniform(&r2, b, 64);
    int same = 0;
    for (int i = 0; i < 64; i++)
        same += a[i] == b[i];
    ck_assert_int_lt(same, 3);
    fg_rng_seed(&r1, 5);
    fg_rng_seed(&r2, 6);
    ck_assert(fg_rng_u32(&r1) != fg_rng_u32(&r2));
    fg_rng_seed_stream(&r1, 5, 1);
    fg_rng_uniform(&r1, a, 64);
    ck_assert(memcmp(a, b, sizeof a) == 0);

    int perm[1000], seen[1000] = {0}, fixed = 0;
    fg_rng_permutation(&r1, perm, 1000);
    for (int i = 0; i < 1000; i++) {
        ck_assert(perm[i] >= 0 && perm[i] < 1000);
        seen[perm[i]]++;
        fixed += perm[i] == i;
    }
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(seen[i], 1);
    ck_assert_int_lt(fixed, 10);   /* expected 1 fixed point */
}
END_TEST

/* ---------------------------------------------------------------- arena */

START_TEST(test_arena_flat)
{
    fg_arena *a = fg_arena_create(1 << 14);
    fg_rng r;
    fg_rng_seed(&r, 70);
    size_t reserved_after_warmup = 0;
    for (int step = 0; step < 1000; step++) {
        /* A step of varied intermediates, at most ~600 KiB in total and
         * never more than the first step's total. */
        size_t total = 0;
        for (int k = 0; k < 40; k++) {
            size_t bytes = step == 0 ? 15000 : fg_rng_u32(&r) % 15000;
            char *p = fg_arena_alloc(a, bytes);
            ck_assert(((uintptr_t)p & 63) == 0);
            memset(p, k, bytes);   /* sanitizers see an overrun */
            total += bytes;
        }
        float *z = fg_arena_calloc(a, 100 * sizeof(float));
        ck_assert(z[0] == 0.0f && z[99] == 0.0f);
        ck_assert(fg_arena_used(a) >= total);
        fg_arena_reset(a);
        ck_assert_int_eq(fg_arena_used(a), 0);
        if (step == 4)
            reserved_after_warmup = fg_arena_reserved(a);
        if (step > 4)
            ck_assert_msg(fg_arena_reserved(a) == reserved_after_warmup,
                          "step %d: reserved %zu, after warmup %zu", step,
                          fg_arena_reserved(a), reserved_after_warmup);
    }
    ck_assert(fg_arena_peak(a) <= reserved_after_warmup);
    ck_assert(fg_arena_peak(a) >= 40 * 15000);
    fg_arena_destroy(a);
}
END_TEST

START_TEST(test_arena_large_block)
{
    fg_arena *a = fg_arena_create(4096);
    void *small = fg_arena_alloc(a, 10);
    void *big = fg_arena_alloc(a, 1 << 20);     /* larger than a chunk */
    ck_assert(((uintptr_t)big & 63) == 0);
    memset(big, 1, 1 << 20);
    ck_assert(small != big);
    ck_assert(fg_arena_reserved(a) >= (1 << 20) + 4096);
    fg_arena_reset(a);
    size_t reserved = fg_arena_reserved(a);
    fg_arena_alloc(a, 10);
    fg_arena_alloc(a, 1 << 20);
    fg_arena_reset(a);
    ck_assert_int_eq(fg_arena_reserved(a), reserved);
    /* A trim keeps the first chunk only, and the arena grows again. */
    fg_arena_trim(a);
    ck_assert_int_eq(fg_arena_reserved(a), 4096);
    ck_assert_int_eq(fg_arena_used(a), 0);
    char *again = fg_arena_alloc(a, 1 << 19);
    memset(again, 2, 1 << 19);
    ck_assert_int_eq(fg_arena_reserved(a), 4096 + (1 << 19));
    fg_arena_destroy(a);
}
END_TEST

/* ---------------------------------------------------------------- tensors, errors */

START_TEST(test_tensor_helpers)
{
    char buf[FG_SHAPE_STR_LEN];
    fg_tensor *t = fg_tensor_new4(2, 3, 4, 4);
    ck_assert_int_eq(fg_numel(t), 96);
    ck_assert_str_eq(fg_shape_str(t, buf, sizeof buf), "(2, 3, 4, 4)");
    ck_assert(fg_k_sum(96, t->data) == 0.0);
    fg_tensor_fill(t, 1.5f);
    fg_tensor *c = fg_tensor_clone(t);
    ck_assert(fg_same_shape(t, c));
    ck_assert(c->data != t->data && c->data[95] == 1.5f);
    fg_tensor_zero(t);
    ck_assert(t->data[95] == 0.0f && c->data[0] == 1.5f);
    fg_tensor_copy(t, c);
    ck_assert(t->data[7] == 1.5f);

    int shape2[2] = {3, 5};
    fg_arena *a = fg_arena_create(4096);
    fg_tensor *at = fg_tensor_arena(a, 2, shape2);
    ck_assert(!at->owns && fg_numel(at) == 15 && !fg_same_shape(at, t));
    ck_assert_str_eq(fg_shape_str(at, buf, sizeof buf), "(3, 5)");
    float storage[15];
    fg_tensor w = fg_tensor_wrap(storage, 2, shape2);
    ck_assert(w.data == storage && !w.owns && fg_same_shape(&w, at));
    fg_tensor_fill(&w, 2.0f);
    ck_assert(storage[14] == 2.0f);
    ck_assert_int_eq(fg_shape_numel(2, shape2), 15);
    fg_arena_destroy(a);
    fg_tensor_free(t);
    fg_tensor_free(c);
}
END_TEST

START_TEST(test_thread_setting)
{
    /* FLOWGRAD_THREADS is applied at load time, before any call. */
    const char *env = getenv("FLOWGRAD_THREADS");
    if (env && atoi(env) > 0)
        ck_assert_int_eq(omp_get_max_threads(), atoi(env));
    ck_assert_int_eq(omp_get_max_threads(), fg_get_threads());
    fg_set_threads(3);
    ck_assert_int_eq(fg_get_threads(), 3);
    ck_assert_int_eq(omp_get_max_threads(), 3);
    fg_set_threads(0);       /* clamps to one thread */
    ck_assert_int_eq(fg_get_threads(), 1);
    ck_assert_int_eq(omp_get_max_threads(), 1);
}
END_TEST

/* A serial stretch: no threads for the calling thread's work until it
 * ends, nested stretches end with the outermost, and the thread count
 * comes back. */
START_TEST(test_serial_stretch)
{
    const int saved = fg_get_threads();
    fg_set_threads(2);
    ck_assert(!fg_in_serial());
    int outer = fg_serial_begin();
    ck_assert(fg_in_serial());
    ck_assert_int_eq(omp_get_max_threads(), 1);
    int inner = fg_serial_begin();
    int team = 0;
    #pragma omp parallel
    {
        #pragma omp single
        team = omp_get_num_threads();
    }
    ck_assert_int_eq(team, 1);
    fg_serial_end(inner);
    ck_assert(fg_in_serial());
    fg_serial_end(outer);
    ck_assert(!fg_in_serial());
    ck_assert_int_eq(omp_get_max_threads(), 2);
    int inside[2] = {-1, -1};
    #pragma omp parallel num_threads(2)
    inside[omp_get_thread_num()] = fg_in_serial();
    ck_assert_int_eq(inside[0], 1);
    ck_assert_int_eq(inside[1], 1);
    fg_set_threads(saved);
}
END_TEST

/* Kernels open an OpenMP team only when it would run in parallel: above
 * the threshold, with more than one thread allowed, and outside any team
 * (libgomp ends even a one-thread team with a system call). Both branches
 * of the loop macros visit every item exactly once. */
START_TEST(test_parallel_pays)
{
    const int saved = fg_get_threads();
    fg_set_threads(2);
    ck_assert(fg_parallel_pays(FG_PARALLEL_THRESHOLD + 1));
    ck_assert(!fg_parallel_pays(FG_PARALLEL_THRESHOLD));
    int outer = fg_serial_begin();
    ck_assert(!fg_parallel_pays((size_t)FG_PARALLEL_THRESHOLD * 4));
    fg_serial_end(outer);
    int inside[2] = {-1, -1};
    #pragma omp parallel num_threads(2)
    inside[omp_get_thread_num()] = fg_parallel_pays((size_t)FG_PARALLEL_THRESHOLD * 4);
    ck_assert_int_eq(inside[0], 0);
    ck_assert_int_eq(inside[1], 0);

    enum { ITEMS = 1000 };
    for (int threads = 1; threads <= 2; threads++) {
        fg_set_threads(threads);
        ck_assert_int_eq(fg_parallel_pays((size_t)FG_PARALLEL_THRESHOLD * 4), threads > 1);
        for (int big = 0; big <= 1; big++) {
            int visits[ITEMS] = {0}, team[ITEMS] = {0};
            const size_t work = big ? (size_t)FG_PARALLEL_THRESHOLD * 4 : 10;
            FG_FOR_ITEMS(work, i, ITEMS, visits[i]++; team[i] = omp_get_num_threads());
            int most = 0;
            for (int i = 0; i < ITEMS; i++) {
                ck_assert_int_eq(visits[i], 1);
                most = team[i] > most ? team[i] : most;
            }
            ck_assert_int_eq(most, big && threads > 1 ? 2 : 1);
        }
        const size_t n = (size_t)FG_PARALLEL_THRESHOLD * 2 + 7;
        float *y = malloc(n * sizeof(float));
        ck_assert_ptr_nonnull(y);
        FG_FOR_SIMD(i, n, y[i] = (float)(i % 97));
        FG_FOR(i, n, y[i] += 1.0f);
        for (size_t i = 0; i < n; i++)
            ck_assert_float_eq(y[i], (float)(i % 97) + 1.0f);
        free(y);
    }
    fg_set_threads(saved);
}
END_TEST

/* fg_short_spin_waits starts the program again with GOMP_SPINCOUNT set,
 * unless the environment sets it or OMP_WAIT_POLICY. The program started
 * again is this test program: spin_child_report (a constructor) sees
 * FG_TEST_SPIN_REPORT, writes the GOMP_SPINCOUNT it got there and exits. */
__attribute__((constructor)) static void spin_child_report(void)
{
    const char *path = getenv("FG_TEST_SPIN_REPORT");
    if (!path)
        return;
    FILE *f = fopen(path, "w");
    if (f) {
        const char *v = getenv("GOMP_SPINCOUNT");
        fprintf(f, "%s", v ? v : "(unset)");
        fclose(f);
    }
    _exit(0);
}

/* Runs fg_short_spin_waits in a child with GOMP_SPINCOUNT = preset (NULL:
 * unset); returns its exit status (0: started again, 7: returned) and what
 * the program started again reported in `got`. */
static int spin_child(const char *preset, char *got, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/fg_spin_%d", (int)getpid());
    remove(path);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        unsetenv("OMP_WAIT_POLICY");
        if (preset)
            setenv("GOMP_SPINCOUNT", preset, 1);
        else
            unsetenv("GOMP_SPINCOUNT");
        setenv("FG_TEST_SPIN_REPORT", path, 1);
        char *argv[] = {"test_tensor", NULL};
        fg_short_spin_waits(argv);
        _exit(7);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    got[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(got, (int)n, f))
            got[0] = '\0';
        fclose(f);
    }
    remove(path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_short_spin_waits)
{
    char got[32];
    ck_assert_int_eq(spin_child(NULL, got, sizeof got), 0);
    ck_assert_str_eq(got, "1000");
    ck_assert_int_eq(spin_child("77", got, sizeof got), 7);   /* the user's setting stays */
    ck_assert_str_eq(got, "");
}
END_TEST

START_TEST(test_errors)
{
    fg_clear_error();
    ck_assert_str_eq(fg_last_error(), "");
    ck_assert_int_eq(fg_error("data.bin:%d: expected %s", 12, "a header"), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "data.bin:12: expected a header");
    /* The message itself as an argument: prefixing a context is safe. */
    ck_assert_int_eq(fg_error("%s: %s", "run/ckpt.safetensors", fg_last_error()), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "run/ckpt.safetensors: data.bin:12: expected a header");
    ck_assert_int_eq(fg_error("%s (%s)", fg_last_error(), "again"), FG_ERR);
    ck_assert_str_eq(fg_last_error(),
                     "run/ckpt.safetensors: data.bin:12: expected a header (again)");
    fg_clear_error();
    ck_assert_str_eq(fg_last_error(), "");
}
END_TEST

/* A rewind gives back what was allocated after the mark, across chunks,
 * and the next allocation reuses it; the peak remembers. */
START_TEST(test_arena_mark_rewind)
{
    fg_arena *a = fg_arena_create(4096);
    fg_arena_alloc(a, 100);
    fg_arena_mark m = fg_arena_mark_now(a);
    size_t used = fg_arena_used(a);
    char *p = fg_arena_alloc(a, 1000);
    fg_arena_alloc(a, 10000);   /* a second chunk */
    size_t peak = fg_arena_peak(a), reserved = fg_arena_reserved(a);
    fg_arena_rewind(a, &m);
    ck_assert_uint_eq(fg_arena_used(a), used);
    ck_assert_ptr_eq(fg_arena_alloc(a, 1000), p);
    fg_arena_alloc(a, 10000);
    ck_assert_uint_eq(fg_arena_peak(a), peak);
    ck_assert_uint_eq(fg_arena_reserved(a), reserved);
    fg_arena_destroy(a);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("tensor");
    TCase *tc = fg_tcase("elementwise");
    tcase_add_test(tc, test_binary_kernels);
    tcase_add_test(tc, test_unary_kernels);
    tcase_add_test(tc, test_sigmoid_extremes);
    tcase_add_test(tc, test_channel_kernels);
    tcase_add_test(tc, test_all_finite);
    suite_add_tcase(s, tc);

    tc = fg_tcase("reductions");
    tcase_add_test(tc, test_reductions);
    tcase_add_test(tc, test_per_sample_and_channel_sums);
    suite_add_tcase(s, tc);

    tc = fg_tcase("conv2d");
    tcase_add_loop_test(tc, test_conv2d_forward, 0, NCONV);
    tcase_add_loop_test(tc, test_conv2d_backward, 0, NCONV);
    tcase_add_loop_test(tc, test_conv2d_adjoint, 0, NCONV);
    tcase_add_loop_test(tc, test_conv2d_channel_major, 0, NCONV);
    tcase_add_test(tc, test_im2col_adjoint);
    suite_add_tcase(s, tc);

    tc = fg_tcase("layout");
    tcase_add_test(tc, test_squeeze_order);
    tcase_add_test(tc, test_squeeze_roundtrip);
    suite_add_tcase(s, tc);

    tc = fg_tcase("linalg");
    tcase_add_test(tc, test_linalg_hand_computed);
    tcase_add_test(tc, test_linalg_singular);
    tcase_add_test(tc, test_linalg_random);
    suite_add_tcase(s, tc);

    tc = fg_tcase("rng");
    tcase_add_test(tc, test_rng_thread_independent);
    tcase_add_test(tc, test_rng_continuation);
    tcase_add_test(tc, test_rng_parts);
    tcase_add_test(tc, test_rng_statistics);
    tcase_add_test(tc, test_rng_streams_and_permutation);
    suite_add_tcase(s, tc);

    tc = fg_tcase("memory");
    tcase_add_test(tc, test_arena_flat);
    tcase_add_test(tc, test_arena_large_block);
    tcase_add_test(tc, test_arena_mark_rewind);
    tcase_add_test(tc, test_tensor_helpers);
    tcase_add_test(tc, test_thread_setting);
    tcase_add_test(tc, test_serial_stretch);
    tcase_add_test(tc, test_parallel_pays);
    tcase_add_test(tc, test_short_spin_waits);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}
