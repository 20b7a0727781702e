/* dense_coupling: the coupling of NICE on vectors (N, D), or (N, D, 1, 1)
 * as flatten gives them: one half conditions the other through a fully
 * connected ReLU network, D/2 -> hidden (-> hidden)* -> D/2 times the map's
 * width (1 additive, 2 affine, 3K - 1 spline), whose last layer starts at
 * zero so the layer begins as the identity (affine with sigmoid scale: a
 * scale of sigmoid(2)). The same masks (channel halves, flipped) and the
 * same map (flows/coupling_map.c) as the convolutional coupling (flow.h). */
#include "flows/layer.h"

#include <math.h>
#include <stdlib.h>

typedef struct dense_coupling {
    fg_flow base;
    int dim, hidden, layers;
    fg_coupling_map map;
    fg_coupling_mask mask;
    fg_linear *hid;         /* hidden.<i>: layers of them */
    fg_linear out;          /* out */
} dense_coupling;

static const char kind[] = "dense_coupling";

static int out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    const dense_coupling *c = (const dense_coupling *)f;
    if (fg_flow_expect_vectors(kind, in, c->dim) != FG_OK)
        return FG_ERR;
    *out = *in;
    return FG_OK;
}

/* (N, D/2) -> (N, out), in x1's rank: (N, D/2, 1, 1) -> (N, out, 1, 1). */
static fg_var *net(dense_coupling *c, fg_graph *g, fg_var *x1)
{
    int n = x1->t.shape[0];
    int flat[2] = {n, c->dim / 2};
    fg_var *h = x1->t.ndim == 2 ? x1 : fg_reshape(g, x1, 2, flat);
    for (int i = 0; i < c->layers; i++)
        h = fg_relu(g, fg_linear_apply(g, &c->hid[i], h));
    h = fg_linear_apply(g, &c->out, h);
    int vec[4] = {n, c->out.out, 1, 1};
    return x1->t.ndim == 2 ? h : fg_reshape(g, h, 4, vec);
}

static fg_var *run(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet, int dir)
{
    dense_coupling *c = (dense_coupling *)f;
    fg_flow_require_vectors(kind, x, c->dim);
    fg_coupling_map_check_input(&c->map, kind, x);
    int half = c->dim / 2, n = x->t.shape[0];
    int flip = c->mask == FG_COUPLING_MASK_CHANNEL_FLIP;
    fg_var *lo = fg_channel_slice(g, x, 0, half);
    fg_var *hi = fg_channel_slice(g, x, half, c->dim);
    fg_var *cond = flip ? hi : lo, *v = flip ? lo : hi;
    fg_var *lsum;
    fg_var *t = fg_coupling_map_apply(g, &c->map, v, net(c, g, cond), NULL, dir, &lsum);
    if (logdet)
        fg_flow_accumulate(g, logdet, lsum ? lsum : fg_const_scalar(g, 0.0f), dir, n);
    return flip ? fg_channel_concat(g, t, cond) : fg_channel_concat(g, cond, t);
}

static fg_var *forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    return run(f, g, x, logdet, +1);
}

static fg_var *inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    return run(f, g, z, logdet, -1);
}

static void visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    dense_coupling *c = (dense_coupling *)f;
    char p[FG_NAME_LEN], name[FG_NAME_LEN], idx[32];
    fg_flow_prefix(p, sizeof p, prefix, kind);
    for (int i = 0; i < c->layers; i++) {
        snprintf(idx, sizeof idx, "hidden.%d", i);
        fg_linear_visit(&c->hid[i], fg_name_join(name, sizeof name, p, idx), fn, vctx);
    }
    fg_linear_visit(&c->out, fg_name_join(name, sizeof name, p, "out"), fn, vctx);
}

static void destroy(fg_flow *f)
{
    dense_coupling *c = (dense_coupling *)f;
    for (int i = 0; i < c->layers; i++)
        fg_linear_free(&c->hid[i]);
    free(c->hid);
    fg_linear_free(&c->out);
    free(c);
}

static const fg_flow_ops ops = {kind, out_shape, forward, inverse, visit, destroy, NULL, 0,
                                NULL, NULL};

fg_flow *fg_dense_coupling_create(const fg_dense_coupling_options *o)
{
    if (o->dim < 2 || o->dim % 2) {
        fg_error("dense_coupling: needs an even dimension of at least 2, got %d", o->dim);
        return NULL;
    }
    if (o->hidden <= 0 || o->layers < 1) {
        fg_error("dense_coupling: hidden width %d and layer count %d must be positive",
                 o->hidden, o->layers);
        return NULL;
    }
    if (o->mask != FG_COUPLING_MASK_CHANNEL && o->mask != FG_COUPLING_MASK_CHANNEL_FLIP) {
        fg_error("dense_coupling: mask must be channel or channel_flip (halves of the "
                 "vector), got %d", (int)o->mask);
        return NULL;
    }
    fg_coupling_map map;
    if (fg_coupling_map_init(&map, kind, o->transform, o->scale, o->bins, o->bound) != FG_OK)
        return NULL;
    if (!o->rng) {
        fg_error("dense_coupling: needs an RNG for its network's weights");
        return NULL;
    }
    dense_coupling *c = fg_xcalloc(1, sizeof *c, kind);
    c->base.ops = &ops;
    c->dim = o->dim;
    c->hidden = o->hidden;
    c->layers = o->layers;
    c->map = map;
    c->mask = o->mask;
    c->hid = fg_xcalloc((size_t)o->layers, sizeof *c->hid, kind);
    int in = o->dim / 2;
    for (int i = 0; i < o->layers; i++) {
        /* He initialization keeps the ReLU activations' scale through depth. */
        fg_linear_init(&c->hid[i], in, o->hidden, 1, (float)sqrt(2.0 / in), o->rng);
        in = o->hidden;
    }
    int half = o->dim / 2;
    fg_linear_init(&c->out, o->hidden, (o->dim - half) * fg_coupling_map_width(&map), 1,
                   0.0f, NULL);
    return &c->base;
}
