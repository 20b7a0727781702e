/* coupling: one part of x passes through unchanged and conditions an
 * invertible map of the rest through h = NN(part), so the Jacobian is
 * triangular (after a permutation) and the inverse needs NN only forward.
 * One layer for images and vectors, made of three parts chosen apart:
 *
 *   the mask   channel halves or a spatial checkerboard (see flow.h); a
 *              checkerboard coupling works on whole tensors, with the map
 *              made the identity where values are kept;
 *   the network  a list of modules (flows/conditioner.c), by default
 *              Glow's conv3x3 -> actnorm -> ReLU -> conv1x1 -> actnorm ->
 *              ReLU -> zero conv3x3 on images and the dense coupling's
 *              ReLU network on vectors; its input is the conditioning part
 *              with the batch's condition after it, when the layer has one;
 *   the map    additive, affine or spline (flows/coupling_map.c).
 *
 * The network's output starts at zero, so additive, tanh and spline
 * couplings begin as the identity. */
#include "flows/layer.h"

#include <stdlib.h>
#include <string.h>

typedef struct coupling {
    fg_flow base;
    const char *kind;
    int channels, vectors, cond_channels;
    fg_coupling_map map;
    fg_coupling_mask mask;
    fg_net *net;
} coupling;

static int is_checkerboard(const coupling *c)
{
    return c->mask == FG_COUPLING_MASK_CHECKERBOARD ||
           c->mask == FG_COUPLING_MASK_CHECKERBOARD_FLIP;
}

static int out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    const coupling *c = (const coupling *)f;
    if (c->vectors) {
        if (fg_flow_expect_vectors(c->kind, in, c->channels) != FG_OK)
            return FG_ERR;
    } else if (fg_flow_expect_image(c->kind, in, c->channels) != FG_OK) {
        return FG_ERR;
    }
    if (is_checkerboard(c) && in->dim[2] * in->dim[3] < 2) {
        char buf[FG_SHAPE_STR_LEN];
        return fg_error("%s: a checkerboard mask needs at least 2 pixels, input is %s",
                        c->kind, fg_flow_shape_str(in, buf, sizeof buf));
    }
    *out = *in;
    return FG_OK;
}

static void require_input(const coupling *c, const fg_var *x)
{
    if (c->vectors)
        fg_flow_require_vectors(c->kind, x, c->channels);
    else
        fg_flow_require_image(c->kind, x, c->channels);
}

/* h = NN(part [, condition]) in part's layout: a vector network runs on
 * (N, D), so (N, D, 1, 1) is reshaped on the way in and out. */
static fg_var *conditioner(coupling *c, fg_graph *g, fg_var *part, fg_flow_ctx *ctx)
{
    const int n = part->t.shape[0];
    int flat = c->vectors && part->t.ndim == 4;
    fg_var *in = part;
    if (flat) {
        int shape[2] = {n, part->t.shape[1]};
        in = fg_reshape(g, part, 2, shape);
    }
    fg_var *cond = ctx ? ctx->condition : NULL, *h = NULL;
    /* A condition vector reaches the first convolution in closed form,
     * without being repeated over the image as channels. */
    if (c->cond_channels > 0 && cond && cond->t.ndim == 2 && cond->t.shape[1] == c->cond_channels)
        h = fg_net_apply_vector_condition(c->net, g, in, cond);
    if (!h)
        h = fg_net_apply(c->net, g, fg_condition_join(g, in, cond, c->cond_channels, c->kind));
    if (!flat)
        return h;
    int shape[4] = {n, h->t.shape[1], 1, 1};
    return fg_reshape(g, h, 4, shape);
}

/* The checkerboard mask m (1 where values condition) over x's shape, and
 * 1 - m. Constants of the step's arena. */
static void checkerboard(const coupling *c, fg_graph *g, const fg_var *x, fg_var **keep,
                         fg_var **change)
{
    *keep = fg_const(g, x->t.ndim, x->t.shape);
    *change = fg_const(g, x->t.ndim, x->t.shape);
    int parity = c->mask == FG_COUPLING_MASK_CHECKERBOARD_FLIP;
    int nc = x->t.shape[0] * x->t.shape[1], h = x->t.shape[2], w = x->t.shape[3];
    for (int p = 0; p < nc; p++)
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                size_t k = ((size_t)p * h + i) * w + j;
                float m = ((i + j) % 2 == parity) ? 1.0f : 0.0f;
                (*keep)->t.data[k] = m;
                (*change)->t.data[k] = 1.0f - m;
            }
}

