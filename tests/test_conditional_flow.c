/* Conditional flows p(x | c) (a cINN): the condition reaches the top prior,
 * the learned split priors and every coupling, in every pass.
 *
 * The priors' cases check numbers: the density moves with the condition,
 * a vector and the image that repeats it give the same density, an image
 * is averaged over each cell of the layer's grid, and finite differences
 * agree with the gradient with respect to the parameters and the
 * condition. The chain's cases check a round trip per condition, a
 * gradient by inversion equal to the recorded one (the condition's
 * included), the model API (a class condition built from labels) and the
 * YAML that declares it. The cases named couplings_* need the couplings'
 * conditioners to read the condition. */
#include "check_main.h"
#include "flowgrad.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static void fill_normal(fg_rng *rng, float *v, size_t n, float scale)
{
    fg_rng_normal(rng, v, n);
    for (size_t i = 0; i < n; i++)
        v[i] *= scale;
}

typedef struct params {
    fg_var *v[256];
    int n;
    fg_rng *rng;
    float scale;
} params;

/* Collects the parameters and moves each off its start, so that zero convs
 * stop being zero and the condition's weights matter. */
static void take_param(void *vctx, const char *name, fg_var *v, fg_state_kind kind)
{
    params *p = vctx;
    (void)name;
    if (kind != FG_PARAM)
        return;
    ck_assert_int_lt(p->n, 256);
    p->v[p->n++] = v;
    size_t n = fg_numel(&v->t);
    float *noise = malloc(n * sizeof *noise);
    fill_normal(p->rng, noise, n, p->scale);
    fg_k_add(n, v->t.data, noise, v->t.data);
    free(noise);
}

static fg_var *leaf_from(const float *data, int ndim, const int *shape)
{
    fg_var *v = fg_leaf_new(ndim, shape, 1);
    memcpy(v->t.data, data, fg_numel(&v->t) * sizeof(float));
    return v;
}

