/* The multi-scale container: a chain of layers whose splits hand latents
 * out at each scale, and a prior on what reaches the top. Its density is
 * log p(x) = log p(z_top) + sum over splits of log p(z2 | z1) + logdet.
 * Without splits it is a sequential flow, over vectors (N, D) as well as
 * images: one container, so every pass (unit by unit, by inversion,
 * sampling) exists once. */
#include "flows/units.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int count_splits(fg_flow *f)
{
    if (f->ops->roles & FG_FLOW_ROLE_SPLIT)
        return 1;
    int n = 0;
    if (f->ops->roles & FG_FLOW_ROLE_SEQUENCE)
        for (int i = 0; i < fg_sequence_length(f); i++)
            n += count_splits(fg_sequence_layer(f, i));
    return n;
}

int fg_multiscale_create(const fg_multiscale_options *o, fg_multiscale **out)
{
    *out = NULL;
    fg_flow *body = fg_sequence_create(o->layers, o->n_layers);
    if (!body)
        return FG_ERR;
    fg_flow_shape top;
    if (fg_flow_out_shape(body, &o->input, &top) != FG_OK) {
        fg_flow_destroy(body);
        return FG_ERR;
    }
    int splits = count_splits(body);
    if (splits + 1 > FG_FLOW_MAX_LATENTS) {
        fg_flow_destroy(body);
        return fg_error("multiscale: %d splits; at most %d latents are supported",
                        splits, FG_FLOW_MAX_LATENTS);
    }
    fg_prior_options po = {top.dim[1], top.dim[2], top.dim[3], o->learn_top, o->n_classes,
                           top.ndim == 2, o->cond_channels};
    fg_prior *prior = fg_prior_create(&po);
    if (!prior) {
        fg_flow_destroy(body);
        return FG_ERR;
    }
    fg_multiscale *m = fg_xcalloc(1, sizeof *m, "multiscale");
    m->body = body;
    m->prior = prior;
    m->input = o->input;
    m->top = top;
    m->n_latents = splits + 1;
    m->cond_channels = o->cond_channels;
    *out = m;
    return FG_OK;
}

void fg_multiscale_destroy(fg_multiscale *m)
{
    if (!m)
        return;
    fg_flow_destroy(m->body);
    fg_prior_destroy(m->prior);
    free(m);
}

void fg_multiscale_visit(fg_multiscale *m, const char *prefix, fg_visit_fn fn, void *vctx)
{
    char p[FG_NAME_LEN];
    fg_flow_visit(m->body, fg_name_join(p, sizeof p, prefix, "flow"), fn, vctx);
    fg_prior_visit(m->prior, prefix, fn, vctx);
}

fg_var *fg_multiscale_log_density(fg_multiscale *m, fg_graph *g, fg_var *top, const int *y,
                                  fg_var *condition, fg_var *split_logp, fg_var *logdet)
{
    fg_var *lp = fg_prior_logp_cond(m->prior, g, top, y, condition);
    fg_flow_observe("prior.logp", lp);
    if (split_logp)
        lp = fg_add(g, lp, split_logp);
    if (logdet)
        lp = fg_add(g, lp, logdet);
    return lp;
}

void fg_multiscale_require_condition(const fg_multiscale *m, const fg_var *condition)
{
    FG_CHECK(!m->cond_channels || condition, "multiscale", "the flow is conditional (a "
             "condition of %d channels) but none was given", m->cond_channels);
}

int fg_multiscale_encode(fg_multiscale *m, fg_graph *g, fg_var *x, const int *y,
                         fg_var **latents, fg_var **logp)
{
    return fg_multiscale_encode_cond(m, g, x, y, NULL, latents, logp);
}

