/* Evidence that a declared flow is what it claims to be (see
 * models/model_check.h). */
#include "models/model_check.h"
#include "models/layer_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The condition of n images for the checks (NULL without one): the same
 * for every image, so that the perturbed copies of one input in the
 * Jacobian see the same flow. A class condition is class 1's one-hot, a
 * tensor one a fixed random vector of its channels. */
static fg_var *check_condition(fg_model *m, fg_graph *g, int n)
{
    if (m->condition == FG_CONDITION_NONE)
        return NULL;
    int shape[2] = {n, m->cond_channels};
    fg_var *c = fg_const(g, 2, shape);
    float *row = c->t.data;   /* the first row, copied to the others */
    if (m->condition == FG_CONDITION_CLASS) {
        row[1 % m->cond_channels] = 1.0f;
    } else {
        fg_rng rng;
        fg_rng_seed(&rng, 0x636f6e64ULL);
        fg_rng_normal(&rng, row, (size_t)m->cond_channels);
    }
    for (int i = 1; i < n; i++)
        memcpy(row + (size_t)i * m->cond_channels, row, (size_t)m->cond_channels * sizeof *row);
    return c;
}

/* Random inputs in the data range and every parameter perturbed, so zero
 * convs and identity maps stop being so; then the actnorms are initialized
 * again on the perturbed model. Without that second init, perturbations
 * compound through a deep stack (activations grow about 5x per coupling)
 * until float rounding, not the flow, decides the round trip. */
static void randomize(fg_model *m, fg_graph *g, int batch, fg_rng *rng)
{
    int shape[4] = {batch, m->c, m->h, m->w};
    float *x0 = fg_xmalloc((size_t)batch * m->c * m->h * m->w * sizeof *x0, "input");
    fg_rng_uniform(rng, x0, (size_t)batch * m->c * m->h * m->w);
    fg_k_add_scalar((size_t)batch * m->c * m->h * m->w, -0.5f, x0, x0);
    int *y = fg_xcalloc((size_t)batch, sizeof *y, "labels");
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            for (int i = 0; i < m->state.n; i++) {
                fg_state_entry *e = &m->state.items[i];
                if (e->kind != FG_PARAM)
                    continue;
                /* 0.05 / sqrt(fan-in): each output moves by about 0.05
                 * whatever the layer's width, so wide layers are perturbed
                 * as much as narrow ones and no more. */
                size_t n = fg_numel(&e->var->t);
                size_t fan_in = e->var->t.ndim >= 2 ? n / (size_t)e->var->t.shape[0] : 1;
                float *noise = fg_xmalloc(n * sizeof *noise, "noise");
                fg_rng_normal(rng, noise, n);
                fg_k_axpy(n, 0.05f / sqrtf((float)fan_in), noise, e->var->t.data);
                free(noise);
            }
            fg_flow_rearm_actnorm(m->flow->body);
        }
        /* a forward with gradients on runs actnorm's data-dependent init */
        fg_graph_reset(g);
        fg_model_loss_cond(m, g, fg_const_wrap(g, x0, 4, shape), y,
                           check_condition(m, g, batch), NULL, FG_MEMORY_STORE, NULL);
        fg_graph_reset(g);
    }
    free(y);
    free(x0);
}

static fg_var *random_input(fg_model *m, fg_graph *g, int n, fg_rng *rng)
{
    int shape[4] = {n, m->c, m->h, m->w};
    fg_var *x = fg_const(g, 4, shape);
    fg_rng_uniform(rng, x->t.data, fg_numel(&x->t));
    fg_k_add_scalar(fg_numel(&x->t), -0.5f, x->t.data, x->t.data);
    return x;
}

/* All latents of x (n, ...) flattened per sample into out (n, D). */
static void encode_flat(fg_model *m, fg_graph *g, fg_var *x, float *out)
{
    fg_var *lat[FG_FLOW_MAX_LATENTS];
    int n = x->t.shape[0], D = fg_model_dims(m);
    int k = fg_multiscale_encode_cond(m->flow, g, x, NULL, check_condition(m, g, n), lat, NULL);
    int off = 0;
    for (int l = 0; l < k; l++) {
        int per = (int)(fg_numel(&lat[l]->t) / n);
        for (int s = 0; s < n; s++)
            memcpy(out + (size_t)s * D + off, lat[l]->t.data + (size_t)s * per,
                   (size_t)per * sizeof(float));
        off += per;
    }
    FG_CHECK(off == D, "fg_model_self_check", "latents hold %d values per image, expected %d", off, D);
}

