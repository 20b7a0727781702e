/* 2-D convolution module: stride 1, same padding, optional bias. */
#include <math.h>
#include "nn/nn.h"

void fg_conv_init(fg_conv *c, int ci, int co, int k, int with_bias,
                  float init_std, fg_rng *rng)
{
    FG_CHECK(ci > 0 && co > 0 && k > 0 && (k & 1), "fg_conv_init",
             "ci %d, co %d, k %d (k must be odd and positive)", ci, co, k);
    c->ci = ci;
    c->co = co;
    c->k = k;
    int wshape[4] = {co, ci, k, k};
    c->weight = fg_leaf_new(4, wshape, 1);
    if (init_std != 0.0f) {
        FG_CHECK(rng != NULL, "fg_conv_init", "init_std %g needs an rng", init_std);
        size_t n = fg_numel(&c->weight->t);
        fg_rng_normal(rng, c->weight->t.data, n);
        fg_k_scale(n, init_std, c->weight->t.data, c->weight->t.data);
    }
    c->bias = NULL;
    if (with_bias) {
        int bshape[1] = {co};
        c->bias = fg_leaf_new(1, bshape, 1);
    }
}

fg_var *fg_conv_apply(fg_graph *g, fg_conv *c, fg_var *x)
{
    FG_CHECK(x->t.ndim == 4 && x->t.shape[1] == c->ci, "fg_conv_apply",
             "input has %d dims, channel %d; conv expects (N, %d, H, W)",
             x->t.ndim, x->t.ndim > 1 ? x->t.shape[1] : -1, c->ci);
    return fg_conv2d(g, x, c->weight, c->bias);
}

fg_var *fg_conv_apply_cm(fg_graph *g, fg_conv *c, fg_var *x, int N)
{
    FG_CHECK(x->t.ndim == 4 && x->t.shape[1] == c->ci, "fg_conv_apply_cm",
             "input has %d dims, channel %d; conv expects (1, %d, N*H, W)",
             x->t.ndim, x->t.ndim > 1 ? x->t.shape[1] : -1, c->ci);
    return fg_conv2d_cm(g, x, c->weight, c->bias, N);
}

void fg_conv_visit(fg_conv *c, const char *prefix, fg_visit_fn fn, void *ctx)
{
    char buf[FG_NAME_LEN];
    fn(ctx, fg_name_join(buf, sizeof buf, prefix, "weight"), c->weight, FG_PARAM);
    if (c->bias)
        fn(ctx, fg_name_join(buf, sizeof buf, prefix, "bias"), c->bias, FG_PARAM);
}

void fg_conv_free(fg_conv *c)
{
    if (c->weight)
        fg_leaf_free(c->weight);
    if (c->bias)
        fg_leaf_free(c->bias);
    c->weight = c->bias = NULL;
}
