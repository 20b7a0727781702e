/* coupling: x1 passes through unchanged and conditions an invertible map of
 * x2 through NN(x1), so the Jacobian is triangular and the inverse needs NN
 * only forward. NN = conv3x3 -> actnorm -> ReLU -> conv1x1 -> actnorm -> ReLU
 * -> zero conv3x3, whose zero start makes an additive coupling begin as the
 * identity. The affine scale sigmoid(h + 2) starts near 0.88, not 1. */
#include "flows/layer.h"

#include <stdlib.h>

typedef struct coupling {
    fg_flow base;
    int channels, hidden;
    int affine;
    fg_conv in;             /* nn.0: C/2 -> hidden, 3x3, no bias */
    fg_flow *norm_in;       /* nn.1 */
    fg_conv mid;            /* nn.3: hidden -> hidden, 1x1, no bias */
    fg_flow *norm_mid;      /* nn.4 */
    fg_zero_conv out;       /* nn.6: hidden -> C/2 (additive) or C (affine) */
} coupling;

static const char kind[] = "coupling";

static int out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    if (fg_flow_expect_image(kind, in, ((const coupling *)f)->channels) != FG_OK)
        return FG_ERR;
    *out = *in;
    return FG_OK;
}

static fg_var *nn(coupling *c, fg_graph *g, fg_var *x1)
{
    fg_var *h = fg_conv_apply(g, &c->in, x1);
    h = fg_relu(g, fg_flow_forward(c->norm_in, g, h, NULL, NULL));
    h = fg_conv_apply(g, &c->mid, h);
    h = fg_relu(g, fg_flow_forward(c->norm_mid, g, h, NULL, NULL));
    return fg_zero_conv_apply(g, &c->out, h);
}

/* Affine parameters from h: shift = h[:, 0::2], log scale =
 * log sigmoid(h[:, 1::2] + 2), the log taken stably. */
static void affine_params(fg_graph *g, fg_var *h, fg_var **shift, fg_var **logscale)
{
    *shift = fg_channel_even(g, h);
    *logscale = fg_log_sigmoid(g, fg_add_scalar(g, fg_channel_odd(g, h), 2.0f));
}

static fg_var *forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    coupling *c = (coupling *)f;
    fg_flow_require_image(kind, x, c->channels);
    int half = c->channels / 2, n = x->t.shape[0];
    fg_var *x1 = fg_channel_slice(g, x, 0, half);
    fg_var *x2 = fg_channel_slice(g, x, half, c->channels);
    fg_var *h = nn(c, g, x1), *z2;
    if (!c->affine) {
        z2 = fg_add(g, x2, h);
        if (logdet)
            fg_flow_accumulate(g, logdet, fg_const_scalar(g, 0.0f), +1, n);
    } else {
        fg_var *shift, *logscale;
        affine_params(g, h, &shift, &logscale);
        z2 = fg_mul(g, fg_add(g, x2, shift), fg_exp(g, logscale));
        if (logdet)
            fg_flow_accumulate(g, logdet, fg_sum_per_sample(g, logscale), +1, n);
    }
    return fg_channel_concat(g, x1, z2);
}

static fg_var *inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    coupling *c = (coupling *)f;
    fg_flow_require_image(kind, z, c->channels);
    int half = c->channels / 2, n = z->t.shape[0];
    fg_var *z1 = fg_channel_slice(g, z, 0, half);
    fg_var *z2 = fg_channel_slice(g, z, half, c->channels);
    fg_var *h = nn(c, g, z1), *x2;
    if (!c->affine) {
        x2 = fg_sub(g, z2, h);
        if (logdet)
            fg_flow_accumulate(g, logdet, fg_const_scalar(g, 0.0f), -1, n);
    } else {
        fg_var *shift, *logscale;
        affine_params(g, h, &shift, &logscale);
        x2 = fg_sub(g, fg_mul(g, z2, fg_exp(g, fg_neg(g, logscale))), shift);
        if (logdet)
            fg_flow_accumulate(g, logdet, fg_sum_per_sample(g, logscale), -1, n);
    }
    return fg_channel_concat(g, z1, x2);
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

static const fg_flow_ops ops = {kind, out_shape, forward, inverse, visit, destroy};

fg_flow *fg_coupling_create(const fg_coupling_options *o)
{
    if (o->channels < 2 || o->channels % 2) {
        fg_error("coupling: needs an even channel count of at least 2 to split in "
                 "halves, got %d", o->channels);
        return NULL;
    }
    if (o->hidden <= 0) {
        fg_error("coupling: hidden width must be positive, got %d", o->hidden);
        return NULL;
    }
    if (o->affine != 0 && o->affine != 1) {
        fg_error("coupling: affine must be 0 (additive) or 1, got %d", o->affine);
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
    c->affine = o->affine;
    int half = o->channels / 2;
    fg_actnorm_options an = {o->hidden, 1.0f};
    fg_conv_init(&c->in, half, o->hidden, 3, 0, 0.05f, o->rng);
    c->norm_in = fg_actnorm_create(&an);
    fg_conv_init(&c->mid, o->hidden, o->hidden, 1, 0, 0.05f, o->rng);
    c->norm_mid = fg_actnorm_create(&an);
    fg_zero_conv_init(&c->out, o->hidden,
                      o->affine ? 2 * half : half, 3, 3.0f);
    return &c->base;
}
