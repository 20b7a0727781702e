/* Spatial pooling on (N, C, H, W): 2x2 windows with stride 2, and the global
 * average over each plane. */
#include "autograd/internal.h"

static void require_even_planes(const char *op, const fg_var *x)
{
    fg_require_ndim(op, x, 4);
    char sx[FG_SHAPE_STR_LEN];
    FG_CHECK(x->t.shape[2] % 2 == 0 && x->t.shape[3] % 2 == 0, op,
             "2x2 windows need even H and W, got %s", fg_shape_str(&x->t, sx, sizeof sx));
}

static fg_var *halved(fg_graph *g, const fg_var *x)
{
    int shape[4] = {x->t.shape[0], x->t.shape[1], x->t.shape[2] / 2, x->t.shape[3] / 2};
    return fg_var_new(g, 4, shape);
}

/* ------------------------------------------------------------- max_pool2x2
 * The forward keeps, per output, the flat input index of its window's
 * maximum (the first one on ties), so the backward routes each output
 * gradient to exactly that element. */
static void max_pool_backward(fg_graph *g, fg_node *nd)
{
    const int *arg = nd->saved;
    const float *gy = nd->out->grad;
    float *gx = fg_grad(g, nd->in[0]);
    size_t n = fg_var_numel(nd->out);
    for (size_t i = 0; i < n; i++) gx[arg[i]] += gy[i];
}

fg_var *fg_max_pool2x2(fg_graph *g, fg_var *x)
{
    FG_OP_BEGIN(g);
    require_even_planes("max_pool2x2", x);
    int H = x->t.shape[2], W = x->t.shape[3], Ho = H / 2, Wo = W / 2;
    size_t planes = (size_t)x->t.shape[0] * x->t.shape[1];
    fg_var *y = halved(g, x);
    /* Indices are ints: a tensor over 2^31 elements would not fit an arena. */
    int *arg = fg_arena_alloc(fg_graph_arena(g), fg_var_numel(y) * sizeof(int));
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x->t.data + p * (size_t)H * W;
        float *yp = y->t.data + p * (size_t)Ho * Wo;
        int *ap = arg + p * (size_t)Ho * Wo;
        int base = (int)(p * (size_t)H * W);
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                int best = 2 * i * W + 2 * j;
                const int cand[3] = {best + 1, best + W, best + W + 1};
                for (int k = 0; k < 3; k++)
                    if (xp[cand[k]] > xp[best]) best = cand[k];
                yp[i * Wo + j] = xp[best];
                ap[i * Wo + j] = base + best;
            }
    }
    fg_node *nd = fg_record(g, "max_pool2x2", max_pool_backward, y, 1, x, NULL, NULL);
    if (nd) nd->saved = arg;
    return y;
}

/* ------------------------------------------------------------- avg_pool2x2 */
static void avg_pool_backward(fg_graph *g, fg_node *nd)
{
    fg_var *x = nd->in[0];
    int H = x->t.shape[2], W = x->t.shape[3], Ho = H / 2, Wo = W / 2;
    size_t planes = (size_t)x->t.shape[0] * x->t.shape[1];
    const float *gy = nd->out->grad;
    float *gx = fg_grad(g, x);
    for (size_t p = 0; p < planes; p++) {
        const float *gp = gy + p * (size_t)Ho * Wo;
        float *dp = gx + p * (size_t)H * W;
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                float q = 0.25f * gp[i * Wo + j];
                float *d = dp + 2 * i * W + 2 * j;
                d[0] += q; d[1] += q; d[W] += q; d[W + 1] += q;
            }
    }
}

fg_var *fg_avg_pool2x2(fg_graph *g, fg_var *x)
{
    FG_OP_BEGIN(g);
    require_even_planes("avg_pool2x2", x);
    int H = x->t.shape[2], W = x->t.shape[3], Ho = H / 2, Wo = W / 2;
    size_t planes = (size_t)x->t.shape[0] * x->t.shape[1];
    fg_var *y = halved(g, x);
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x->t.data + p * (size_t)H * W;
        float *yp = y->t.data + p * (size_t)Ho * Wo;
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                const float *s = xp + 2 * i * W + 2 * j;
                yp[i * Wo + j] = 0.25f * (s[0] + s[1] + s[W] + s[W + 1]);
            }
    }
    fg_record(g, "avg_pool2x2", avg_pool_backward, y, 1, x, NULL, NULL);
    return y;
}

/* ------------------------------------------------------------- global_avg_pool */
static void global_avg_backward(fg_graph *g, fg_node *nd)
{
    fg_var *x = nd->in[0];
    size_t planes = (size_t)x->t.shape[0] * x->t.shape[1];
    size_t HW = (size_t)x->t.shape[2] * x->t.shape[3];
    const float *gy = nd->out->grad;
    float *gx = fg_grad(g, x);
    for (size_t p = 0; p < planes; p++) {
        float q = gy[p] / (float)HW;
        for (size_t k = 0; k < HW; k++) gx[p * HW + k] += q;
    }
}

fg_var *fg_global_avg_pool(fg_graph *g, fg_var *x)
{
    FG_OP_BEGIN(g);
    fg_require_ndim("global_avg_pool", x, 4);
    int shape[2] = {x->t.shape[0], x->t.shape[1]};
    size_t planes = (size_t)shape[0] * shape[1];
    size_t HW = (size_t)x->t.shape[2] * x->t.shape[3];
    char sx[FG_SHAPE_STR_LEN];
    FG_CHECK(HW > 0, "global_avg_pool", "empty planes in %s", fg_shape_str(&x->t, sx, sizeof sx));
    fg_var *y = fg_var_new(g, 2, shape);
    for (size_t p = 0; p < planes; p++) {
        double s = 0.0;
        for (size_t k = 0; k < HW; k++) s += x->t.data[p * HW + k];
        y->t.data[p] = (float)(s / (double)HW);
    }
    fg_record(g, "global_avg_pool", global_avg_backward, y, 1, x, NULL, NULL);
    return y;
}
