/* squeeze: space-to-depth by 2, (N, C, H, W) -> (N, 4C, H/2, W/2), output
 * channel c*4 + i*2 + j holding x[c, 2h+i, 2w+j]; unsqueeze is the same map
 * run backwards, as a layer of its own. Both only move values: logdet += 0. */
#include "flows/layer.h"

#include <stdlib.h>

typedef struct squeeze {
    fg_flow base;
    int unsqueeze;
} squeeze;

static int squeeze_shape(const fg_flow_shape *in, fg_flow_shape *out)
{
    char buf[FG_SHAPE_STR_LEN];
    if (fg_flow_expect_image("squeeze", in, 0) != FG_OK)
        return FG_ERR;
    if (in->dim[2] % 2 || in->dim[3] % 2)
        return fg_error("squeeze: input %s has an odd height or width; squeezing by 2 "
                        "needs both even", fg_flow_shape_str(in, buf, sizeof buf));
    *out = fg_flow_shape4(in->dim[0], in->dim[1] * 4, in->dim[2] / 2, in->dim[3] / 2);
    return FG_OK;
}

static int unsqueeze_shape(const fg_flow_shape *in, fg_flow_shape *out)
{
    char buf[FG_SHAPE_STR_LEN];
    if (fg_flow_expect_image("unsqueeze", in, 0) != FG_OK)
        return FG_ERR;
    if (in->dim[1] % 4)
        return fg_error("unsqueeze: input %s has %d channels; unsqueezing by 2 needs a "
                        "multiple of 4", fg_flow_shape_str(in, buf, sizeof buf), in->dim[1]);
    *out = fg_flow_shape4(in->dim[0], in->dim[1] / 4, in->dim[2] * 2, in->dim[3] * 2);
    return FG_OK;
}

static int out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    return ((const squeeze *)f)->unsqueeze ? unsqueeze_shape(in, out)
                                           : squeeze_shape(in, out);
}

/* dir > 0: space to depth; dir < 0: depth to space. */
static fg_var *apply(fg_graph *g, fg_var *x, fg_var **logdet, int dir)
{
    fg_flow_shape in = fg_flow_shape_of(x), out;
    int ok = dir > 0 ? squeeze_shape(&in, &out) : unsqueeze_shape(&in, &out);
    if (ok != FG_OK)
        fg_fatal(dir > 0 ? "squeeze" : "unsqueeze", "%s", fg_last_error());
    if (logdet)
        fg_flow_accumulate(g, logdet, fg_const_scalar(g, 0.0f), +1, x->t.shape[0]);
    return dir > 0 ? fg_squeeze2d(g, x) : fg_unsqueeze2d(g, x);
}

static fg_var *forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    return apply(g, x, logdet, ((squeeze *)f)->unsqueeze ? -1 : +1);
}

static fg_var *inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    return apply(g, z, logdet, ((squeeze *)f)->unsqueeze ? +1 : -1);
}

static void visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    (void)f, (void)prefix, (void)fn, (void)vctx;   /* no state */
}

static void destroy(fg_flow *f)
{
    free(f);
}

static const fg_flow_ops squeeze_ops = {"squeeze", out_shape, forward, inverse, visit,
                                        destroy, NULL, 0, NULL, NULL};
static const fg_flow_ops unsqueeze_ops = {"unsqueeze", out_shape, forward, inverse,
                                          visit, destroy, NULL, 0, NULL, NULL};

static fg_flow *create(int unsqueeze)
{
    squeeze *s = fg_xcalloc(1, sizeof *s, "squeeze");
    s->base.ops = unsqueeze ? &unsqueeze_ops : &squeeze_ops;
    s->unsqueeze = unsqueeze;
    return &s->base;
}

fg_flow *fg_squeeze_create(void)
{
    return create(0);
}

fg_flow *fg_unsqueeze_create(void)
{
    return create(1);
}
