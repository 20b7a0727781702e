/* coupling: one part of x passes through unchanged and conditions an
 * invertible map of the rest through NN(part), so the Jacobian is
 * triangular (after a permutation) and the inverse needs NN only forward.
 * NN = conv3x3 -> actnorm -> ReLU -> conv1x1 -> actnorm -> ReLU -> zero
 * conv3x3 (in channel-major layout, see nn()), whose zero start makes
 * additive, tanh and spline couplings begin as the identity. The parts are
 * channel halves or a spatial checkerboard (see flow.h); a checkerboard
 * coupling works on whole tensors, with the map made the identity where
 * values are kept. The map itself (additive, affine, spline) is
 * flows/coupling_map.c, shared with the dense coupling. */
#include "flows/layer.h"

#include <stdlib.h>
#include <string.h>

typedef struct coupling {
    fg_flow base;
    int channels, hidden;
    fg_coupling_map map;
    fg_coupling_mask mask;
    fg_conv in;             /* nn.0: NN input channels -> hidden, 3x3, no bias */
    fg_flow *norm_in;       /* nn.1 */
    fg_conv mid;            /* nn.3: hidden -> hidden, 1x1, no bias */
    fg_flow *norm_mid;      /* nn.4 */
    fg_zero_conv out;       /* nn.6: hidden -> changed channels x the map's width */
} coupling;

static const char kind[] = "coupling";

static int is_checkerboard(const coupling *c)
{
    return c->mask == FG_COUPLING_MASK_CHECKERBOARD ||
           c->mask == FG_COUPLING_MASK_CHECKERBOARD_FLIP;
}

static int out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    const coupling *c = (const coupling *)f;
    if (fg_flow_expect_image(kind, in, c->channels) != FG_OK)
        return FG_ERR;
    if (is_checkerboard(c) && in->dim[2] * in->dim[3] < 2) {
        char buf[FG_SHAPE_STR_LEN];
        return fg_error("coupling: a checkerboard mask needs at least 2 pixels, input "
                        "is %s", fg_flow_shape_str(in, buf, sizeof buf));
    }
    *out = *in;
    return FG_OK;
}

/* The network runs on the batch in channel-major layout: each of its
 * convolutions is then one GEMM over the whole batch, and the wide hidden
 * activations never need reordering; only the narrow input and output are
 * transposed. Per-channel actnorm statistics are the same in either layout. */
