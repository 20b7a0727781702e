/* Reductions, accumulated in double: over everything -> [1], per sample
 * (N, ...) -> [N], per channel (N, C, ...) -> [C]. The mean variants scale
 * the sum by one over the number of reduced elements. */
#include "autograd/internal.h"
#include "tensor/parallel_internal.h"
#include <stdlib.h>


static size_t trailing(const fg_var *v, int from)
{
    size_t n = 1;
    for (int d = from; d < v->t.ndim; d++) n *= (size_t)v->t.shape[d];
    return n;
}

/* ------------------------------------------------------------- all */
static void sum_backward(fg_graph *g, fg_node *nd)
{
    size_t n = fg_var_numel(nd->in[0]);
    float s = nd->out->grad[0] * nd->f;
    float *restrict ga = fg_grad(g, nd->in[0]);
    FG_FOR_SIMD(i, n, ga[i] += s);
}

static fg_var *reduce_all(fg_graph *g, fg_var *a, int mean)
{
    FG_OP_BEGIN(g);
    const int one = 1;
    size_t n = fg_var_numel(a);
    fg_var *y = fg_var_new(g, 1, &one);
    double s = fg_k_sum(n, a->t.data);
    float f = mean ? 1.0f / (float)n : 1.0f;
    y->t.data[0] = (float)(mean ? s / (double)n : s);
    fg_node *nd = fg_record(g, mean ? "mean" : "sum", sum_backward, y, 1, a, NULL, NULL);
    if (nd) nd->f = f;
    return y;
}

fg_var *fg_sum(fg_graph *g, fg_var *a) { return reduce_all(g, a, 0); }
fg_var *fg_mean(fg_graph *g, fg_var *a) { return reduce_all(g, a, 1); }

/* ------------------------------------------------------------- per sample */
static void per_sample_backward(fg_graph *g, fg_node *nd)
{
    fg_var *a = nd->in[0];
    int N = a->t.shape[0];
    size_t D = trailing(a, 1);
    const float *gy = nd->out->grad;
    float *ga = fg_grad(g, a);
    for (int s = 0; s < N; s++) {
        float v = gy[s] * nd->f;
        float *restrict p = ga + (size_t)s * D;
        #pragma omp simd
        for (size_t i = 0; i < D; i++) p[i] += v;
    }
}

static fg_var *reduce_sample(fg_graph *g, fg_var *a, int mean)
{
    FG_OP_BEGIN(g);
    int N = a->t.shape[0];
    size_t D = trailing(a, 1);
    fg_var *y = fg_var_new(g, 1, &N);
    double *acc = fg_arena_alloc(fg_graph_arena(g), (size_t)N * sizeof(double));
    fg_k_sum_per_sample(N, D, a->t.data, acc);
    for (int i = 0; i < N; i++) y->t.data[i] = (float)(mean ? acc[i] / (double)D : acc[i]);
    fg_node *nd = fg_record(g, mean ? "mean_per_sample" : "sum_per_sample", per_sample_backward,
                            y, 1, a, NULL, NULL);
    if (nd) nd->f = mean ? 1.0f / (float)D : 1.0f;
    return y;
}

fg_var *fg_sum_per_sample(fg_graph *g, fg_var *a) { return reduce_sample(g, a, 0); }
fg_var *fg_mean_per_sample(fg_graph *g, fg_var *a) { return reduce_sample(g, a, 1); }

/* ------------------------------------------------------------- per channel */
static void per_channel_backward(fg_graph *g, fg_node *nd)
{
    fg_var *a = nd->in[0];
    int N = a->t.shape[0], C = a->t.shape[1];
    size_t HW = trailing(a, 2);
    const float *gy = nd->out->grad;
    float *ga = fg_grad(g, a);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            float v = gy[c] * nd->f;
            float *restrict p = ga + ((size_t)n * C + c) * HW;
            #pragma omp simd
            for (size_t i = 0; i < HW; i++) p[i] += v;
        }
}

static fg_var *reduce_channel(fg_graph *g, fg_var *a, int mean)
{
    FG_OP_BEGIN(g);
    FG_CHECK(a->t.ndim >= 2, "sum_per_channel", "needs (N, C, ...), got %d dimensions", a->t.ndim);
    int N = a->t.shape[0], C = a->t.shape[1];
    size_t HW = trailing(a, 2);
    fg_var *y = fg_var_new(g, 1, &C);
    double *acc = fg_arena_alloc(fg_graph_arena(g), (size_t)C * sizeof(double));
    fg_k_sum_per_channel(N, C, (int)HW, a->t.data, acc, NULL);
    double cnt = (double)N * (double)HW;
    for (int c = 0; c < C; c++) y->t.data[c] = (float)(mean ? acc[c] / cnt : acc[c]);
    fg_node *nd = fg_record(g, mean ? "mean_per_channel" : "sum_per_channel",
                            per_channel_backward, y, 1, a, NULL, NULL);
    if (nd) nd->f = mean ? (float)(1.0 / cnt) : 1.0f;
    return y;
}

fg_var *fg_sum_per_channel(fg_graph *g, fg_var *a) { return reduce_channel(g, a, 0); }
fg_var *fg_mean_per_channel(fg_graph *g, fg_var *a) { return reduce_channel(g, a, 1); }