static fg_var *run(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet, int dir,
                   fg_flow_ctx *ctx)
{
    coupling *c = (coupling *)f;
    require_input(c, x);
    fg_coupling_map_check_input(&c->map, c->kind, x);
    int n = x->t.shape[0];
    /* Without a logdet to add to (sampling, decoding), the map's
     * log-determinant is not computed at all. */
    fg_var *y, *lsum = NULL, **want = logdet ? &lsum : NULL;
    if (is_checkerboard(c)) {
        fg_var *keep, *change;
        checkerboard(c, g, x, &keep, &change);
        /* x * keep is the same before and after the map. */
        y = fg_coupling_map_apply(g, &c->map, x, conditioner(c, g, fg_mul(g, x, keep), ctx),
                                  change, dir, want);
    } else {
        int half = c->channels / 2;
        int flip = c->mask == FG_COUPLING_MASK_CHANNEL_FLIP;
        fg_var *lo = fg_channel_slice(g, x, 0, half);
        fg_var *hi = fg_channel_slice(g, x, half, c->channels);
        fg_var *cond = flip ? hi : lo, *v = flip ? lo : hi;
        fg_var *t = fg_coupling_map_apply(g, &c->map, v, conditioner(c, g, cond, ctx), NULL,
                                          dir, want);
        y = flip ? fg_channel_concat(g, t, cond) : fg_channel_concat(g, cond, t);
    }
    if (logdet)
        fg_flow_accumulate(g, logdet, lsum ? lsum : fg_const_scalar(g, 0.0f), dir, n);
    return y;
}

static fg_var *forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    return run(f, g, x, logdet, +1, ctx);
}

static fg_var *inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    return run(f, g, z, logdet, -1, ctx);
}

/* Memory by inversion (fg_flow_ops.invert_record): the conditioning half
 * is the same in x and z, so the network runs once, recorded, on that half
 * of a fresh x; the other half of x is computed from z with h without a
 * tape and written into x before anything reads it; then the forward's map
 * of it is recorded. Inverse then forward would run the network twice on
 * the same values. Checkerboard masks take the general path. */
static fg_var *invert_record(fg_flow *f, fg_graph *g, fg_var *z, fg_var **x, fg_var **logdet,
                             fg_flow_ctx *ctx)
{
    coupling *c = (coupling *)f;
    if (is_checkerboard(c))
        return NULL;
    require_input(c, z);
    int n = z->t.shape[0], half = c->channels / 2;
    int flip = c->mask == FG_COUPLING_MASK_CHANNEL_FLIP;
    int k0 = flip ? half : 0, k1 = flip ? c->channels : half;   /* conditioning */
    int v0 = flip ? 0 : half, v1 = flip ? half : c->channels;   /* changed */
    fg_var *xv = fg_const(g, z->t.ndim, z->t.shape);
    memcpy(xv->t.data, z->t.data, fg_numel(&z->t) * sizeof(float));
    xv->requires_grad = 1;
    fg_var *cond = fg_channel_slice(g, xv, k0, k1);
    fg_var *h = conditioner(c, g, cond, ctx), *lsum;
    int was = fg_set_grad_enabled(g, 0);
    /* Only the forward's log-determinant is recorded: the inverse's would be
     * the same sum, computed for nothing. */
    fg_var *x2 = fg_coupling_map_apply(g, &c->map, fg_channel_slice(g, z, v0, v1), h, NULL, -1,
                                      NULL);
    fg_set_grad_enabled(g, was);
    size_t hw = (size_t)fg_flow_spatial(z), part = (size_t)(v1 - v0) * hw;
    for (int s = 0; s < n; s++)
        memcpy(xv->t.data + ((size_t)s * c->channels + v0) * hw, x2->t.data + s * part,
               part * sizeof(float));
    fg_var *t = fg_coupling_map_apply(g, &c->map, fg_channel_slice(g, xv, v0, v1), h, NULL, +1,
                                     &lsum);
    fg_var *y = flip ? fg_channel_concat(g, t, cond) : fg_channel_concat(g, cond, t);
    if (logdet)
        fg_flow_accumulate(g, logdet, lsum ? lsum : fg_const_scalar(g, 0.0f), +1, n);
    *x = xv;
    return y;
}

