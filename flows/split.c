/* split: half of the channels leave the chain as a latent z2, modelled by a
 * Gaussian conditioned on the half that stays (Glow's learned split prior).
 * x -> (z1, z2) only relabels values, so logdet is unchanged; the density
 * of z2 goes to ctx->logp instead. The standard variant (RealNVP's) models
 * z2 as N(0, I) whatever z1 is. A conditional learned prior reads the
 * batch's condition (ctx->condition) beside z1: the conv sees
 * concat(z1, condition shaped to z1's grid). */
#include "flows/layer.h"

#include <math.h>
#include <stdlib.h>

typedef struct split {
    fg_flow base;
    int channels;
    int standard;
    int cond_channels;      /* learned only: the condition's channels, 0 for none */
    float logs_floor;       /* learned only: 0, or F: logs = softplus(h + F) - F */
    fg_zero_conv conv;      /* learned: C/2 + Cc -> 2 (C - C/2), 3x3, interleaved mean/logs */
} split;

static const char kind[] = "split";

static int out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    const split *s = (const split *)f;
    if (fg_flow_expect_image(kind, in, s->channels) != FG_OK)
        return FG_ERR;
    *out = fg_flow_shape4(in->dim[0], s->channels / 2, in->dim[2], in->dim[3]);
    return FG_OK;
}

void fg_split_prior_params(fg_flow *f, fg_graph *g, fg_var *z1, fg_var **mean, fg_var **logs)
{
    fg_split_prior_params_cond(f, g, z1, NULL, mean, logs);
}


void fg_split_prior_params_cond(fg_flow *f, fg_graph *g, fg_var *z1, fg_var *condition,
                                fg_var **mean, fg_var **logs)
{
    split *s = (split *)f;
    fg_flow_require_image(kind, z1, s->channels / 2);
    if (s->standard) {
        int shape[4] = {z1->t.shape[0], s->channels - s->channels / 2, z1->t.shape[2],
                        z1->t.shape[3]};
        *mean = fg_const(g, 4, shape);
        *logs = fg_const(g, 4, shape);
        return;
    }
    fg_var *h = fg_zero_conv_apply(
        g, &s->conv, fg_condition_join(g, z1, condition, s->cond_channels, kind));
    *mean = fg_channel_even(g, h);
    *logs = fg_channel_odd(g, h);
    if (s->logs_floor > 0.0f) {
        /* softplus(u) = -log sigmoid(-u), by the op that stays exact for
         * large |u| */
        fg_var *u = fg_add_scalar(g, *logs, s->logs_floor);
        *logs = fg_add_scalar(g, fg_neg(g, fg_log_sigmoid(g, fg_neg(g, u))), -s->logs_floor);
    }
}

static void require_ctx(const fg_flow_ctx *ctx, const char *dir)
{
    FG_CHECK(ctx != NULL, kind, "%s needs an fg_flow_ctx to carry z2", dir);
}

static fg_var *forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    split *s = (split *)f;
    require_ctx(ctx, "forward");
    fg_flow_require_image(kind, x, s->channels);
    int half = s->channels / 2;
    fg_var *z1 = fg_channel_slice(g, x, 0, half);
    fg_var *z2 = fg_channel_slice(g, x, half, s->channels);
    fg_var *mean, *logs;
    fg_split_prior_params_cond(f, g, z1, ctx->condition, &mean, &logs);
    fg_var *lp = fg_gaussian_logp(g, z2, mean, logs);
    fg_flow_observe("prior.logs", logs);
    fg_flow_observe("prior.logp", lp);
    ctx->logp = ctx->logp ? fg_add(g, ctx->logp, lp) : lp;
    fg_flow_ctx_push(ctx, z2);
    if (logdet)
        fg_flow_accumulate(g, logdet, fg_const_scalar(g, 0.0f), +1, x->t.shape[0]);
    return z1;
}

static fg_var *draw(fg_graph *g, fg_var *mean, fg_var *logs, const fg_flow_ctx *ctx)
{
    if (ctx->temperature == 0.0f)
        return mean;
    FG_CHECK(ctx->rng != NULL, kind, "drawing z2 at temperature %g needs an RNG",
             ctx->temperature);
    fg_var *eps = fg_const(g, mean->t.ndim, mean->t.shape);
    fg_rng_normal(ctx->rng, eps->t.data, fg_numel(&eps->t));
    return fg_add(g, mean, fg_mul(g, fg_exp(g, logs), fg_scale(g, eps, ctx->temperature)));
}

static fg_var *inverse(fg_flow *f, fg_graph *g, fg_var *z1, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    split *s = (split *)f;
    require_ctx(ctx, "inverse");
    int half = s->channels / 2;
    fg_var *mean, *logs;
    fg_split_prior_params_cond(f, g, z1, ctx->condition, &mean, &logs);
    fg_var *z2 = fg_flow_ctx_pop(ctx);
    if (z2) {
        char a[FG_SHAPE_STR_LEN], b[FG_SHAPE_STR_LEN];
        FG_CHECK(fg_same_shape(&z2->t, &mean->t), kind,
                 "given z2 %s does not match z1 %s (expected %d channels)",
                 fg_shape_str(&z2->t, a, sizeof a), fg_shape_str(&z1->t, b, sizeof b),
                 s->channels - half);
    } else {
        z2 = draw(g, mean, logs, ctx);
    }
    if (logdet)
        fg_flow_accumulate(g, logdet, fg_const_scalar(g, 0.0f), -1, z1->t.shape[0]);
    return fg_channel_concat(g, z1, z2);
}

static void visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    split *s = (split *)f;
    char p[FG_NAME_LEN], name[FG_NAME_LEN];
    if (s->standard)
        return;
    fg_flow_prefix(p, sizeof p, prefix, kind);
    fg_zero_conv_visit(&s->conv, fg_name_join(name, sizeof name, p, "conv"), fn, vctx);
}

static void destroy(fg_flow *f)
{
    split *s = (split *)f;
    if (!s->standard)
        fg_zero_conv_free(&s->conv);
    free(s);
}

static const fg_flow_ops ops = {kind, out_shape, forward, inverse, visit, destroy, NULL,
                                FG_FLOW_ROLE_SPLIT, NULL, NULL};

fg_flow *fg_split_create(const fg_split_options *o)
{
    if (o->cond_channels < 0) {
        fg_error("split: cond_channels must be 0 or positive, got %d", o->cond_channels);
        return NULL;
    }
    if (o->channels < 2 || o->channels % 2) {
        fg_error("split: needs an even channel count of at least 2, got %d", o->channels);
        return NULL;
    }
    if (!(o->logs_floor >= 0.0f) || isinf(o->logs_floor)) {
        fg_error("split: logs_floor must be 0 (none) or a positive number, got %g",
                 (double)o->logs_floor);
        return NULL;
    }
    split *s = fg_xcalloc(1, sizeof *s, kind);
    s->base.ops = &ops;
    s->channels = o->channels;
    s->standard = o->standard != 0;
    if (s->standard)
        return &s->base;
    int half = o->channels / 2;
    s->cond_channels = o->cond_channels;
    s->logs_floor = o->logs_floor;
    fg_zero_conv_init(&s->conv, half + s->cond_channels, 2 * (o->channels - half), 3, 3.0f);
    return &s->base;
}