static double round_trip_error(fg_model *m, fg_graph *g, fg_rng *rng)
{
    fg_graph_reset(g);
    int was = fg_set_grad_enabled(g, 0);
    fg_var *x = random_input(m, g, 2, rng);
    fg_var *lat[FG_FLOW_MAX_LATENTS];
    fg_var *c = check_condition(m, g, 2);
    int k = fg_multiscale_encode_cond(m->flow, g, x, NULL, c, lat, NULL);
    fg_var *back = fg_multiscale_decode_cond(m->flow, g, lat, k, c);
    double err = fg_k_max_abs_diff(fg_numel(&x->t), x->t.data, back->t.data);
    fg_set_grad_enabled(g, was);
    fg_graph_reset(g);
    return err;
}

/* Analytic and numerical log|det| at one random input. */
static void logdet_pair(fg_model *m, fg_graph *g, fg_rng *rng, double *analytic,
                        double *numeric)
{
    int D = fg_model_dims(m);
    const float eps = 1e-2f;
    fg_graph_reset(g);
    int was = fg_set_grad_enabled(g, 0);
    fg_var *x = random_input(m, g, 1, rng);
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    ctx.condition = check_condition(m, g, 1);
    fg_var *ld = NULL;
    fg_flow_forward(m->flow->body, g, x, &ld, &ctx);
    *analytic = ld ? ld->t.data[0] : 0.0;
    /* All 2D perturbed copies in one batch: rows 2i and 2i+1 move
     * coordinate i by +eps and -eps. */
    int shape[4] = {2 * D, m->c, m->h, m->w};
    fg_var *xs = fg_const(g, 4, shape);
    for (int i = 0; i < 2 * D; i++) {
        memcpy(xs->t.data + (size_t)i * D, x->t.data, (size_t)D * sizeof(float));
        xs->t.data[(size_t)i * D + i / 2] += i % 2 ? -eps : eps;
    }
    float *z = fg_xmalloc((size_t)2 * D * D * sizeof *z, "jacobian");
    encode_flat(m, g, xs, z);
    double *J = fg_xmalloc((size_t)D * D * sizeof *J, "jacobian");
    for (int i = 0; i < D; i++)          /* column i: d z / d x_i */
        for (int r = 0; r < D; r++)
            J[(size_t)r * D + i] = ((double)z[(size_t)(2 * i) * D + r] -
                                    z[(size_t)(2 * i + 1) * D + r]) / (2.0 * eps);
    int sign;
    fg_mat_slogdet(D, J, numeric, &sign);
    free(J);
    free(z);
    fg_set_grad_enabled(g, was);
    fg_graph_reset(g);
}

typedef struct loss_ctx {
    fg_model *m;
    fg_tensor x;
    int y[2];
} loss_ctx;

static fg_var *loss_fn(fg_graph *g, void *vctx)
{
    loss_ctx *c = vctx;
    fg_var *x = fg_const_wrap(g, c->x.data, 4, c->x.shape);
    return fg_model_loss_cond(c->m, g, x, c->y, check_condition(c->m, g, 2), NULL,
                              FG_MEMORY_STORE, NULL);
}

static double gradient_error(fg_model *m, fg_graph *g, fg_rng *rng, double *an, double *nu)
{
    loss_ctx c;
    c.m = m;
    int shape[4] = {2, m->c, m->h, m->w};
    fg_tensor *x = fg_tensor_new(4, shape);
    fg_rng_uniform(rng, x->data, fg_numel(x));
    fg_k_add_scalar(fg_numel(x), -0.5f, x->data, x->data);
    c.x = *x;
    c.y[0] = 0;
    c.y[1] = m->n_classes > 1 ? 1 : 0;
    fg_var **leaves = fg_xmalloc((size_t)m->state.n * sizeof *leaves, "leaves");
    int n = 0;
    for (int i = 0; i < m->state.n; i++)
        if (m->state.items[i].kind == FG_PARAM)
            leaves[n++] = m->state.items[i].var;
    fg_graph_reset(g);
    double rel = fg_gradcheck_direction_mixed(g, loss_fn, &c, leaves, n, 1e-2, rng, an, nu);
    fg_graph_reset(g);
    free(leaves);
    fg_tensor_free(x);
    return rel;
}