static void visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    coupling *c = (coupling *)f;
    char p[FG_NAME_LEN];
    fg_net_visit(c->net, fg_flow_prefix(p, sizeof p, prefix, c->kind), fn, vctx);
}

static void destroy(fg_flow *f)
{
    coupling *c = (coupling *)f;
    fg_net_destroy(c->net);
    free(c);
}

static int data_init(fg_flow *f, int rearm)
{
    return fg_net_data_init(((coupling *)f)->net, rearm);
}

/* One table per name prefix: fg_flow_ops.kind is what a chain's walkers
 * and messages show. */
static const fg_flow_ops image_ops = {"coupling", out_shape, forward, inverse, visit, destroy,
                                      invert_record, 0, data_init, NULL};
static const fg_flow_ops vector_ops = {"dense_coupling", out_shape, forward, inverse, visit,
                                       destroy, invert_record, 0, data_init, NULL};

fg_flow *fg_coupling_build(const fg_coupling_setup *s)
{
    int checker = s->mask == FG_COUPLING_MASK_CHECKERBOARD ||
                  s->mask == FG_COUPLING_MASK_CHECKERBOARD_FLIP;
    if (s->cond_channels < 0) {
        fg_error("%s: cond_channels must be 0 (no condition) or positive, got %d", s->kind,
                 s->cond_channels);
        return NULL;
    }
    int seen = checker ? s->channels : s->channels / 2;
    int changed = checker ? s->channels : s->channels - s->channels / 2;
    fg_net *net = fg_net_create(s->kind, s->net, s->net_layers, seen + s->cond_channels,
                                changed * fg_coupling_map_width(&s->map), !s->vectors, s->rng);
    if (!net)
        return NULL;
    coupling *c = fg_xcalloc(1, sizeof *c, s->kind);
    c->base.ops = s->vectors ? &vector_ops : &image_ops;
    c->kind = c->base.ops->kind;
    c->channels = s->channels;
    c->vectors = s->vectors;
    c->cond_channels = s->cond_channels;
    c->map = s->map;
    c->mask = s->mask;
    c->net = net;
    return &c->base;
}

fg_flow *fg_coupling_create(const fg_coupling_options *o)
{
    static const char kind[] = "coupling";
    int checker = o->mask == FG_COUPLING_MASK_CHECKERBOARD ||
                  o->mask == FG_COUPLING_MASK_CHECKERBOARD_FLIP;
    if ((int)o->mask < 0 || o->mask > FG_COUPLING_MASK_CHECKERBOARD_FLIP) {
        fg_error("coupling: unknown mask %d", (int)o->mask);
        return NULL;
    }
    fg_coupling_map map;
    if (fg_coupling_map_init(&map, kind, o->transform, o->scale, o->bins, o->bound) != FG_OK)
        return NULL;
    if (checker ? o->channels < 1 : (o->channels < 2 || o->channels % 2)) {
        fg_error("coupling: a channel mask needs an even channel count of at least 2 "
                 "to split in halves, got %d", o->channels);
        return NULL;
    }
    if (!o->net && o->hidden <= 0) {
        fg_error("coupling: hidden width must be positive, got %d", o->hidden);
        return NULL;
    }
    if (!o->rng) {
        fg_error("coupling: needs an RNG for its network's weights");
        return NULL;
    }
    /* Glow's network; names nn.0, nn.1, nn.3, nn.4, nn.6 as its
     * torch.nn.Sequential gives them. */
    const fg_net_layer glow[] = {
        {.kind = FG_NET_CONV, .width = o->hidden, .kernel = 3},
        {.kind = FG_NET_ACTNORM},
        {.kind = FG_NET_RELU},
        {.kind = FG_NET_CONV, .width = o->hidden, .kernel = 1},
        {.kind = FG_NET_ACTNORM},
        {.kind = FG_NET_RELU},
        {.kind = FG_NET_ZERO_CONV, .kernel = 3},
    };
    fg_coupling_setup s = {
        .kind = kind, .channels = o->channels, .vectors = 0, .mask = o->mask, .map = map,
        .net = o->net ? o->net : glow,
        .net_layers = o->net ? o->net_layers : (int)(sizeof glow / sizeof glow[0]),
        .cond_channels = o->cond_channels, .rng = o->rng,
    };
    return fg_coupling_build(&s);
}