static fg_var *const_from(fg_graph *g, const float *data, int ndim, const int *shape)
{
    fg_var *v = fg_const(g, ndim, shape);
    memcpy(v->t.data, data, fg_numel(&v->t) * sizeof(float));
    return v;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* ---------------------------------------------------------------- top prior */

enum { PN = 3, PC = 2, PH = 3, PW = 3, PCC = 3 };

typedef struct prior_case {
    fg_prior *p;
    float z[PN * PC * PH * PW];
    fg_var *cond;
} prior_case;

static fg_var *prior_nll(fg_graph *g, void *vctx)
{
    prior_case *c = vctx;
    int shape[4] = {PN, PC, PH, PW};
    fg_var *lp = fg_prior_logp_cond(c->p, g, const_from(g, c->z, 4, shape), NULL, c->cond);
    return fg_neg(g, fg_mean(g, lp));
}

/* log p(z | cond) of the case's z; cond lives on g. */
static void prior_logp(prior_case *c, fg_graph *g, fg_var *cond, float *out)
{
    int shape[4] = {PN, PC, PH, PW};
    fg_var *lp = fg_prior_logp_cond(c->p, g, const_from(g, c->z, 4, shape), NULL, cond);
    memcpy(out, lp->t.data, PN * sizeof *out);
}

START_TEST(top_prior_reads_the_condition)
{
    fg_rng rng;
    fg_rng_seed(&rng, 31);
    fg_graph *g = fg_graph_create();
    prior_case c;
    c.p = fg_prior_create(&(fg_prior_options){PC, PH, PW, 1, 0, 0, PCC});
    ck_assert_ptr_nonnull(c.p);
    params ps = {.rng = &rng, .scale = 0.3f};
    fg_prior_visit(c.p, NULL, take_param, &ps);
    ck_assert_int_eq(c.p->top.conv.weight->t.shape[1], 2 * PC + PCC);
    fill_normal(&rng, c.z, sizeof c.z / sizeof *c.z, 1.0f);

    /* The density moves with the condition. */
    float v[PN * PCC], v2[PN * PCC], a[PN], b[PN];
    fill_normal(&rng, v, PN * PCC, 1.0f);
    for (int i = 0; i < PN * PCC; i++)
        v2[i] = v[i] + 0.5f;
    int vs[2] = {PN, PCC};
    prior_logp(&c, g, const_from(g, v, 2, vs), a);
    prior_logp(&c, g, const_from(g, v2, 2, vs), b);
    for (int n = 0; n < PN; n++)
        ck_assert_msg(fabs(a[n] - b[n]) > 1e-2, "sample %d: log p %g under both conditions",
                      n, a[n]);

    /* An image that repeats the vector at every pixel, at the prior's grid
     * and at twice it (averaged back), gives the same density. */
    for (int f = 1; f <= 2; f++) {
        int is[4] = {PN, PCC, PH * f, PW * f};
        fg_graph_reset(g);
        fg_var *img = fg_const(g, 4, is);
        for (int n = 0; n < PN; n++)
            for (int k = 0; k < PCC; k++)
                for (int p = 0; p < PH * PW * f * f; p++)
                    img->t.data[((size_t)n * PCC + k) * PH * PW * f * f + p] = v[n * PCC + k];
        float d[PN];
        int ps4[4] = {PN, PC, PH, PW};
        fg_var *lp = fg_prior_logp_cond(c.p, g, const_from(g, c.z, 4, ps4), NULL, img);
        memcpy(d, lp->t.data, sizeof d);
        ck_assert_msg(max_diff(a, d, PN) < 1e-5, "image at %dx the grid: %g vs %g", f, d[0],
                      a[0]);
    }

    /* A varied image at twice the grid is its 2x2 means. */
    enum { FINE = PN * PCC * PH * PW * 4, COARSE = PN * PCC * PH * PW };
    float fine[FINE], coarse[COARSE] = {0};
    fill_normal(&rng, fine, FINE, 1.0f);
    for (int nk = 0; nk < PN * PCC; nk++)
        for (int y = 0; y < 2 * PH; y++)
            for (int x = 0; x < 2 * PW; x++)
                coarse[(nk * PH + y / 2) * PW + x / 2] +=
                    fine[(nk * 2 * PH + y) * 2 * PW + x] / 4;
    int fs[4] = {PN, PCC, 2 * PH, 2 * PW}, cs[4] = {PN, PCC, PH, PW};
    fg_graph_reset(g);
    prior_logp(&c, g, const_from(g, fine, 4, fs), a);
    fg_graph_reset(g);
    prior_logp(&c, g, const_from(g, coarse, 4, cs), b);
    ck_assert_msg(max_diff(a, b, PN) < 1e-4, "pooled %g vs its means %g", a[0], b[0]);

    /* T = 0 draws the means, which depend on the condition. */
    fg_graph_reset(g);
    fg_var *cv = const_from(g, v, 2, vs);
    fg_var *m, *l, *s0 = fg_prior_sample_cond(c.p, g, PN, NULL, cv, 0.0f, NULL);
    fg_prior_params_cond(c.p, g, PN, NULL, cv, &m, &l);
    ck_assert(max_diff(s0->t.data, m->t.data, fg_numel(&m->t)) == 0.0);

    /* Finite differences: every parameter and every entry of the condition. */
    c.cond = leaf_from(v, 2, vs);
    ps.v[ps.n] = c.cond;
    fg_gradcheck_result res;
    fg_graph_reset(g);
    ck_assert_msg(fg_gradcheck(g, prior_nll, &c, ps.v, ps.n + 1, 1e-2, 2e-3, 1e-2, &res),
                  "%d of %d entries differ (worst leaf %d)", res.n_failed, res.n_checked,
                  res.worst_leaf);
    fg_leaf_free(c.cond);

    /* A condition needs the learned conv. */
    ck_assert_ptr_null(fg_prior_create(&(fg_prior_options){PC, PH, PW, 0, 0, 0, PCC}));
    ck_assert_str_eq(fg_last_error(), "prior: a condition of 3 channels needs learn_top (the "
                     "condition reaches the prior through the learned conv), and the channels "
                     "must not be negative");
    fg_prior_destroy(c.p);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- split prior */

enum { SN = 2, SC = 4, SH = 4, SW = 4, SCC = 2 };

typedef struct split_case {
    fg_flow *split;
    float x[SN * SC * SH * SW];
    fg_var *cond;
} split_case;

static fg_var *split_nll(fg_graph *g, void *vctx)
{
    split_case *c = vctx;
    int shape[4] = {SN, SC, SH, SW};
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    ctx.condition = c->cond;
    fg_flow_forward(c->split, g, const_from(g, c->x, 4, shape), NULL, &ctx);
    return fg_neg(g, fg_mean(g, ctx.logp));
}

START_TEST(split_prior_reads_the_condition)
{
    fg_rng rng;
    fg_rng_seed(&rng, 32);
    fg_graph *g = fg_graph_create();
    split_case c;
    c.split = fg_split_create(&(fg_split_options){SC, 0, SCC, 0.0f});
    params ps = {.rng = &rng, .scale = 0.05f};
    fg_flow_visit(c.split, NULL, take_param, &ps);
    fill_normal(&rng, c.x, sizeof c.x / sizeof *c.x, 1.0f);
    float v[2][SN * SCC], lp[2][SN], z1[2][SN * SC / 2 * SH * SW];
    /* Conditions of the data's size, where a step of 1e-2 stays in the
     * straight part of the log-density. */
    fill_normal(&rng, v[0], SN * SCC, 0.5f);
    fill_normal(&rng, v[1], SN * SCC, 0.5f);
    int vs[2] = {SN, SCC}, xs[4] = {SN, SC, SH, SW};
    for (int k = 0; k < 2; k++) {
        fg_graph_reset(g);
        fg_flow_ctx ctx;
        fg_flow_ctx_init(&ctx);
        ctx.condition = const_from(g, v[k], 2, vs);
        fg_var *x = const_from(g, c.x, 4, xs);
        fg_var *z = fg_flow_forward(c.split, g, x, NULL, &ctx);
        memcpy(lp[k], ctx.logp->t.data, sizeof lp[k]);
        memcpy(z1[k], z->t.data, sizeof z1[k]);
        /* Given z2 back, the inverse is exact under the same condition. */
        fg_var *back = fg_flow_inverse(c.split, g, z, NULL, &ctx);
        ck_assert(max_diff(back->t.data, c.x, sizeof c.x / sizeof *c.x) == 0.0);
        /* Drawn at T = 0, z2 is the mean given z1 and the condition. */
        fg_flow_ctx draw;
        fg_flow_ctx_init(&draw);
        draw.condition = ctx.condition;
        fg_var *x0 = fg_flow_inverse(c.split, g, z, NULL, &draw), *m, *l;
        fg_split_prior_params_cond(c.split, g, z, ctx.condition, &m, &l);
        size_t half = fg_numel(&m->t) / SN;
        for (int n = 0; n < SN; n++)
            ck_assert(max_diff(x0->t.data + (2 * n + 1) * half, m->t.data + n * half, half) ==
                      0.0);
    }
    ck_assert(max_diff(z1[0], z1[1], sizeof z1[0] / sizeof *z1[0]) == 0.0);
    for (int n = 0; n < SN; n++)
        ck_assert_msg(fabs(lp[0][n] - lp[1][n]) > 1e-2, "sample %d: %g under both", n,
                      lp[0][n]);
    c.cond = leaf_from(v[0], 2, vs);
    ps.v[ps.n] = c.cond;
    fg_gradcheck_result res;
    fg_graph_reset(g);
    ck_assert_msg(fg_gradcheck(g, split_nll, &c, ps.v, ps.n + 1, 1e-2, 2e-3, 1e-2, &res),
                  "%d of %d entries differ (worst leaf %d entry %d, abs %g rel %g)", res.n_failed,
                  res.n_checked, res.worst_leaf, res.worst_index, res.max_abs_err, res.max_rel_err);
    fg_leaf_free(c.cond);
    fg_flow_destroy(c.split);
    /* The standard prior has nothing to condition. */
    fg_flow *std = fg_split_create(&(fg_split_options){SC, 1, SCC, 0.0f});
    ck_assert_ptr_nonnull(std);
    fg_flow_destroy(std);
    fg_graph_destroy(g);
}
END_TEST

/* An image condition whose grid does not divide into the layer's is
 * refused, naming the layer and both shapes. */
START_TEST(condition_of_the_wrong_grid_is_refused)
{
    fg_graph *g = fg_graph_create();
    int cs[4] = {2, 1, 5, 5}, ls[4] = {2, 4, 2, 2};
    ck_assert_ptr_null(fg_condition_for(g, fg_const(g, 4, cs), fg_const(g, 4, ls), "split"));
    ck_assert_str_eq(fg_last_error(), "split: the condition (2, 1, 5, 5) cannot be pooled to "
                     "the layer's (2, 4, 2, 2) (its height and width must be whole multiples "
                     "of the layer's)");
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- chains */

static fg_config *load(const char *rel)
{
    char path[1024];
    fg_config *cfg;
    ck_assert_msg(fg_config_load_file(fg_test_path(rel, path, sizeof path), &cfg) == FG_OK,
                  "%s", fg_last_error());
    return cfg;
}

/* The model of cfg with every parameter moved off its start and the
 * actnorms initialized on x under the condition c. */
static fg_model *perturbed_model(const fg_config *cfg, fg_graph *g, const float *x,
                                 const int *xs, const float *c, const int *cshape, int cdim)
{
    fg_model *m;
    ck_assert_msg(fg_model_build(&cfg->model, 3, &m) == FG_OK, "%s", fg_last_error());
    fg_rng rng;
    fg_rng_seed(&rng, 11);
    params ps = {.rng = &rng, .scale = 0.02f};
    fg_model_visit(m, NULL, take_param, &ps);
    fg_graph_reset(g);
    fg_model_loss_cond(m, g, const_from(g, x, 4, xs), NULL, const_from(g, c, cdim, cshape),
                       NULL, FG_MEMORY_STORE, NULL);
    fg_graph_reset(g);
    return m;
}

enum { MN = 4, MCC = 3 };

/* A tensor-conditioned chain with couplings, a split and the top prior
 * (tests/configs/cond-tensor.yaml): log p(x | c) changes with c, an image
 * condition works at every level, and decode(encode(x, c), c) = x. */
START_TEST(chain_density_depends_on_the_condition)
{
    fg_config *cfg = load("tests/configs/cond-tensor.yaml");
    ck_assert_int_eq(cfg->model.condition, FG_CONDITION_TENSOR);
    ck_assert_int_eq(cfg->model.cond_channels, MCC);
    fg_graph *g = fg_graph_create();
    fg_rng rng;
    fg_rng_seed(&rng, 33);
    int xs[4] = {MN, 1, 8, 8}, vs[2] = {MN, MCC}, is[4] = {MN, MCC, 8, 8};
    float x[MN * 64], v[2][MN * MCC], img[MN * MCC * 64];
    fg_rng_uniform(&rng, x, MN * 64);
    fg_k_add_scalar(MN * 64, -0.5f, x, x);
    fill_normal(&rng, v[0], MN * MCC, 1.0f);
    fill_normal(&rng, v[1], MN * MCC, 1.0f);
    fill_normal(&rng, img, MN * MCC * 64, 1.0f);
    fg_model *m = perturbed_model(cfg, g, x, xs, v[0], vs, 2);
    int was = fg_set_grad_enabled(g, 0);
    float lp[2][MN];
    for (int k = 0; k < 2; k++) {
        fg_graph_reset(g);
        fg_var *xv = const_from(g, x, 4, xs), *c = const_from(g, v[k], 2, vs);
        fg_var *lat[FG_FLOW_MAX_LATENTS], *logp;
        int n = fg_multiscale_encode_cond(m->flow, g, xv, NULL, c, lat, &logp);
        memcpy(lp[k], logp->t.data, sizeof lp[k]);
        fg_var *back = fg_multiscale_decode_cond(m->flow, g, lat, n, c);
        double err = max_diff(back->t.data, x, MN * 64);
        ck_assert_msg(err < 1e-5, "condition %d: round trip %g", k, err);
    }
    for (int n = 0; n < MN; n++)
        ck_assert_msg(fabs(lp[0][n] - lp[1][n]) > 1e-3, "image %d: log p %g under both", n,
                      lp[0][n]);
    /* An 8x8 image condition: the coupling at 4x4 and the prior at 2x2 see
     * its means; the round trip holds. */
    fg_graph_reset(g);
    fg_var *xv = const_from(g, x, 4, xs), *c = const_from(g, img, 4, is);
    fg_var *lat[FG_FLOW_MAX_LATENTS], *logp;
    int n = fg_multiscale_encode_cond(m->flow, g, xv, NULL, c, lat, &logp);
    ck_assert(fg_k_all_finite(MN, logp->t.data));
    fg_var *back = fg_multiscale_decode_cond(m->flow, g, lat, n, c);
    ck_assert(max_diff(back->t.data, x, MN * 64) < 1e-5);
    /* Sampling takes the condition too. */
    fg_rng_seed(&rng, 1);
    fg_var *s = fg_model_sample(m, g, MN, NULL, const_from(g, v[0], 2, vs), 0.7f, &rng);
    ck_assert(fg_k_all_finite(MN * 64, s->t.data));
    fg_set_grad_enabled(g, was);
    fg_model_free(m);
    fg_config_free(cfg);
    fg_graph_destroy(g);
}
END_TEST

/* The loss under a mode and its gradients: every parameter's, then the
 * input's and the condition's, concatenated into a fresh buffer. */
static float *gradients(fg_model *m, fg_graph *g, const float *x0, const int *xs,
                        const float *c0, const int *cs, fg_memory_mode mode, double *loss,
                        size_t *count)
{
    fg_graph_reset(g);
    fg_state_list_zero_grad(&m->state);
    fg_var *x = const_from(g, x0, 4, xs), *c = const_from(g, c0, 2, cs);
    x->requires_grad = c->requires_grad = 1;
    fg_var *l = fg_model_loss_cond(m, g, x, NULL, c, NULL, mode, NULL);
    *loss = l->t.data[0];
    fg_backward(g, l);
    size_t nx = fg_numel(&x->t), nc = fg_numel(&c->t), total = nx + nc;
    for (int i = 0; i < m->state.n; i++)
        if (m->state.items[i].kind == FG_PARAM)
            total += fg_numel(&m->state.items[i].var->t);
    float *out = malloc(total * sizeof *out), *p = out;
    for (int i = 0; i < m->state.n; i++) {
        fg_state_entry *e = &m->state.items[i];
        if (e->kind != FG_PARAM)
            continue;
        memcpy(p, e->var->grad, fg_numel(&e->var->t) * sizeof *p);
        p += fg_numel(&e->var->t);
    }
    ck_assert_ptr_nonnull(x->grad);
    ck_assert_ptr_nonnull(c->grad);
    memcpy(p, x->grad, nx * sizeof *p);
    memcpy(p + nx, c->grad, nc * sizeof *p);
    *count = total;
    fg_graph_reset(g);
    return out;
}

/* Memory by inversion sees the condition in its forward and again in each
 * unit's recorded backward: the gradients are the recorded tape's, the
 * condition's included. */
START_TEST(inversion_gradients_equal_store_with_a_condition)
{
    fg_config *cfg = load("tests/configs/cond-tensor.yaml");
    fg_graph *g = fg_graph_create();
    fg_rng rng;
    fg_rng_seed(&rng, 34);
    int xs[4] = {MN, 1, 8, 8}, vs[2] = {MN, MCC};
    float x[MN * 64], v[MN * MCC];
    fg_rng_uniform(&rng, x, MN * 64);
    fg_k_add_scalar(MN * 64, -0.5f, x, x);
    fill_normal(&rng, v, MN * MCC, 1.0f);
    fg_model *m = perturbed_model(cfg, g, x, xs, v, vs, 2);
    double ls, li;
    size_t ns, ni;
    float *gs = gradients(m, g, x, xs, v, vs, FG_MEMORY_STORE, &ls, &ns);
    float *gi = gradients(m, g, x, xs, v, vs, FG_MEMORY_INVERT, &li, &ni);
    ck_assert_uint_eq(ns, ni);
    ck_assert_msg(fabs(ls - li) <= 1e-5 * fabs(ls), "loss %.9g vs %.9g", ls, li);
    double scale = 0, err = 0, cscale = 0;
    for (size_t k = 0; k < ns; k++) {
        scale = fmax(scale, fabs(gs[k]));
        err = fmax(err, fabs((double)gs[k] - gi[k]));
    }
    for (size_t k = ns - MN * MCC; k < ns; k++)
        cscale = fmax(cscale, fabs(gs[k]));
    ck_assert_msg(err <= 1e-4 * scale, "gradients differ by %g (largest %g)", err, scale);
    ck_assert_msg(cscale > 1e-6, "the condition got no gradient");
    free(gs);
    free(gi);
    fg_model_free(m);
    fg_config_free(cfg);
    fg_graph_destroy(g);
}
END_TEST

/* condition: class builds the one-hot of the labels: the label forms equal
 * the _cond forms given that one-hot, and the density depends on the
 * label. */
START_TEST(class_condition_comes_from_labels)
{
    fg_config *cfg = load("tests/configs/cond-tiny.yaml");
    ck_assert_int_eq(cfg->model.condition, FG_CONDITION_CLASS);
    ck_assert_int_eq(cfg->model.cond_channels, 10);
    ck_assert(fg_model_spec_needs_labels(&cfg->model));
    fg_graph *g = fg_graph_create();
    fg_rng rng;
    fg_rng_seed(&rng, 35);
    int xs[4] = {MN, 1, 8, 8}, cs[2] = {MN, 10}, y[MN] = {0, 3, 9, 3}, y2[MN] = {1, 1, 1, 1};
    float x[MN * 64], onehot[MN * 10] = {0};
    fg_rng_uniform(&rng, x, MN * 64);
    fg_k_add_scalar(MN * 64, -0.5f, x, x);
    for (int n = 0; n < MN; n++)
        onehot[n * 10 + y[n]] = 1.0f;
    fg_model *m = perturbed_model(cfg, g, x, xs, onehot, cs, 2);
    int was = fg_set_grad_enabled(g, 0);
    fg_graph_reset(g);
    fg_var *c = fg_model_condition(m, g, y, MN);
    ck_assert(max_diff(c->t.data, onehot, MN * 10) == 0.0);
    float a[MN], b[MN], d[MN];
    memcpy(a, fg_model_bits_per_dim(m, g, const_from(g, x, 4, xs), y)->t.data, sizeof a);
    memcpy(b, fg_model_bits_per_dim_cond(m, g, const_from(g, x, 4, xs), NULL,
                                         const_from(g, onehot, 2, cs))->t.data, sizeof b);
    memcpy(d, fg_model_bits_per_dim(m, g, const_from(g, x, 4, xs), y2)->t.data, sizeof d);
    ck_assert(max_diff(a, b, MN) == 0.0);
    for (int n = 0; n < MN; n++)
        if (y[n] != y2[n])
            ck_assert_msg(fabs(a[n] - d[n]) > 1e-6, "image %d: %g bits/dim under both labels",
                          n, a[n]);
    /* The same draws from labels and from their one-hot. */
    fg_rng r1, r2;
    fg_rng_seed(&r1, 5);
    fg_rng_seed(&r2, 5);
    fg_var *s1 = fg_model_sample(m, g, MN, y, NULL, 0.7f, &r1);
    fg_var *s2 = fg_model_sample(m, g, MN, NULL, const_from(g, onehot, 2, cs), 0.7f, &r2);
    ck_assert(max_diff(s1->t.data, s2->t.data, MN * 64) == 0.0);
    fg_set_grad_enabled(g, was);
    fg_model_free(m);
    fg_config_free(cfg);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- couplings
 * These need the couplings' conditioners to read the condition. */

/* The top latent of x itself, not only its density, changes with the
 * condition: the couplings transform under it. */
START_TEST(couplings_transform_under_the_condition)
{
    fg_config *cfg = load("tests/configs/cond-tensor.yaml");
    fg_graph *g = fg_graph_create();
    fg_rng rng;
    fg_rng_seed(&rng, 36);
    int xs[4] = {MN, 1, 8, 8}, vs[2] = {MN, MCC};
    float x[MN * 64], v[2][MN * MCC];
    fg_rng_uniform(&rng, x, MN * 64);
    fg_k_add_scalar(MN * 64, -0.5f, x, x);
    fill_normal(&rng, v[0], MN * MCC, 1.0f);
    fill_normal(&rng, v[1], MN * MCC, 1.0f);
    fg_model *m = perturbed_model(cfg, g, x, xs, v[0], vs, 2);
    fg_set_grad_enabled(g, 0);
    float top[2][MN * 32];
    for (int k = 0; k < 2; k++) {
        fg_graph_reset(g);
        fg_var *lat[FG_FLOW_MAX_LATENTS];
        int n = fg_multiscale_encode_cond(m->flow, g, const_from(g, x, 4, xs), NULL,
                                          const_from(g, v[k], 2, vs), lat, NULL);
        ck_assert_uint_eq(fg_numel(&lat[n - 1]->t), MN * 32);
        memcpy(top[k], lat[n - 1]->t.data, sizeof top[k]);
    }
    ck_assert_msg(max_diff(top[0], top[1], MN * 32) > 1e-4,
                  "the top latent does not depend on the condition");
    fg_model_free(m);
    fg_config_free(cfg);
    fg_graph_destroy(g);
}
END_TEST

/* What the spec counts for a conditional config is what the built model
 * holds: the condition's weights of every coupling, split and the top
 * prior. */
START_TEST(couplings_sizes_count_the_condition)
{
    const char *rel[] = {"tests/configs/cond-tensor.yaml", "tests/configs/cond-tiny.yaml",
                         "models/fmnist-cond.yaml", "models/fmnist-quick-cond.yaml"};
    for (int i = 0; i < 4; i++) {
        fg_config *cfg = load(rel[i]);
        fg_model *m;
        ck_assert(fg_model_build(&cfg->model, 1, &m) == FG_OK);
        fg_model_size s;
        fg_model_spec_size(&cfg->model, &s);
        double params = 0;
        for (int k = 0; k < m->state.n; k++)
            if (m->state.items[k].kind == FG_PARAM)
                params += (double)fg_numel(&m->state.items[k].var->t);
        ck_assert_msg(params == s.params, "%s: built %g parameters, counted %g", rel[i],
                      params, s.params);
        fg_model_free(m);
        fg_config_free(cfg);
    }
}
END_TEST

/* ---------------------------------------------------------------- YAML */

static void expect_yaml_error(const char *model_keys, const char *message)
{
    char text[1024];
    snprintf(text, sizeof text, "model:\n  type: glow\n  height: 8\n  width: 8\n  channels: 1\n"
             "  levels: 1\n  steps: 1\n%s", model_keys);
    fg_config *cfg = (fg_config *)1;
    ck_assert_int_eq(fg_config_load_string(text, strlen(text), "c.yaml", &cfg), FG_ERR);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(fg_last_error(), message);
}

START_TEST(yaml_declares_the_condition)
{
    expect_yaml_error("  condition: class\n",
                      "c.yaml:8:14: condition: class needs 'classes' in 'model' (expected "
                      "classes: the number of classes; the condition is the one-hot label)");
    expect_yaml_error("  condition: colour\n",
                      "c.yaml:8:14: 'condition' in 'model' must be one of: none, class, "
                      "tensor (got 'colour')");
    expect_yaml_error("  classes: 3\n  learn_top: false\n  condition: class\n",
                      "c.yaml:10:14: condition: class needs learn_top: true (the condition "
                      "reaches the top prior through its learned conv)");
    expect_yaml_error("  condition: tensor\n",
                      "c.yaml:8:14: condition: tensor needs 'condition_channels' in 'model' "
                      "(expected the channels Cc of the condition the program gives)");
    expect_yaml_error("  classes: 3\n  condition: class\n  condition_channels: 4\n",
                      "c.yaml:10:23: 'condition_channels' applies only to condition: tensor (a "
                      "class condition has one channel per class; remove the key)");
    expect_yaml_error("  condition: tensor\n  condition_channels: 0\n",
                      "c.yaml:9:23: 'condition_channels' in 'model' is out of range (expected "
                      "1..4096, got 0)");
    /* Both forms take it; y_condition and condition live together. */
    const char *ok = "model:\n  type: flow\n  height: 4\n  width: 4\n  channels: 1\n"
                     "  classes: 5\n  y_condition: true\n  condition: class\n"
                     "  flow: [squeeze, coupling: {hidden: 4}]\n";
    fg_config *cfg;
    ck_assert_msg(fg_config_load_string(ok, strlen(ok), "ok.yaml", &cfg) == FG_OK, "%s",
                  fg_last_error());
    ck_assert_int_eq(cfg->model.cond_channels, 5);
    ck_assert_int_eq(cfg->model.layers[1].cond_channels, 5);
    fg_model *m;
    ck_assert(fg_model_build(&cfg->model, 1, &m) == FG_OK);
    ck_assert(m->has_class_head && m->n_classes == 5 && m->cond_classes == 5);
    fg_model_free(m);
    fg_config_free(cfg);
    cfg = load("tests/configs/cond-tensor.yaml");
    ck_assert_int_eq(fg_model_spec_check_data_condition(&cfg->model, "t.yaml", "flowgrad "
                     "train"), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "t.yaml: the model is conditioned on a tensor of 3 "
                     "channels (condition: tensor), which only a program using the library "
                     "can give; flowgrad train conditions on the data's labels (condition: "
                     "class) or on nothing");
    fg_config_free(cfg);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("conditional_flow");
    TCase *tc = fg_tcase("priors");
    tcase_add_test(tc, top_prior_reads_the_condition);
    tcase_add_test(tc, split_prior_reads_the_condition);
    tcase_add_test(tc, condition_of_the_wrong_grid_is_refused);
    suite_add_tcase(s, tc);
    tc = fg_tcase("chains");
    tcase_add_test(tc, chain_density_depends_on_the_condition);
    tcase_add_test(tc, inversion_gradients_equal_store_with_a_condition);
    tcase_add_test(tc, class_condition_comes_from_labels);
    tcase_add_test(tc, yaml_declares_the_condition);
    suite_add_tcase(s, tc);
    tc = fg_tcase("couplings");
    tcase_add_test(tc, couplings_transform_under_the_condition);
    tcase_add_test(tc, couplings_sizes_count_the_condition);
    suite_add_tcase(s, tc);
    return s;
}
