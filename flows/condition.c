/* The condition of a batch, shaped for the layer that reads it (flow.h,
 * fg_condition_for). Broadcasting and pooling are written as products with
 * constant matrices, so their gradients come from the matmul and reshape
 * rules and a condition that requires a gradient gets one. */
#include "flows/layer.h"

#include <stdio.h>
#include <string.h>

/* (n, k) whose row i averages the rows i f .. i f + f - 1 of a (n f)-row
 * input: the pooling along one axis, applied as x^T or x times it. */
static fg_var *pool_matrix(fg_graph *g, int from, int to)
{
    int shape[2] = {from, to}, f = from / to;
    fg_var *p = fg_const(g, 2, shape);
    for (int i = 0; i < from; i++)
        p->t.data[(size_t)i * to + i / f] = 1.0f / (float)f;
    return p;
}

static fg_var *identity(fg_graph *g, int n)
{
    int shape[2] = {n, n};
    fg_var *e = fg_const(g, 2, shape);
    for (int i = 0; i < n; i++)
        e->t.data[(size_t)i * n + i] = 1.0f;
    return e;
}

/* (N, C, Hc, Wc) -> (N, C, H, W), averaging f x f' windows: three products,
 * the widths pooled, the whole transposed so the heights are the columns,
 * the heights pooled, transposed back. */
static fg_var *pool(fg_graph *g, fg_var *c, int h, int w)
{
    int n = c->t.shape[0], ch = c->t.shape[1], hc = c->t.shape[2], wc = c->t.shape[3];
    if (hc == h && wc == w)
        return c;
    int rows[2] = {n * ch * hc, wc};
    fg_var *a = fg_reshape(g, (fg_var *)c, 2, rows);
    /* (w, N C Hc) = P_w^T a^T */
    fg_var *at = fg_matmul(g, pool_matrix(g, wc, w), a, 1, 1);
    int by_height[2] = {w * n * ch, hc};
    fg_var *b = fg_matmul(g, fg_reshape(g, at, 2, by_height), pool_matrix(g, hc, h), 0, 0);
    int back[2] = {w, n * ch * h};
    fg_var *y = fg_matmul(g, fg_reshape(g, b, 2, back), identity(g, w), 1, 0);
    int out[4] = {n, ch, h, w};
    return fg_reshape(g, y, 4, out);
}

/* (N, C) -> (N, C, H, W), the same value at every pixel. */
static fg_var *broadcast(fg_graph *g, fg_var *c, int h, int w)
{
    int n = c->t.shape[0], ch = c->t.shape[1];
    int col[2] = {n * ch, 1}, ones_shape[2] = {1, h * w}, out[4] = {n, ch, h, w};
    fg_var *ones = fg_const(g, 2, ones_shape);
    for (int i = 0; i < h * w; i++)
        ones->t.data[i] = 1.0f;
    fg_var *y = fg_matmul(g, fg_reshape(g, c, 2, col), ones, 0, 0);
    return fg_reshape(g, y, 4, out);
}

fg_var *fg_condition_for(fg_graph *g, const fg_var *condition, const fg_var *like,
                         const char *layer)
{
    char cs[FG_SHAPE_STR_LEN], ls[FG_SHAPE_STR_LEN];
    fg_flow_shape csh = fg_flow_shape_of(condition), lsh = fg_flow_shape_of(like);
    fg_flow_shape_str(&csh, cs, sizeof cs);
    fg_flow_shape_str(&lsh, ls, sizeof ls);
    fg_var *c = (fg_var *)condition;
    int cnd = c->t.ndim, lnd = like->t.ndim;
    if ((cnd != 2 && cnd != 4) || (lnd != 2 && lnd != 4))
        return fg_error("%s: the condition %s does not fit the layer's %s (expected (N, Cc) "
                        "or (N, Cc, Hc, Wc) for (N, C) or (N, C, H, W))", layer, cs, ls),
               NULL;
    if (c->t.shape[0] != like->t.shape[0])
        return fg_error("%s: the condition %s has %d samples, the layer's input %s has %d",
                        layer, cs, c->t.shape[0], ls, like->t.shape[0]), NULL;
    int n = c->t.shape[0];
    if (lnd == 2) {
        if (cnd == 2)
            return c;
        int flat[2] = {n, c->t.shape[1] * c->t.shape[2] * c->t.shape[3]};
        return fg_reshape(g, c, 2, flat);
    }
    int h = like->t.shape[2], w = like->t.shape[3];
    if (cnd == 2)
        return broadcast(g, c, h, w);
    if (c->t.shape[2] % h || c->t.shape[3] % w)
        return fg_error("%s: the condition %s cannot be pooled to the layer's %s (its height "
                        "and width must be whole multiples of the layer's)", layer, cs, ls),
               NULL;
    return pool(g, c, h, w);
}

fg_var *fg_condition_join(fg_graph *g, fg_var *own, const fg_var *condition,
                          int cond_channels, const char *layer)
{
    if (cond_channels <= 0)
        return own;
    if (!condition)
        fg_fatal(layer, "the layer takes a condition of %d channels, but the batch came "
                 "without one (set fg_flow_ctx.condition)", cond_channels);
    fg_var *k = fg_condition_for(g, condition, own, layer);
    if (!k) {
        /* The message begins with the layer's name, which fg_fatal adds. */
        const char *m = fg_last_error();
        size_t len = strlen(layer);
        fg_fatal(layer, "%s", strncmp(m, layer, len) == 0 && m[len] == ':' ? m + len + 2 : m);
    }
    if (k->t.shape[1] != cond_channels) {
        char cs[FG_SHAPE_STR_LEN];
        fg_flow_shape sh = fg_flow_shape_of(condition);
        fg_fatal(layer, "the condition %s gives %d channels (entries), the layer was built "
                 "for %d", fg_flow_shape_str(&sh, cs, sizeof cs), k->t.shape[1], cond_channels);
    }
    return fg_channel_concat(g, own, k);
}
