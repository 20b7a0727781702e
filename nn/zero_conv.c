/* Glow's zero-initialized convolution. The learned per-channel scale
 * exp(factor * logs) lets the output grow quickly from exactly zero, which
 * keeps every coupling an identity map at the start of training. */
#include "nn/nn.h"

void fg_zero_conv_init(fg_zero_conv *z, int ci, int co, int k, float logscale_factor)
{
    fg_conv_init(&z->conv, ci, co, k, 1, 0.0f, NULL);
    int shape[1] = {co};
    z->logs = fg_leaf_new(1, shape, 1);
    z->logscale_factor = logscale_factor;
}

static fg_var *scaled(fg_graph *g, fg_zero_conv *z, fg_var *y)
{
    fg_var *scale = fg_exp(g, fg_scale(g, z->logs, z->logscale_factor));
    return fg_mul_channel(g, y, scale);
}

fg_var *fg_zero_conv_apply(fg_graph *g, fg_zero_conv *z, fg_var *x)
{
    return scaled(g, z, fg_conv_apply(g, &z->conv, x));
}

fg_var *fg_zero_conv_apply_cm(fg_graph *g, fg_zero_conv *z, fg_var *x, int N)
{
    return scaled(g, z, fg_conv_apply_cm(g, &z->conv, x, N));
}

void fg_zero_conv_visit(fg_zero_conv *z, const char *prefix, fg_visit_fn fn, void *ctx)
{
    char buf[FG_NAME_LEN];
    fg_conv_visit(&z->conv, prefix, fn, ctx);
    fn(ctx, fg_name_join(buf, sizeof buf, prefix, "logs"), z->logs, FG_PARAM);
}

void fg_zero_conv_free(fg_zero_conv *z)
{
    fg_conv_free(&z->conv);
    if (z->logs)
        fg_leaf_free(z->logs);
    z->logs = NULL;
}