/* Thresholds: float32 round trips of deep chains stay well under 1e-3;
 * finite differences in float32 at eps 1e-2 give a few 1e-3 on the
 * log-determinant. With perturbations scaled by fan-in and actnorms
 * re-initialized, a step of 1e-2 along a unit direction sits between
 * curvature and rounding: over the zoo (seeds 1 and 2) the directional
 * derivative agreed to at most 1.8e-2 relative, while steps of 1e-3 reached
 * 7e-2 on rounding alone. */
#define TOL_LOGDET_ABS 0.05
#define TOL_LOGDET_REL 1e-3
/* float32 noise floor of a central difference at eps 1e-2 on a loss of a
 * few bits/dim */
#define TOL_GRAD_ABS 1e-4

static int build(const fg_model_spec *s, uint64_t seed, fg_model **full, fg_model **small,
                 fg_model_build_options *o)
{
    int squeezes = 0;
    for (int i = 0; i < s->n_layers; i++)
        squeezes += s->layers[i].kind == &fg_layer_squeeze;
    /* The smallest input every squeeze accepts, unless the real one is small. */
    *o = (fg_model_build_options){0, 0, 16};
    if (s->input.c * s->input.h * s->input.w > 256) {
        o->height = o->width = 1 << squeezes;
        if (o->height > s->input.h) o->height = s->input.h;
        if (o->width > s->input.w) o->width = s->input.w;
    }
    *full = *small = NULL;
    if (fg_model_build(s, seed, full) != FG_OK || fg_model_build_ex(s, seed, o, small) != FG_OK) {
        fg_model_free(*full);
        return FG_ERR;
    }
    return FG_OK;
}

int fg_model_self_check(const fg_model_spec *s, uint64_t seed, fg_model_check_report *r)
{
    memset(r, 0, sizeof *r);
    fg_model *full, *small;
    fg_model_build_options o;
    if (build(s, seed, &full, &small, &o) != FG_OK)
        return FG_ERR;
    r->full = (fg_chw){full->c, full->h, full->w};
    r->small = (fg_chw){small->c, small->h, small->w};
    r->max_hidden = o.max_hidden;
    fg_graph *g = fg_graph_create();
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    randomize(full, g, 2, &rng);
    randomize(small, g, 32, &rng);
    r->round_trip = round_trip_error(full, g, &rng);
    r->dims = fg_model_dims(small);
    r->have_logdet = r->dims <= 1024;
    if (r->have_logdet)
        logdet_pair(small, g, &rng, &r->logdet_analytic, &r->logdet_numeric);
    r->grad_rel = gradient_error(small, g, &rng, &r->grad_analytic, &r->grad_numeric);
    r->round_trip_ok = r->round_trip <= FG_CHECK_TOL_ROUND_TRIP && isfinite(r->round_trip);
    double ld_err = fabs(r->logdet_analytic - r->logdet_numeric);
    r->logdet_ok = !r->have_logdet ||
                   (isfinite(ld_err) && ld_err <= TOL_LOGDET_ABS +
                                                  TOL_LOGDET_REL * fabs(r->logdet_analytic));
    double an = r->grad_analytic, nu = r->grad_numeric;
    r->grad_ok = isfinite(r->grad_rel) &&
                 fabs(an - nu) <= FG_CHECK_TOL_GRAD_REL * fmax(fabs(an), fabs(nu)) + TOL_GRAD_ABS;
    r->ok = r->round_trip_ok && r->logdet_ok && r->grad_ok;
    fg_graph_destroy(g);
    fg_model_free(full);
    fg_model_free(small);
    return FG_OK;
}
