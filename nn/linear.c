/* Dense layer: (N, in) -> (N, out) = x W^T + b, W stored (out, in) as in
 * PyTorch so that weights transfer without transposes. */
#include "nn/nn.h"

void fg_linear_init(fg_linear *l, int in, int out, int with_bias,
                    float init_std, fg_rng *rng)
{
    FG_CHECK(in > 0 && out > 0, "fg_linear_init", "in %d, out %d", in, out);
    l->in = in;
    l->out = out;
    int wshape[2] = {out, in};
    l->weight = fg_leaf_new(2, wshape, 1);
    if (init_std != 0.0f) {
        FG_CHECK(rng != NULL, "fg_linear_init", "init_std %g needs an rng", init_std);
        size_t n = fg_numel(&l->weight->t);
        fg_rng_normal(rng, l->weight->t.data, n);
        fg_k_scale(n, init_std, l->weight->t.data, l->weight->t.data);
    }
    l->bias = NULL;
    if (with_bias) {
        int bshape[1] = {out};
        l->bias = fg_leaf_new(1, bshape, 1);
    }
}

fg_var *fg_linear_apply(fg_graph *g, fg_linear *l, fg_var *x)
{
    FG_CHECK(x->t.ndim == 2 && x->t.shape[1] == l->in, "fg_linear_apply",
             "input has %d dims, last %d; linear expects (N, %d)", x->t.ndim,
             x->t.shape[x->t.ndim - 1], l->in);
    fg_var *y = fg_matmul(g, x, l->weight, 0, 1);
    /* (N, out) is (N, C) with no spatial dims: the per-channel add is the
     * bias broadcast over the batch. */
    return l->bias ? fg_add_channel(g, y, l->bias) : y;
}

void fg_linear_visit(fg_linear *l, const char *prefix, fg_visit_fn fn, void *ctx)
{
    char buf[FG_NAME_LEN];
    fn(ctx, fg_name_join(buf, sizeof buf, prefix, "weight"), l->weight, FG_PARAM);
    if (l->bias)
        fn(ctx, fg_name_join(buf, sizeof buf, prefix, "bias"), l->bias, FG_PARAM);
}

void fg_linear_free(fg_linear *l)
{
    if (l->weight)
        fg_leaf_free(l->weight);
    if (l->bias)
        fg_leaf_free(l->bias);
    l->weight = l->bias = NULL;
}
