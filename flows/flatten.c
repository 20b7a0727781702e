/* flatten: an image batch (N, C, H, W) becomes a batch of vectors, carried
 * as (N, C H W, 1, 1) so every channel-wise layer (actnorm, permutations,
 * priors) applies to vectors unchanged; the inverse restores the image.
 * It only relabels values: volume preserving. */
#include "flows/layer.h"

#include <stdlib.h>

typedef struct flatten {
    fg_flow base;
    int c, h, w;
} flatten;

static const char kind[] = "flatten";

static int out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    const flatten *l = (const flatten *)f;
    char buf[FG_SHAPE_STR_LEN];
    if (fg_flow_expect_image(kind, in, l->c) != FG_OK)
        return FG_ERR;
    if (in->dim[2] != l->h || in->dim[3] != l->w)
        return fg_error("flatten: input %s is not (N, %d, %d, %d) as built",
                        fg_flow_shape_str(in, buf, sizeof buf), l->c, l->h, l->w);
    *out = fg_flow_shape4(in->dim[0], l->c * l->h * l->w, 1, 1);
    return FG_OK;
}

static fg_var *forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    flatten *l = (flatten *)f;
    fg_flow_require_image(kind, x, l->c);
    int shape[4] = {x->t.shape[0], l->c * l->h * l->w, 1, 1};
    FG_CHECK(x->t.shape[2] == l->h && x->t.shape[3] == l->w, kind,
             "input is %dx%d, built for %dx%d", x->t.shape[2], x->t.shape[3], l->h, l->w);
    if (logdet)
        fg_flow_accumulate(g, logdet, fg_const_scalar(g, 0.0f), +1, shape[0]);
    return fg_reshape(g, x, 4, shape);
}

static fg_var *inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    flatten *l = (flatten *)f;
    fg_flow_require_image(kind, z, l->c * l->h * l->w);
    FG_CHECK(z->t.shape[2] == 1 && z->t.shape[3] == 1, kind,
             "inverse expects (N, %d, 1, 1)", l->c * l->h * l->w);
    int shape[4] = {z->t.shape[0], l->c, l->h, l->w};
    if (logdet)
        fg_flow_accumulate(g, logdet, fg_const_scalar(g, 0.0f), -1, shape[0]);
    return fg_reshape(g, z, 4, shape);
}

static void visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    (void)f, (void)prefix, (void)fn, (void)vctx;
}

static void destroy(fg_flow *f)
{
    free(f);
}

static const fg_flow_ops ops = {kind, out_shape, forward, inverse, visit, destroy, NULL, 0,
                                NULL, NULL};

fg_flow *fg_flatten_create(const fg_flatten_options *o)
{
    if (o->channels <= 0 || o->height <= 0 || o->width <= 0) {
        fg_error("flatten: image shape (C, H, W) = (%d, %d, %d) must be positive",
                 o->channels, o->height, o->width);
        return NULL;
    }
    flatten *l = fg_xcalloc(1, sizeof *l, kind);
    l->base.ops = &ops;
    l->c = o->channels;
    l->h = o->height;
    l->w = o->width;
    return &l->base;
}