static fg_var *nn(coupling *c, fg_graph *g, fg_var *x1)
{
    const int n = x1->t.shape[0];
    fg_var *h = fg_to_channel_major(g, x1);
    h = fg_actnorm_conv_relu(c->norm_in, g, &c->in, h, n);
    h = fg_actnorm_conv_relu(c->norm_mid, g, &c->mid, h, n);
    return fg_from_channel_major(g, fg_zero_conv_apply_cm(g, &c->out, h, n), n);
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

static fg_var *run(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet, int dir)
{
    coupling *c = (coupling *)f;
    fg_flow_require_image(kind, x, c->channels);
    fg_coupling_map_check_input(&c->map, kind, x);
    int n = x->t.shape[0];
    fg_var *y, *lsum;
    if (is_checkerboard(c)) {
        fg_var *keep, *change;
        checkerboard(c, g, x, &keep, &change);
        /* x * keep is the same before and after the map. */
        y = fg_coupling_map_apply(g, &c->map, x, nn(c, g, fg_mul(g, x, keep)), change,
                                  dir, &lsum);
    } else {
        int half = c->channels / 2;
        int flip = c->mask == FG_COUPLING_MASK_CHANNEL_FLIP;
        fg_var *lo = fg_channel_slice(g, x, 0, half);
        fg_var *hi = fg_channel_slice(g, x, half, c->channels);
        fg_var *cond = flip ? hi : lo, *v = flip ? lo : hi;
        fg_var *t = fg_coupling_map_apply(g, &c->map, v, nn(c, g, cond), NULL, dir,
                                          &lsum);
        y = flip ? fg_channel_concat(g, t, cond) : fg_channel_concat(g, cond, t);
    }
    if (logdet)
        fg_flow_accumulate(g, logdet, lsum ? lsum : fg_const_scalar(g, 0.0f), dir, n);
    return y;
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

/* Memory by inversion (fg_flow_ops.invert_record): the conditioning half
 * is the same in x and z, so the network runs once, recorded, on that half
 * of a fresh x; the other half of x is computed from z with h without a
 * tape and written into x before anything reads it; then the forward's map
 * of it is recorded. Inverse then forward would run the network twice on
 * the same values. Checkerboard masks take the general path. */
static fg_var *invert_record(fg_flow *f, fg_graph *g, fg_var *z, fg_var **x, fg_var **logdet,
                             fg_flow_ctx *ctx)
{
    (void)ctx;
    coupling *c = (coupling *)f;
    if (is_checkerboard(c))
        return NULL;
    fg_flow_require_image(kind, z, c->channels);
    int n = z->t.shape[0], half = c->channels / 2;
    int flip = c->mask == FG_COUPLING_MASK_CHANNEL_FLIP;
    int k0 = flip ? half : 0, k1 = flip ? c->channels : half;   /* conditioning */
    int v0 = flip ? 0 : half, v1 = flip ? half : c->channels;   /* changed */
    fg_var *xv = fg_const(g, z->t.ndim, z->t.shape);
    memcpy(xv->t.data, z->t.data, fg_numel(&z->t) * sizeof(float));
    xv->requires_grad = 1;
    fg_var *cond = fg_channel_slice(g, xv, k0, k1);
    fg_var *h = nn(c, g, cond), *lsum;
    int was = fg_set_grad_enabled(g, 0);
    fg_var *x2 = fg_coupling_map_apply(g, &c->map, fg_channel_slice(g, z, v0, v1), h, NULL, -1,
                                      &lsum);
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
    char p[FG_NAME_LEN], name[FG_NAME_LEN];
    fg_flow_prefix(p, sizeof p, prefix, kind);
    fg_conv_visit(&c->in, fg_name_join(name, sizeof name, p, "nn.0"), fn, vctx);
    fg_actnorm_visit_state(c->norm_in, fg_name_join(name, sizeof name, p, "nn.1"), fn, vctx);
    fg_conv_visit(&c->mid, fg_name_join(name, sizeof name, p, "nn.3"), fn, vctx);
    fg_actnorm_visit_state(c->norm_mid, fg_name_join(name, sizeof name, p, "nn.4"), fn, vctx);
    fg_zero_conv_visit(&c->out, fg_name_join(name, sizeof name, p, "nn.6"), fn, vctx);
}

static void destroy(fg_flow *f)
{
    coupling *c = (coupling *)f;
    fg_conv_free(&c->in);
    fg_flow_destroy(c->norm_in);
    fg_conv_free(&c->mid);
    fg_flow_destroy(c->norm_mid);
    fg_zero_conv_free(&c->out);
    free(c);
}

/* The network's two actnorms. */
static int data_init(fg_flow *f, int rearm)
{
    coupling *c = (coupling *)f;
    int pending = 0;
    fg_flow *norms[2] = {c->norm_in, c->norm_mid};
    for (int i = 0; i < 2; i++) {
        if (rearm)
            fg_flow_rearm_actnorm(norms[i]);
        pending += fg_flow_init_pending(norms[i]);
    }
    return pending;
}

static const fg_flow_ops ops = {kind, out_shape, forward, inverse, visit, destroy,
                                invert_record, 0, data_init, NULL};

fg_flow *fg_coupling_create(const fg_coupling_options *o)
{
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
    if (o->hidden <= 0) {
        fg_error("coupling: hidden width must be positive, got %d", o->hidden);
        return NULL;
    }
    if (!o->rng) {
        fg_error("coupling: needs an RNG for its network's weights");
        return NULL;
    }
    coupling *c = fg_xcalloc(1, sizeof *c, kind);
    c->base.ops = &ops;
    c->channels = o->channels;
    c->hidden = o->hidden;
    c->map = map;
    c->mask = o->mask;
    int seen = checker ? o->channels : o->channels / 2;
    int changed = checker ? o->channels : o->channels - o->channels / 2;
    fg_actnorm_options an = {o->hidden, 1.0f};
    fg_conv_init(&c->in, seen, o->hidden, 3, 0, 0.05f, o->rng);
    c->norm_in = fg_actnorm_create(&an);
    fg_conv_init(&c->mid, o->hidden, o->hidden, 1, 0, 0.05f, o->rng);
    c->norm_mid = fg_actnorm_create(&an);
    fg_zero_conv_init(&c->out, o->hidden, changed * fg_coupling_map_width(&map), 3, 3.0f);
    return &c->base;
}