int fg_multiscale_encode_cond(fg_multiscale *m, fg_graph *g, fg_var *x, const int *y,
                              fg_var *condition, fg_var **latents, fg_var **logp)
{
    fg_multiscale_require_condition(m, condition);
    if (!fg_grad_enabled(g)) {
        /* Nothing is recorded: run unit by unit and give each unit's
         * intermediates back (flows/multiscale_units.c). */
        fg_unit_plan plan;
        fg_flow_shape in = fg_flow_shape_of(x);
        fg_unit_plan_make(g, m->body, &in, &plan);
        plan.condition = condition;
        fg_unit_values v;
        fg_units_forward(g, &plan, x, 0, &v);
        fg_multiscale_collect(m, &v, latents);
        if (logp)
            *logp = fg_multiscale_log_density(m, g, v.top, y, condition, v.logp, v.logdet);
        return m->n_latents;
    }
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    ctx.condition = condition;
    fg_var *logdet = NULL;
    fg_var *z = fg_flow_forward(m->body, g, x, &logdet, &ctx);
    FG_CHECK(ctx.n_latents + 1 == m->n_latents, "multiscale",
             "forward produced %d latents, expected %d", ctx.n_latents + 1, m->n_latents);
    if (latents) {
        for (int i = 0; i < ctx.n_latents; i++)
            latents[i] = ctx.latents[i];
        latents[ctx.n_latents] = z;
    }
    if (logp)
        *logp = fg_multiscale_log_density(m, g, z, y, condition, ctx.logp, logdet);
    return m->n_latents;
}

void fg_multiscale_collect(const fg_multiscale *m, const fg_unit_values *v, fg_var **latents)
{
    if (!latents)
        return;
    for (int i = 0; i + 1 < m->n_latents; i++)
        latents[i] = v->latents[i];
    latents[m->n_latents - 1] = v->top;
}

fg_var *fg_multiscale_log_prob(fg_multiscale *m, fg_graph *g, fg_var *x, const int *y)
{
    return fg_multiscale_log_prob_cond(m, g, x, y, NULL);
}

fg_var *fg_multiscale_log_prob_cond(fg_multiscale *m, fg_graph *g, fg_var *x, const int *y,
                                    fg_var *condition)
{
    fg_var *logp;
    fg_multiscale_encode_cond(m, g, x, y, condition, NULL, &logp);
    return logp;
}

/* Runs the chain backwards from the top latent, unit by unit; ctx holds
 * the split-offs (or none, to draw them). */
static fg_var *run_inverse(fg_multiscale *m, fg_graph *g, fg_var *top, fg_flow_ctx *ctx)
{
    fg_flow_shape in = m->input;
    in.dim[0] = top->t.shape[0];
    fg_unit_plan plan;
    fg_unit_plan_make(g, m->body, &in, &plan);
    plan.condition = ctx->condition;
    fg_var *x = fg_units_inverse(g, &plan, top, ctx);
    FG_CHECK(ctx->n_latents == 0, "multiscale", "%d latents were left unused",
             ctx->n_latents);
    return x;
}

fg_var *fg_multiscale_decode(fg_multiscale *m, fg_graph *g, fg_var **latents,
                             int n_latents)
{
    return fg_multiscale_decode_cond(m, g, latents, n_latents, NULL);
}

fg_var *fg_multiscale_decode_cond(fg_multiscale *m, fg_graph *g, fg_var **latents,
                                  int n_latents, fg_var *condition)
{
    fg_multiscale_require_condition(m, condition);
    FG_CHECK(n_latents == m->n_latents, "multiscale_decode",
             "given %d latents, the model has %d", n_latents, m->n_latents);
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    ctx.condition = condition;
    for (int i = 0; i + 1 < n_latents; i++)
        fg_flow_ctx_push(&ctx, latents[i]);
    return run_inverse(m, g, latents[n_latents - 1], &ctx);
}

fg_var *fg_multiscale_sample(fg_multiscale *m, fg_graph *g, int n, const int *y,
                             float temperature, fg_rng *rng)
{
    return fg_multiscale_sample_cond(m, g, n, y, NULL, temperature, rng);
}

fg_var *fg_multiscale_sample_cond(fg_multiscale *m, fg_graph *g, int n, const int *y,
                                  fg_var *condition, float temperature, fg_rng *rng)
{
    fg_multiscale_require_condition(m, condition);
    int was = fg_set_grad_enabled(g, 0);
    fg_var *top = fg_prior_sample_cond(m->prior, g, n, y, condition, temperature, rng);
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    ctx.condition = condition;
    ctx.temperature = temperature;
    ctx.rng = rng;
    fg_var *x = run_inverse(m, g, top, &ctx);
    fg_set_grad_enabled(g, was);
    return x;
}
