/* Flow layers: round trips, log-determinants against the numerical
 * Jacobian, parameter gradients against finite differences, actnorm's
 * data-dependent init and saved flag, LU against plain invconv, the
 * multi-scale container's density, encoding, decoding and sampling,
 * shape errors, and batches of vectors (N, D) through every layer that
 * takes them. Parameters are first moved off their identity start, so
 * every check sees a map that is not the identity.
 *
 * The numerical Jacobian uses the five-point stencil in float with step
 * 1/8 on inputs rounded to a 2^-10 grid (so every probe point is exact);
 * its log|det| is taken in double. Measured differences from the analytic
 * log-det are ~1e-6 per layer and ~2e-5 for the whole stack, float
 * rounding of the outputs; a wrong log-det term is off by far more than
 * the 2e-4 allowed. Gradients use fg_gradcheck's step 1e-2 and
 * atol 2e-3 + rtol 1e-2 (the truncation error of the exp(3 logs) terms
 * shrinks as h^2 toward the analytic value, checked by hand). The worst
 * round-trip error and log-det difference per layer are printed. */
#include "check_main.h"
#include "check_jacobian.h"
#include "flowgrad.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define HIDDEN 8
#define LOG_2PI 1.8378770664093453

/* ---------------------------------------------------------------- helpers */

static fg_var *input_const(fg_graph *g, const float *data, const fg_flow_shape *s)
{
    fg_var *x = fg_const(g, s->ndim, s->dim);
    memcpy(x->t.data, data, fg_numel(&x->t) * sizeof(float));
    return x;
}

static float *random_buffer(fg_rng *rng, size_t n, float scale)
{
    float *x = fg_xmalloc(n * sizeof(float), "test");
    fg_rng_normal(rng, x, n);
    for (size_t i = 0; i < n; i++)
        x[i] *= scale;
    return x;
}

static size_t shape_numel(const fg_flow_shape *s)
{
    return fg_shape_numel(s->ndim, s->dim);
}

static double max_abs_diff(const fg_var *a, const fg_var *b)
{
    ck_assert_msg(fg_same_shape(&a->t, &b->t), "shapes differ");
    return fg_k_max_abs_diff(fg_numel(&a->t), a->t.data, b->t.data);
}

/* Moves every parameter that starts at an identity (zero convs, actnorms,
 * LU factors, invconv weights, priors) off its start by N(0, scale^2)
 * noise and marks actnorms initialized, so no data-dependent init
 * overrides the values. The coupling networks' hidden convs already start
 * random and keep their N(0, 0.05^2) weights; their actnorms get biases of
 * alternately +1 and -1 per channel, so half the ReLUs pass and half block,
 * every pre-activation stays far (> 0.5) from the kink, and central
 * differences never straddle one. */
typedef struct perturb_ctx {
    fg_rng *rng;
    float scale;
} perturb_ctx;

static void perturb_visitor(void *vctx, const char *name, fg_var *v, fg_state_kind kind)
{
    perturb_ctx *p = vctx;
    size_t n = fg_numel(&v->t);
    if (kind == FG_BUFFER) {
        if (fg_test_ends_with(name, "initialized"))
            v->t.data[0] = 1.0f;
        return;
    }
    if (fg_test_ends_with(name, "nn.0.weight") || fg_test_ends_with(name, "nn.3.weight"))
        return;
    /* Dense networks: small hidden weights under +-1 biases keep every ReLU
     * input far from its kink, as for the conv networks above. */
    if (strstr(name, ".hidden.")) {
        for (size_t i = 0; i < n; i++)
            v->t.data[i] = fg_test_ends_with(name, "bias") ? (i % 2 ? -1.0f : 1.0f)
                                                   : 0.1f * v->t.data[i];
        return;
    }
    float *noise = random_buffer(p->rng, n, p->scale);
    if (fg_test_ends_with(name, "nn.1.bias") || fg_test_ends_with(name, "nn.4.bias"))
        for (size_t i = 0; i < n; i++)
            v->t.data[i] = i % 2 ? -1.0f : 1.0f;
    fg_k_add(n, v->t.data, noise, v->t.data);
    free(noise);
}

static void perturb(fg_flow *f, fg_rng *rng, float scale)
{
    perturb_ctx p = {rng, scale};
    fg_flow_visit(f, NULL, perturb_visitor, &p);
}

/* Parameters (FG_PARAM) in visit order. */
typedef struct collect_ctx {
    fg_var *vars[256];
    char names[256][FG_NAME_LEN];
    fg_state_kind kinds[256];
    int n, n_params;
    fg_var *params[256];
    const char *param_names[256];
} collect_ctx;

static void collect_visitor(void *vctx, const char *name, fg_var *v, fg_state_kind kind)
{
    collect_ctx *c = vctx;
    ck_assert_int_lt(c->n, 256);
    c->vars[c->n] = v;
    c->kinds[c->n] = kind;
    snprintf(c->names[c->n], FG_NAME_LEN, "%s", name);
    c->n++;
    if (kind == FG_PARAM) {
        c->param_names[c->n_params] = c->names[c->n - 1];
        c->params[c->n_params++] = v;
    }
}

/* ---------------------------------------------------------------- layers */

enum {
    L_ACTNORM, L_INVCONV, L_INVCONV_LU, L_REVERSE, L_SHUFFLE, L_ADDITIVE, L_AFFINE,
    L_SQUEEZE, L_UNSQUEEZE, L_SPLIT, L_SEQUENCE, L_CHECKER_ADDITIVE, L_CHECKER_SIGMOID,
    L_CHECKER_FLIP_TANH, L_CHANNEL_FLIP_TANH, L_CHANNEL_FLIP_ADDITIVE, L_SPLIT_STANDARD,
    L_SPLIT_FLOOR, N_LAYERS
};
static const char *LAYER_NAMES[N_LAYERS] = {
    "actnorm", "invconv", "invconv_lu", "permute_reverse", "permute_shuffle",
    "coupling_additive", "coupling_affine", "squeeze", "unsqueeze", "split", "sequence",
    "checker_additive", "checker_sigmoid", "checker_flip_tanh", "channel_flip_tanh",
    "channel_flip_additive", "split_standard", "split_floor"};

static fg_flow *make_coupling(int c, int affine, fg_coupling_mask mask,
                              fg_coupling_scale scale, fg_rng *rng)
{
    fg_coupling_options o = {c, HIDDEN, affine, rng, mask, scale, 0, 0.0f, NULL, 0, 0};
    return fg_coupling_create(&o);
}

static fg_flow *make_layer(int which, int c, fg_rng *rng)
{
    switch (which) {
    case L_ACTNORM: return fg_actnorm_create(&(fg_actnorm_options){c, 1.0f});
    case L_INVCONV: return fg_invconv_create(&(fg_invconv_options){c, 0, NULL, rng});
    case L_INVCONV_LU: return fg_invconv_create(&(fg_invconv_options){c, 1, NULL, rng});
    case L_REVERSE:
        return fg_permute_create(&(fg_permute_options){c, 0, NULL});
    case L_SHUFFLE:
        return fg_permute_create(&(fg_permute_options){c, 1, rng});
    case L_ADDITIVE:
        return fg_coupling_create(&(fg_coupling_options){c, HIDDEN, 0, rng, 0, 0, 0, 0.0f, NULL, 0, 0});
    case L_AFFINE:
        return fg_coupling_create(&(fg_coupling_options){c, HIDDEN, 1, rng, 0, 0, 0, 0.0f, NULL, 0, 0});
    case L_SQUEEZE: return fg_squeeze_create();
    case L_UNSQUEEZE: return fg_unsqueeze_create();
    case L_SPLIT: return fg_split_create(&(fg_split_options){c, 0, 0, 0.0f});
    case L_SEQUENCE: {
        fg_flow *layers[4] = {
            make_layer(L_ACTNORM, c, rng), make_layer(L_INVCONV_LU, c, rng),
            make_layer(L_AFFINE, c, rng), fg_squeeze_create()};
        return fg_sequence_create(layers, 4);
    }
    case L_CHECKER_ADDITIVE:
        return make_coupling(c, 0, FG_COUPLING_MASK_CHECKERBOARD, 0, rng);
    case L_CHECKER_SIGMOID:
        return make_coupling(c, 1, FG_COUPLING_MASK_CHECKERBOARD, FG_COUPLING_SCALE_SIGMOID,
                             rng);
    case L_CHECKER_FLIP_TANH:
        return make_coupling(c, 1, FG_COUPLING_MASK_CHECKERBOARD_FLIP,
                             FG_COUPLING_SCALE_TANH, rng);
    case L_CHANNEL_FLIP_TANH:
        return make_coupling(c, 1, FG_COUPLING_MASK_CHANNEL_FLIP, FG_COUPLING_SCALE_TANH, rng);
    case L_CHANNEL_FLIP_ADDITIVE:
        return make_coupling(c, 0, FG_COUPLING_MASK_CHANNEL_FLIP, 0, rng);
    case L_SPLIT_STANDARD: return fg_split_create(&(fg_split_options){c, 1, 0, 0.0f});
    /* A floor of 1 puts the perturbed logs (about +-0.3) on the softplus's
     * bend, where its derivative is far from 0 and 1. */
    case L_SPLIT_FLOOR: return fg_split_create(&(fg_split_options){c, 0, 0, 1.0f});
    }
    return NULL;
}

/* f at x, flattened: z, then the split-off latents in order. Returns the
 * count; *logdet gets sample 0's log-det. Runs without a tape. */
static size_t eval_flat(fg_flow *f, fg_graph *g, const float *x, const fg_flow_shape *in,
                        float *out, double *logdet)
{
    fg_graph_reset(g);
    int was = fg_set_grad_enabled(g, 0);
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    fg_var *ld = NULL;
    fg_var *z = fg_flow_forward(f, g, input_const(g, x, in), &ld, &ctx);
    size_t n = 0;
    fg_var *parts[FG_FLOW_MAX_LATENTS + 1];
    parts[0] = z;
    for (int i = 0; i < ctx.n_latents; i++)
        parts[i + 1] = ctx.latents[i];
    for (int i = 0; i <= ctx.n_latents; i++) {
        size_t m = fg_numel(&parts[i]->t);
        if (out)
            memcpy(out + n, parts[i]->t.data, m * sizeof(float));
        n += m;
    }
    if (logdet)
        *logdet = ld->t.data[0];
    fg_set_grad_enabled(g, was);
    fg_graph_reset(g);
    return n;
}

/* One layer at one input shape, as fg_test_numerical_logdet maps it. */
typedef struct flat_map {
    fg_flow *f;
    fg_graph *g;
    const fg_flow_shape *in;
} flat_map;

static void flat_map_eval(void *ctx, const float *x, float *out, double *logdet)
{
    flat_map *m = ctx;
    eval_flat(m->f, m->g, x, m->in, out, logdet);
}

/* log|det J| of x -> (z, latents), one sample (check_jacobian.h). */
static double numerical_logdet(fg_flow *f, fg_graph *g, const float *x0,
                               const fg_flow_shape *in, double *analytic)
{
    size_t d = shape_numel(in);
    float *x = fg_xmalloc(d * sizeof(float), "test");
    memcpy(x, x0, d * sizeof(float));
    size_t m = eval_flat(f, g, x, in, NULL, NULL);
    ck_assert_msg(m == d, "map is %zu -> %zu, not square", d, m);
    flat_map map = {f, g, in};
    double lad = fg_test_numerical_logdet(x, d, d, d, flat_map_eval, &map, analytic);
    free(x);
    return lad;
}

/* Round trip on x: returns max |x' - x|, *ld_sum gets max |ld_f + ld_i|
 * over samples, *ld_mag the largest |ld_f|. Checks the inverse records
 * nothing on the tape. */
static double round_trip(fg_flow *f, fg_graph *g, const float *x0, const fg_flow_shape *in,
                         double *ld_sum, double *ld_mag)
{
    fg_graph_reset(g);
    fg_set_grad_enabled(g, 1);
    fg_var *x = input_const(g, x0, in);
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    fg_var *ldf = NULL, *ldi = NULL;
    fg_var *z = fg_flow_forward(f, g, x, &ldf, &ctx);
    size_t nodes = fg_graph_nodes(g);
    fg_var *back = fg_flow_inverse(f, g, z, &ldi, &ctx);
    ck_assert_int_eq((int)fg_graph_nodes(g), (int)nodes);
    ck_assert_int_eq(fg_grad_enabled(g), 1);
    ck_assert_int_eq(ctx.n_latents, 0);
    ck_assert_int_eq(ldf->t.ndim, 1);
    ck_assert_int_eq(ldf->t.shape[0], in->dim[0]);
    double err = max_abs_diff(back, x);
    *ld_sum = *ld_mag = 0.0;
    for (int n = 0; n < in->dim[0]; n++) {
        *ld_sum = fmax(*ld_sum, fabs((double)ldf->t.data[n] + ldi->t.data[n]));
        *ld_mag = fmax(*ld_mag, fabs(ldf->t.data[n]));
    }
    fg_graph_reset(g);
    return err;
}

/* ---------------------------------------------------------------- round trip */

START_TEST(test_round_trip)
{
    fg_rng rng;
    fg_rng_seed(&rng, 11);
    fg_graph *g = fg_graph_create();
    fg_flow_shape in = fg_flow_shape4(2, 4, 8, 8);
    float *x = random_buffer(&rng, shape_numel(&in), 1.0f);
    for (int l = 0; l < N_LAYERS; l++) {
        fg_flow *f = make_layer(l, 4, &rng);
        ck_assert_ptr_nonnull(f);
        fg_flow_shape out;
        ck_assert_int_eq(fg_flow_out_shape(f, &in, &out), FG_OK);
        perturb(f, &rng, 0.2f);
        double ld_sum, ld_mag;
        double err = round_trip(f, g, x, &in, &ld_sum, &ld_mag);
        printf("flows: %-18s round trip max|x'-x| = %.2e, max|ld_fwd + ld_inv| = %.2e "
               "(|ld_fwd| up to %.3g)\n", LAYER_NAMES[l], err, ld_sum, ld_mag);
        fflush(stdout);
        ck_assert_msg(err < 1e-4, "%s: round trip error %g", LAYER_NAMES[l], err);
        ck_assert_msg(ld_sum <= 1e-5 * fmax(1.0, ld_mag), "%s: log-dets do not cancel: %g",
                      LAYER_NAMES[l], ld_sum);
        /* Layers that change volume must report it: a zero log-det here
         * would mean the check above proved nothing. */
        int volume = l == L_ACTNORM || l == L_INVCONV || l == L_INVCONV_LU ||
                     l == L_AFFINE || l == L_SEQUENCE || l == L_CHECKER_SIGMOID ||
                     l == L_CHECKER_FLIP_TANH || l == L_CHANNEL_FLIP_TANH;
        if (volume)
            ck_assert_msg(ld_mag > 1e-2, "%s: log-det %g is suspiciously small",
                          LAYER_NAMES[l], ld_mag);
        else
            ck_assert_msg(ld_mag == 0.0, "%s: volume-preserving layer has log-det %g",
                          LAYER_NAMES[l], ld_mag);
        fg_flow_destroy(f);
    }
    free(x);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- Jacobian */

START_TEST(test_logdet_vs_jacobian)
{
    fg_rng rng;
    fg_rng_seed(&rng, 12);
    fg_graph *g = fg_graph_create();
    fg_flow_shape in = fg_flow_shape4(1, 4, 4, 4);
    float *x = random_buffer(&rng, shape_numel(&in), 1.0f);
    for (int l = 0; l < N_LAYERS; l++) {
        fg_flow *f = make_layer(l, 4, &rng);
        perturb(f, &rng, 0.2f);
        double analytic;
        double numeric = numerical_logdet(f, g, x, &in, &analytic);
        double diff = fabs(analytic - numeric);
        printf("flows: %-18s log-det analytic %+.6f numerical %+.6f |diff| = %.2e\n",
               LAYER_NAMES[l], analytic, numeric, diff);
        fflush(stdout);
        ck_assert_msg(diff < 2e-4, "%s: analytic %g vs numerical %g", LAYER_NAMES[l],
                      analytic, numeric);
        fg_flow_destroy(f);
    }
    free(x);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- gradients */

typedef struct nll_ctx {
    fg_flow *f;
    const float *x;
    fg_flow_shape in;
} nll_ctx;

/* Mean over samples of -(log N(z; 0, I) + log p(split-offs) + logdet). */
static fg_var *mean_nll(fg_graph *g, void *vctx)
{
    nll_ctx *c = vctx;
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    fg_var *ld = NULL;
    fg_var *z = fg_flow_forward(c->f, g, input_const(g, c->x, &c->in), &ld, &ctx);
    fg_var *zero = fg_const(g, z->t.ndim, z->t.shape);
    fg_var *lp = fg_add(g, fg_gaussian_logp(g, z, zero, zero), ld);
    if (ctx.logp)
        lp = fg_add(g, lp, ctx.logp);
    return fg_neg(g, fg_mean(g, lp));
}

START_TEST(test_parameter_gradients)
{
    fg_rng rng;
    fg_rng_seed(&rng, 13);
    fg_graph *g = fg_graph_create();
    fg_flow_shape in = fg_flow_shape4(2, 4, 4, 4);
    float *x = random_buffer(&rng, shape_numel(&in), 1.0f);
    for (int l = 0; l < N_LAYERS; l++) {
        fg_flow *f = make_layer(l, 4, &rng);
        perturb(f, &rng, 0.1f);
        collect_ctx *c = calloc(1, sizeof *c);
        fg_flow_visit(f, NULL, collect_visitor, c);
        if (c->n_params == 0) {
            free(c);
            fg_flow_destroy(f);
            continue;
        }
        nll_ctx nc = {f, x, in};
        fg_gradcheck_result res;
        int ok = fg_gradcheck(g, mean_nll, &nc, c->params, c->n_params, 1e-2, 2e-3, 1e-2,
                              &res);
        printf("flows: %-18s gradcheck %d elements, max abs err %.2e, max rel err %.2e\n",
               LAYER_NAMES[l], res.n_checked, res.max_abs_err, res.max_rel_err);
        fflush(stdout);
        ck_assert_msg(ok, "%s: %d of %d gradient elements fail (worst %s[%d])",
                      LAYER_NAMES[l], res.n_failed, res.n_checked,
                      res.worst_leaf >= 0 ? c->param_names[res.worst_leaf] : "?",
                      res.worst_index);
        free(c);
        fg_flow_destroy(f);
    }
    free(x);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- actnorm */

static void channel_moments(const fg_var *y, int ch, double *mean, double *var)
{
    int n = y->t.shape[0], c = y->t.shape[1], hw = y->t.shape[2] * y->t.shape[3];
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < hw; k++)
            s += y->t.data[((size_t)i * c + ch) * hw + k];
    *mean = s / ((double)n * hw);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < hw; k++) {
            double d = y->t.data[((size_t)i * c + ch) * hw + k] - *mean;
            s2 += d * d;
        }
    *var = s2 / ((double)n * hw);
}

/* Copies state from src into dst by name, through the visitors only (what
 * a checkpoint does). */
static void copy_state(fg_flow *dst, fg_flow *src)
{
    collect_ctx *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    fg_flow_visit(src, NULL, collect_visitor, a);
    fg_flow_visit(dst, NULL, collect_visitor, b);
    ck_assert_int_eq(a->n, b->n);
    for (int i = 0; i < b->n; i++) {
        int found = 0;
        for (int j = 0; j < a->n && !found; j++)
            if (strcmp(a->names[j], b->names[i]) == 0) {
                ck_assert_int_eq(a->kinds[j], b->kinds[i]);
                fg_tensor_copy(&b->vars[i]->t, &a->vars[j]->t);
                found = 1;
            }
        ck_assert_msg(found, "no %s in the source", b->names[i]);
    }
    free(a), free(b);
}

START_TEST(test_actnorm_init_and_flag)
{
    fg_rng rng;
    fg_rng_seed(&rng, 14);
    fg_graph *g = fg_graph_create();
    fg_flow_shape in = fg_flow_shape4(4, 3, 5, 5);
    size_t n = shape_numel(&in);
    float *x = random_buffer(&rng, n, 2.5f);
    for (size_t i = 0; i < n; i++)   /* per-channel offsets 3, 4, 5 */
        x[i] += 3.0f + (float)((i / 25) % 3);
    fg_flow *an = fg_actnorm_create(&(fg_actnorm_options){3, 0.0f});
    ck_assert(!fg_actnorm_is_initialized(an));

    /* No tape, no init: eval mode leaves a fresh actnorm as the identity. */
    fg_set_grad_enabled(g, 0);
    fg_var *y = fg_flow_forward(an, g, input_const(g, x, &in), NULL, NULL);
    ck_assert(!fg_actnorm_is_initialized(an));
    ck_assert_double_eq(max_abs_diff(y, input_const(g, x, &in)), 0.0);

    fg_set_grad_enabled(g, 1);
    fg_var *ld = NULL;
    y = fg_flow_forward(an, g, input_const(g, x, &in), &ld, NULL);
    ck_assert(fg_actnorm_is_initialized(an));
    for (int ch = 0; ch < 3; ch++) {
        double mean, var;
        channel_moments(y, ch, &mean, &var);
        ck_assert_msg(fabs(mean) < 1e-4 && fabs(var - 1.0) < 1e-4,
                      "channel %d: mean %g var %g", ch, mean, var);
    }
    /* logdet = H W sum(logs) = -H W sum log(std + 1e-6) for every sample */
    fg_var *xin = input_const(g, x, &in);
    double want = 0.0;
    for (int ch = 0; ch < 3; ch++) {
        double mean, var;
        channel_moments(xin, ch, &mean, &var);
        want -= 25.0 * log(sqrt(var) + 1e-6);
    }
    ck_assert_float_eq(ld->t.data[0], ld->t.data[3]);
    ck_assert_double_eq_tol(ld->t.data[0], want, 1e-4 * fabs(want));

    /* The trained values stay: a second batch does not re-initialize. */
    collect_ctx *c = calloc(1, sizeof *c);
    fg_flow_visit(an, NULL, collect_visitor, c);
    ck_assert_str_eq(c->names[0], "actnorm.bias");
    ck_assert_str_eq(c->names[1], "actnorm.logs");
    ck_assert_str_eq(c->names[2], "actnorm.initialized");
    ck_assert_int_eq(c->kinds[2], FG_BUFFER);
    float bias0 = c->vars[0]->t.data[0];
    float *x2 = random_buffer(&rng, n, 0.1f);
    fg_graph_reset(g);
    fg_flow_forward(an, g, input_const(g, x2, &in), NULL, NULL);
    ck_assert_float_eq(c->vars[0]->t.data[0], bias0);

    /* Save/load through the visitor: the flag travels with the values, so
     * the loaded layer computes the same map and never re-initializes. */
    fg_flow *loaded = fg_actnorm_create(&(fg_actnorm_options){3, 1.0f});
    copy_state(loaded, an);
    ck_assert(fg_actnorm_is_initialized(loaded));
    fg_graph_reset(g);
    fg_var *ya = fg_flow_forward(an, g, input_const(g, x2, &in), NULL, NULL);
    fg_var *yb = fg_flow_forward(loaded, g, input_const(g, x2, &in), NULL, NULL);
    ck_assert_double_eq(max_abs_diff(ya, yb), 0.0);

    /* Re-arming, then a forward in training, re-initializes on that batch. */
    fg_flow_rearm_actnorm(loaded);
    ck_assert(!fg_actnorm_is_initialized(loaded));
    fg_graph_reset(g);
    yb = fg_flow_forward(loaded, g, input_const(g, x2, &in), NULL, NULL);
    double mean, var;
    channel_moments(yb, 1, &mean, &var);
    ck_assert(fabs(mean) < 1e-4 && fabs(var - 1.0) < 1e-4);

    /* Forced init on a given batch, with a scale option. */
    fg_flow *scaled = fg_actnorm_create(&(fg_actnorm_options){3, 2.0f});
    fg_tensor xt = fg_tensor_wrap(x, in.ndim, in.dim);
    fg_actnorm_initialize(scaled, &xt);
    fg_graph_reset(g);
    fg_set_grad_enabled(g, 0);
    yb = fg_flow_forward(scaled, g, input_const(g, x, &in), NULL, NULL);
    channel_moments(yb, 2, &mean, &var);
    ck_assert(fabs(mean) < 1e-4 && fabs(var - 4.0) < 4e-4);

    free(c), free(x), free(x2);
    fg_flow_destroy(an);
    fg_flow_destroy(loaded);
    fg_flow_destroy(scaled);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- invconv */

START_TEST(test_invconv_lu_matches_plain)
{
    fg_rng rng;
    fg_rng_seed(&rng, 15);
    fg_graph *g = fg_graph_create();
    const int c = 5;
    double w[25], noise[25], back[25];
    fg_random_orthogonal(c, &rng, w);
    /* Off orthogonal, so log|det W| is not 0 and the check has teeth. */
    fg_rng_normal_double(&rng, noise, 25);
    for (int i = 0; i < 25; i++)
        w[i] += 0.3 * noise[i];
    fg_flow *plain = fg_invconv_create(&(fg_invconv_options){c, 0, w, NULL});
    fg_flow *lu = fg_invconv_create(&(fg_invconv_options){c, 1, w, NULL});
    ck_assert_ptr_nonnull(plain);
    ck_assert_ptr_nonnull(lu);
    fg_invconv_weight(lu, back);
    for (int i = 0; i < 25; i++)
        ck_assert_double_eq_tol(back[i], w[i], 1e-6);

    fg_flow_shape in = fg_flow_shape4(2, c, 3, 4);
    float *x = random_buffer(&rng, shape_numel(&in), 1.0f);
    fg_var *lda = NULL, *ldb = NULL;
    fg_var *za = fg_flow_forward(plain, g, input_const(g, x, &in), &lda, NULL);
    fg_var *zb = fg_flow_forward(lu, g, input_const(g, x, &in), &ldb, NULL);
    double lad;
    int sign;
    fg_mat_slogdet(c, w, &lad, &sign);
    ck_assert(fabs(lad) > 0.05);
    ck_assert_double_le(max_abs_diff(za, zb), 1e-5);
    ck_assert_double_eq_tol(lda->t.data[1], 12.0 * lad, 1e-4);
    ck_assert_double_eq_tol(ldb->t.data[1], 12.0 * lad, 1e-4);
    /* z = W x per pixel, by a naive loop */
    for (int o = 0; o < c; o++) {
        double acc = 0.0;
        for (int i = 0; i < c; i++)
            acc += w[o * c + i] * x[(size_t)(1 * c + i) * 12 + 7];
        ck_assert_double_eq_tol(za->t.data[(size_t)(1 * c + o) * 12 + 7], acc, 1e-5);
    }

    /* After training moves the LU factors, a plain layer built from the
     * composed W still agrees. */
    perturb(lu, &rng, 0.2f);
    fg_invconv_weight(lu, back);
    fg_flow *plain2 = fg_invconv_create(&(fg_invconv_options){c, 0, back, NULL});
    fg_graph_reset(g);
    lda = ldb = NULL;
    za = fg_flow_forward(plain2, g, input_const(g, x, &in), &lda, NULL);
    zb = fg_flow_forward(lu, g, input_const(g, x, &in), &ldb, NULL);
    ck_assert_double_le(max_abs_diff(za, zb), 1e-5);
    ck_assert_double_eq_tol(lda->t.data[0], ldb->t.data[0], 1e-4);

    free(x);
    fg_flow_destroy(plain);
    fg_flow_destroy(plain2);
    fg_flow_destroy(lu);
    fg_graph_destroy(g);
}
END_TEST

/* Training through the inverse: fg_flow_inverse_grad records on the tape.
 * For actnorm x = z e^-logs - bias, so d sum(x) / d bias_c = -N H W and
 * d sum(x) / d logs_c = -sum over channel c of z e^-logs. */
START_TEST(test_inverse_with_gradients)
{
    fg_rng rng;
    fg_rng_seed(&rng, 24);
    fg_graph *g = fg_graph_create();
    fg_flow *an = make_layer(L_ACTNORM, 3, &rng);
    perturb(an, &rng, 0.3f);
    collect_ctx *c = calloc(1, sizeof *c);
    fg_flow_visit(an, NULL, collect_visitor, c);
    fg_var *bias = c->vars[0], *logs = c->vars[1];
    fg_flow_shape in = fg_flow_shape4(2, 3, 2, 5);
    float *z = random_buffer(&rng, shape_numel(&in), 1.0f);
    fg_zero_grad(bias);
    fg_zero_grad(logs);
    fg_var *x = fg_flow_inverse_grad(an, g, input_const(g, z, &in), NULL, NULL);
    ck_assert_int_gt((int)fg_graph_nodes(g), 0);
    fg_backward(g, fg_sum(g, x));
    for (int ch = 0; ch < 3; ch++) {
        double want = 0.0;
        for (int n = 0; n < 2; n++)
            for (int k = 0; k < 10; k++)
                want -= z[(n * 3 + ch) * 10 + k] * exp(-logs->t.data[ch]);
        ck_assert_double_eq_tol(bias->grad[ch], -20.0, 1e-5);
        ck_assert_double_eq_tol(logs->grad[ch], want, 1e-4 * (1.0 + fabs(want)));
    }
    free(c), free(z);
    fg_flow_destroy(an);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- fresh layers */

START_TEST(test_fresh_couplings)
{
    fg_rng rng;
    fg_rng_seed(&rng, 16);
    fg_graph *g = fg_graph_create();
    fg_flow_shape in = fg_flow_shape4(2, 6, 4, 4);
    float *x = random_buffer(&rng, shape_numel(&in), 1.0f);
    fg_flow *add = make_layer(L_ADDITIVE, 6, &rng);
    fg_flow *aff = make_layer(L_AFFINE, 6, &rng);
    /* Additive: exactly the identity (the zero conv outputs exact zeros). */
    fg_var *ld = NULL;
    fg_var *xin = input_const(g, x, &in);
    fg_var *z = fg_flow_forward(add, g, xin, &ld, NULL);
    ck_assert_double_eq(max_abs_diff(z, xin), 0.0);
    ck_assert_float_eq(ld->t.data[0], 0.0f);
    /* Affine: x1 unchanged, x2 scaled by sigmoid(2) ~ 0.881, not 1. */
    ld = NULL;
    z = fg_flow_forward(aff, g, xin, &ld, NULL);
    const double s = 1.0 / (1.0 + exp(-2.0));
    for (size_t i = 0; i < shape_numel(&in); i++) {
        int ch = (int)(i / 16) % 6;
        double want = ch < 3 ? x[i] : x[i] * s;
        ck_assert_double_eq_tol(z->t.data[i], want, 1e-6);
    }
    ck_assert_double_eq_tol(ld->t.data[1], 3 * 16 * log(s), 1e-4);
    free(x);
    fg_flow_destroy(add);
    fg_flow_destroy(aff);
    fg_graph_destroy(g);
}
END_TEST

START_TEST(test_squeeze_and_permute_order)
{
    fg_rng rng;
    fg_rng_seed(&rng, 17);
    fg_graph *g = fg_graph_create();
    fg_flow_shape in = fg_flow_shape4(2, 3, 4, 6);
    float *x = random_buffer(&rng, shape_numel(&in), 1.0f);
    fg_flow *sq = fg_squeeze_create();
    fg_var *z = fg_flow_forward(sq, g, input_const(g, x, &in), NULL, NULL);
    ck_assert_int_eq(z->t.shape[1], 12);
    ck_assert_int_eq(z->t.shape[2], 2);
    ck_assert_int_eq(z->t.shape[3], 3);
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++)
                    for (int h = 0; h < 2; h++)
                        for (int w = 0; w < 3; w++) {
                            float want = x[((n * 3 + c) * 4 + 2 * h + i) * 6 + 2 * w + j];
                            float got = z->t.data[((n * 12 + c * 4 + i * 2 + j) * 2 + h) * 3 + w];
                            ck_assert_float_eq(got, want);
                        }
    fg_flow *sh = make_layer(L_SHUFFLE, 3, &rng);
    fg_flow *rev = make_layer(L_REVERSE, 3, &rng);
    collect_ctx *c = calloc(1, sizeof *c);
    fg_flow_visit(sh, NULL, collect_visitor, c);
    ck_assert_int_eq(c->n, 1);
    ck_assert_str_eq(c->names[0], "permute.perm");
    ck_assert_int_eq(c->kinds[0], FG_BUFFER);
    fg_var *zs = fg_flow_forward(sh, g, input_const(g, x, &in), NULL, NULL);
    fg_var *zr = fg_flow_forward(rev, g, input_const(g, x, &in), NULL, NULL);
    for (int n = 0; n < 2; n++)
        for (int ch = 0; ch < 3; ch++)
            for (int k = 0; k < 24; k++) {
                int p = (int)c->vars[0]->t.data[ch];
                ck_assert_float_eq(zs->t.data[(n * 3 + ch) * 24 + k], x[(n * 3 + p) * 24 + k]);
                ck_assert_float_eq(zr->t.data[(n * 3 + ch) * 24 + k],
                                   x[(n * 3 + 2 - ch) * 24 + k]);
            }
    free(c), free(x);
    fg_flow_destroy(sq);
    fg_flow_destroy(sh);
    fg_flow_destroy(rev);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- split, prior */

static double naive_gauss(const float *z, const float *mean, const float *logs, size_t n)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = ((double)z[i] - mean[i]) / exp(logs[i]);
        acc += -0.5 * d * d - logs[i] - 0.5 * LOG_2PI;
    }
    return acc;
}

START_TEST(test_split_density_and_draws)
{
    fg_rng rng;
    fg_rng_seed(&rng, 18);
    fg_graph *g = fg_graph_create();
    fg_flow_shape in = fg_flow_shape4(2, 4, 4, 4);
    float *x = random_buffer(&rng, shape_numel(&in), 1.0f);
    fg_flow *sp = make_layer(L_SPLIT, 4, &rng);
    perturb(sp, &rng, 0.2f);
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    fg_var *z1 = fg_flow_forward(sp, g, input_const(g, x, &in), NULL, &ctx);
    ck_assert_int_eq(ctx.n_latents, 1);
    fg_var *z2 = ctx.latents[0];
    fg_var *mean, *logs;
    fg_split_prior_params(sp, g, z1, &mean, &logs);
    /* z1 = x[:, :2], z2 = x[:, 2:], log p(z2 | z1) per sample */
    for (int n = 0; n < 2; n++) {
        ck_assert_float_eq(z1->t.data[n * 32 + 5], x[n * 64 + 5]);
        ck_assert_float_eq(z2->t.data[n * 32 + 5], x[n * 64 + 32 + 5]);
        double want = naive_gauss(z2->t.data + n * 32, mean->t.data + n * 32,
                                  logs->t.data + n * 32, 32);
        ck_assert_double_eq_tol(ctx.logp->t.data[n], want, 1e-4 * fabs(want));
    }
    /* The split prior is the zero conv interleaved: a naive 3x3 conv. */
    collect_ctx *c = calloc(1, sizeof *c);
    fg_flow_visit(sp, NULL, collect_visitor, c);
    ck_assert_str_eq(c->names[0], "split.conv.weight");
    ck_assert_str_eq(c->names[1], "split.conv.bias");
    ck_assert_str_eq(c->names[2], "split.conv.logs");
    const float *W = c->vars[0]->t.data, *B = c->vars[1]->t.data, *L = c->vars[2]->t.data;
    for (int o = 0; o < 4; o++) {
        int h = 1, w = 2, n = 1;
        double acc = B[o];
        for (int i = 0; i < 2; i++)
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int yy = h + dy, xx = w + dx;
                    if (yy < 0 || yy >= 4 || xx < 0 || xx >= 4)
                        continue;
                    acc += W[((o * 2 + i) * 3 + dy + 1) * 3 + dx + 1] *
                           x[((n * 4 + i) * 4 + yy) * 4 + xx];
                }
        acc *= exp(3.0 * L[o]);
        const fg_var *half = o % 2 ? logs : mean;
        ck_assert_double_eq_tol(half->t.data[((n * 2 + o / 2) * 4 + h) * 4 + w], acc, 1e-5);
    }
    /* Inverse without z2 at T = 0 puts the mean there. */
    fg_flow_ctx empty;
    fg_flow_ctx_init(&empty);
    fg_var *xb = fg_flow_inverse(sp, g, z1, NULL, &empty);
    fg_var *mean_part = fg_channel_slice(g, xb, 2, 4);
    ck_assert_double_le(max_abs_diff(mean_part, mean), 1e-6);
    free(c), free(x);
    fg_flow_destroy(sp);
    fg_graph_destroy(g);
}
END_TEST

static void expect_error(int rc, const char *a, const char *b);

/* logs_floor F: the unbounded prior's logs u become softplus(u + F) - F,
 * computed here in double from the unbounded split with the same weights;
 * above -F always, u itself far above it, and finite where u is -40. */
START_TEST(test_split_logs_floor)
{
    fg_rng rng;
    fg_rng_seed(&rng, 31);
    fg_graph *g = fg_graph_create();
    fg_flow_shape in = fg_flow_shape4(2, 4, 4, 4);
    float *x = random_buffer(&rng, shape_numel(&in), 1.0f);
    const float F = 2.0f;
    fg_flow *free_prior = fg_split_create(&(fg_split_options){4, 0, 0, 0.0f});
    fg_flow *floored = fg_split_create(&(fg_split_options){4, 0, 0, F});
    perturb(free_prior, &rng, 0.5f);
    collect_ctx *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    fg_flow_visit(free_prior, NULL, collect_visitor, a);
    fg_flow_visit(floored, NULL, collect_visitor, b);
    ck_assert_int_eq(a->n, b->n);
    for (int i = 0; i < a->n; i++)
        memcpy(b->vars[i]->t.data, a->vars[i]->t.data, fg_numel(&a->vars[i]->t) * sizeof(float));
    /* The conv's per-channel logs scale (x3 in the exponent) sends one
     * channel's raw logs to about -40: far below the floor. */
    float *scale = a->vars[2]->t.data;
    scale[1] = scale[3] = 0.0f;
    b->vars[2]->t.data[1] = b->vars[2]->t.data[3] = 0.0f;
    float *bias_a = a->vars[1]->t.data, *bias_b = b->vars[1]->t.data;
    bias_a[3] = bias_b[3] = -40.0f;
    fg_var *z1 = fg_channel_slice(g, input_const(g, x, &in), 0, 2);
    fg_var *m0, *u, *m1, *l1;
    fg_split_prior_params(free_prior, g, z1, &m0, &u);
    fg_split_prior_params(floored, g, z1, &m1, &l1);
    ck_assert_double_eq(max_abs_diff(m0, m1), 0.0);
    size_t n = fg_numel(&u->t);
    int far_below = 0;
    for (size_t i = 0; i < n; i++) {
        double ud = u->t.data[i], want = log1p(exp(ud + F)) - F;
        ck_assert_msg(fabs(l1->t.data[i] - want) <= 1e-6 * (1 + fabs(want)),
                      "logs %zu: %g, expected %g from %g", i, (double)l1->t.data[i], want, ud);
        ck_assert(l1->t.data[i] >= -F);
        far_below += ud < -30;
    }
    ck_assert_int_eq(far_below, (int)n / 2);   /* the second channel, both samples */
    /* The density uses the floored logs, and stays finite where the free one
     * would weigh each miss by e^80. */
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    fg_flow_forward(floored, g, input_const(g, x, &in), NULL, &ctx);
    for (int s = 0; s < 2; s++) {
        double want = naive_gauss(ctx.latents[0]->t.data + s * 32, m1->t.data + s * 32,
                                  l1->t.data + s * 32, 32);
        ck_assert(isfinite(ctx.logp->t.data[s]));
        ck_assert_double_eq_tol(ctx.logp->t.data[s], want, 1e-4 * fabs(want));
    }
    /* Draws take the same logs: at T = 0 the mean; at T = 1 from the seed,
     * mean + e^logs eps with the same eps as a draw by hand. */
    fg_flow_ctx_init(&ctx);
    fg_var *xb = fg_flow_inverse(floored, g, z1, NULL, &ctx);
    ck_assert_double_eq(max_abs_diff(fg_channel_slice(g, xb, 2, 4), m1), 0.0);
    fg_rng draw, same;
    fg_rng_seed(&draw, 5);
    fg_rng_seed(&same, 5);
    fg_flow_ctx_init(&ctx);
    ctx.rng = &draw;
    ctx.temperature = 1.0f;
    xb = fg_flow_inverse(floored, g, z1, NULL, &ctx);
    fg_var *z2 = fg_channel_slice(g, xb, 2, 4);
    float *eps = malloc(n * sizeof *eps);
    fg_rng_normal(&same, eps, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_double_eq_tol(z2->t.data[i],
                                m1->t.data[i] + exp(l1->t.data[i]) * eps[i], 1e-5);
    free(eps);
    /* A floor that is not a non-negative number is refused. */
    ck_assert_ptr_null(fg_split_create(&(fg_split_options){4, 0, 0, -1.0f}));
    expect_error(FG_ERR, "split", "logs_floor");
    ck_assert_ptr_null(fg_split_create(&(fg_split_options){4, 0, 0, NAN}));
    expect_error(FG_ERR, "split", "logs_floor");
    free(a), free(b), free(x);
    fg_flow_destroy(free_prior);
    fg_flow_destroy(floored);
    fg_graph_destroy(g);
}
END_TEST

/* The standard split: log N(z2; 0, I) summed by hand, no state, and draws
 * at T = 0 put zeros in z2. */
START_TEST(test_split_standard)
{
    fg_rng rng;
    fg_rng_seed(&rng, 24);
    fg_graph *g = fg_graph_create();
    fg_flow_shape in = fg_flow_shape4(2, 4, 4, 4);
    float *x = random_buffer(&rng, shape_numel(&in), 1.0f);
    fg_flow *sp = make_layer(L_SPLIT_STANDARD, 4, &rng);
    collect_ctx *c = calloc(1, sizeof *c);
    fg_flow_visit(sp, NULL, collect_visitor, c);
    ck_assert_int_eq(c->n, 0);
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    fg_var *z1 = fg_flow_forward(sp, g, input_const(g, x, &in), NULL, &ctx);
    ck_assert_int_eq(z1->t.shape[1], 2);
    for (int n = 0; n < 2; n++) {
        double want = 0.0;
        for (int i = 0; i < 32; i++) {
            double v = x[n * 64 + 32 + i];
            want += -0.5 * v * v - 0.5 * LOG_2PI;
        }
        ck_assert_double_eq_tol(ctx.logp->t.data[n], want, 1e-5 * fabs(want));
    }
    fg_flow_ctx empty;
    fg_flow_ctx_init(&empty);
    fg_var *xb = fg_flow_inverse(sp, g, z1, NULL, &empty);
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < 32; i++) {
            ck_assert_float_eq(xb->t.data[n * 64 + i], x[n * 64 + i]);
            ck_assert_float_eq(xb->t.data[n * 64 + 32 + i], 0.0f);
        }
    free(c), free(x);
    fg_flow_destroy(sp);
    fg_graph_destroy(g);
}
END_TEST

/* A checkerboard coupling leaves the conditioning squares bit for bit,
 * changes the others, and a fresh tanh coupling is the identity. */
START_TEST(test_checkerboard_masks)
{
    fg_rng rng;
    fg_rng_seed(&rng, 25);
    fg_graph *g = fg_graph_create();
    fg_flow_shape in = fg_flow_shape4(2, 3, 5, 4);
    float *x = random_buffer(&rng, shape_numel(&in), 1.0f);
    for (int flip = 0; flip <= 1; flip++) {
        fg_flow *f = make_coupling(3, 1, flip ? FG_COUPLING_MASK_CHECKERBOARD_FLIP
                                              : FG_COUPLING_MASK_CHECKERBOARD,
                                   FG_COUPLING_SCALE_TANH, &rng);
        fg_var *xin = input_const(g, x, &in);
        fg_var *z = fg_flow_forward(f, g, xin, NULL, NULL);
        ck_assert_double_eq(max_abs_diff(z, xin), 0.0);
        perturb(f, &rng, 0.2f);
        z = fg_flow_forward(f, g, xin, NULL, NULL);
        int changed = 0;
        for (int p = 0; p < 6; p++)
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 4; j++) {
                    int k = (p * 5 + i) * 4 + j;
                    if ((i + j) % 2 == flip)
                        ck_assert_float_eq(z->t.data[k], x[k]);
                    else
                        changed += fabsf(z->t.data[k] - x[k]) > 1e-3f;
                }
        ck_assert_int_eq(changed, 60);
        fg_flow_destroy(f);
        fg_graph_reset(g);
    }
    free(x);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- vectors */

enum { V_FLATTEN, V_DENSE_ADDITIVE, V_DENSE_SIGMOID_FLIP, V_DENSE_TANH, V_SCALE_DIAG,
       N_VECTOR };
static const char *VECTOR_NAMES[N_VECTOR] = {
    "flatten", "dense_additive", "dense_sigmoid_flip", "dense_tanh", "scale_diag"};

/* flatten (C, H, W) followed by the vector layer under test, so every case
 * maps an image batch to vectors and back. */
static fg_flow *make_vector(int which, int c, int h, int w, fg_rng *rng)
{
    int d = c * h * w;
    fg_flow *layers[2];
    layers[0] = fg_flatten_create(&(fg_flatten_options){c, h, w});
    fg_dense_coupling_options o = {d, HIDDEN, 2, 0, FG_COUPLING_MASK_CHANNEL,
                                   FG_COUPLING_SCALE_SIGMOID, rng, 0, 0.0f, NULL, 0, 0};
    switch (which) {
    case V_FLATTEN: return layers[0];
    case V_DENSE_ADDITIVE: break;
    case V_DENSE_SIGMOID_FLIP:
        o.transform = FG_TRANSFORM_AFFINE;
        o.mask = FG_COUPLING_MASK_CHANNEL_FLIP;
        break;
    case V_DENSE_TANH:
        o.transform = FG_TRANSFORM_AFFINE;
        o.scale = FG_COUPLING_SCALE_TANH;
        break;
    }
    layers[1] = which == V_SCALE_DIAG ? fg_scale_diag_create(d) : fg_dense_coupling_create(&o);
    return fg_sequence_create(layers, 2);
}

/* Round trip, analytic against numerical log-determinant, and parameter
 * gradients against finite differences, of one layer on x (shape in; in1
 * is its first sample, for the numerical Jacobian). */
typedef struct layer_checks {
    double err, ld_sum, ld_mag, analytic, numeric;
    collect_ctx *c; /* the layer's parameters, to free */
    fg_gradcheck_result res;
    int ok;
} layer_checks;

static layer_checks check_layer(fg_flow *f, fg_graph *g, float *x, const fg_flow_shape *in,
                                const fg_flow_shape *in1)
{
    layer_checks k = {.ok = 1};
    k.err = round_trip(f, g, x, in, &k.ld_sum, &k.ld_mag);
    k.numeric = numerical_logdet(f, g, x, in1, &k.analytic);
    k.c = calloc(1, sizeof *k.c);
    fg_flow_visit(f, NULL, collect_visitor, k.c);
    if (k.c->n_params) {
        nll_ctx nc = {f, x, *in};
        k.ok = fg_gradcheck(g, mean_nll, &nc, k.c->params, k.c->n_params, 1e-2, 2e-3, 1e-2,
                            &k.res);
    }
    return k;
}

START_TEST(test_vector_layers)
{
    fg_rng rng;
    fg_rng_seed(&rng, 26);
    fg_graph *g = fg_graph_create();
    fg_flow_shape in2 = fg_flow_shape4(2, 4, 2, 2), in1 = fg_flow_shape4(1, 4, 2, 2);
    float *x = random_buffer(&rng, shape_numel(&in2), 1.0f);
    for (int l = 0; l < N_VECTOR; l++) {
        fg_flow *f = make_vector(l, 4, 2, 2, &rng);
        ck_assert_ptr_nonnull(f);
        fg_flow_shape out;
        ck_assert_int_eq(fg_flow_out_shape(f, &in2, &out), FG_OK);
        ck_assert_int_eq(out.dim[1], 16);
        ck_assert_int_eq(out.dim[2] * out.dim[3], 1);
        /* A fresh additive or tanh coupling and scale_diag are the identity. */
        fg_var *ld = NULL, *xin = input_const(g, x, &in2);
        fg_var *z = fg_flow_forward(f, g, xin, &ld, NULL);
        if (l != V_DENSE_SIGMOID_FLIP) {
            ck_assert_float_eq(fg_k_max_abs_diff(fg_numel(&z->t), z->t.data, xin->t.data), 0.0f);
            ck_assert_float_eq(ld->t.data[0], 0.0f);
        }
        fg_graph_reset(g);
        perturb(f, &rng, 0.2f);
        layer_checks k = check_layer(f, g, x, &in2, &in1);
        double err = k.err, ld_sum = k.ld_sum, ld_mag = k.ld_mag, analytic = k.analytic,
               numeric = k.numeric;
        collect_ctx *c = k.c;
        fg_gradcheck_result res = k.res;
        int ok = k.ok;
        printf("flows: %-18s round trip %.2e, log-det %+.6f vs numerical %+.6f, gradcheck "
               "%d elements max abs err %.2e\n", VECTOR_NAMES[l], err, analytic, numeric,
               res.n_checked, res.max_abs_err);
        fflush(stdout);
        ck_assert_msg(err < 1e-4, "%s: round trip error %g", VECTOR_NAMES[l], err);
        ck_assert_msg(ld_sum <= 1e-5 * fmax(1.0, ld_mag), "%s: log-dets do not cancel",
                      VECTOR_NAMES[l]);
        int volume = l == V_DENSE_SIGMOID_FLIP || l == V_DENSE_TANH || l == V_SCALE_DIAG;
        ck_assert_msg(volume ? ld_mag > 1e-2 : ld_mag == 0.0, "%s: log-det %g",
                      VECTOR_NAMES[l], ld_mag);
        ck_assert_msg(fabs(analytic - numeric) < 2e-4, "%s: analytic %g vs numerical %g",
                      VECTOR_NAMES[l], analytic, numeric);
        ck_assert_msg(ok, "%s: %d of %d gradient elements fail", VECTOR_NAMES[l],
                      res.n_failed, res.n_checked);
        if (l == V_DENSE_TANH) {
            ck_assert_int_eq(c->n_params, 6);
            ck_assert_str_eq(c->param_names[0], "1.dense_coupling.hidden.0.weight");
            ck_assert_str_eq(c->param_names[5], "1.dense_coupling.out.bias");
        }
        free(c);
        fg_flow_destroy(f);
    }
    /* Vector layers refuse images that were not flattened. */
    fg_flow *dc = fg_dense_coupling_create(&(fg_dense_coupling_options){
        4, HIDDEN, 1, 0, FG_COUPLING_MASK_CHANNEL, 0, &rng, 0, 0.0f, NULL, 0, 0});
    fg_flow_shape img = fg_flow_shape4(2, 4, 2, 2), out;
    ck_assert_int_eq(fg_flow_out_shape(dc, &img, &out), FG_ERR);
    ck_assert_ptr_nonnull(strstr(fg_last_error(), "flatten it first"));
    fg_flow_destroy(dc);
    free(x);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- splines and MAF/IAF
 * Spline couplings (conv and dense) and the autoregressive layers. The
 * spline's second derivative jumps at its knots, so a finite difference
 * whose stencil spans a knot is off by about J h (J the jump): the
 * Jacobian and gradient checks use 2 bins and inputs with 1 <= |x| <= 2.6,
 * and parameters moved by 0.02 so that the middle knot stays within 0.75
 * of 0 and no stencil reaches a knot or the bound (at 0.05 the conv
 * coupling's middle knot drifts into the stencils and the log-det misses
 * by 1e-3; the log-dets checked are 0.04 to 2). Round trips use 8 bins,
 * moves of 0.1 and inputs N(0, 2^2), tails included. */
enum { S_CHANNEL, S_CHECKER_FLIP, S_DENSE_FLIP, S_MAF_AFFINE, S_MAF_SPLINE, S_IAF_TANH,
       S_IAF_SPLINE, N_SPLINE_CASES };
static const char *SPLINE_NAMES[N_SPLINE_CASES] = {
    "spline_channel", "spline_checker_flip", "dense_spline_flip", "maf_affine", "maf_spline",
    "iaf_tanh", "iaf_spline"};

/* The layer, and in *in the shape it takes for a batch of n. */
static fg_flow *make_spline_case(int which, int bins, int n, fg_rng *rng, fg_flow_shape *in)
{
    if (which == S_CHANNEL || which == S_CHECKER_FLIP) {
        *in = fg_flow_shape4(n, 4, 4, 4);
        fg_coupling_options o = {4, HIDDEN, FG_TRANSFORM_SPLINE, rng,
                                 which == S_CHANNEL ? FG_COUPLING_MASK_CHANNEL
                                                    : FG_COUPLING_MASK_CHECKERBOARD_FLIP,
                                 0, bins, 3.0f, NULL, 0, 0};
        return fg_coupling_create(&o);
    }
    *in = fg_flow_shape4(n, 4, 2, 2);
    fg_flow *layers[2] = {fg_flatten_create(&(fg_flatten_options){4, 2, 2}), NULL};
    if (which == S_DENSE_FLIP) {
        fg_dense_coupling_options o = {16, HIDDEN, 2, FG_TRANSFORM_SPLINE,
                                       FG_COUPLING_MASK_CHANNEL_FLIP, 0, rng, bins, 3.0f, NULL, 0, 0};
        layers[1] = fg_dense_coupling_create(&o);
    } else {
        int spline = which == S_MAF_SPLINE || which == S_IAF_SPLINE;
        fg_autoregressive_options o = {
            16, HIDDEN, 2, which == S_IAF_TANH || which == S_IAF_SPLINE,
            spline ? FG_TRANSFORM_SPLINE : FG_TRANSFORM_AFFINE,
            which == S_IAF_TANH ? FG_COUPLING_SCALE_TANH : FG_COUPLING_SCALE_SIGMOID,
            bins, 3.0f, rng};
        layers[1] = fg_autoregressive_create(&o);
    }
    ck_assert_ptr_nonnull(layers[1]);
    return fg_sequence_create(layers, 2);
}

/* |x| in [1, 2.6] with random signs: away from the knots of a 2-bin
 * spline whose middle knot is within 0.75 of 0, and from +-3. */
static float *knot_safe_inputs(fg_rng *rng, size_t n)
{
    float *x = fg_xmalloc(n * sizeof *x, "test"), u[2];
    for (size_t i = 0; i < n; i++) {
        fg_rng_uniform(rng, u, 2);
        x[i] = (u[1] < 0.5f ? -1.0f : 1.0f) * (1.0f + 1.6f * u[0]);
    }
    return x;
}

START_TEST(test_spline_and_autoregressive_layers)
{
    fg_rng rng;
    fg_rng_seed(&rng, 31);
    fg_graph *g = fg_graph_create();
    for (int l = 0; l < N_SPLINE_CASES; l++) {
        /* Fresh: the zero output layer makes splines and tanh scales the
         * identity. */
        fg_flow_shape in2, in1;
        fg_flow *f = make_spline_case(l, 8, 2, &rng, &in2);
        ck_assert_ptr_nonnull(f);
        fg_flow_shape out;
        ck_assert_int_eq(fg_flow_out_shape(f, &in2, &out), FG_OK);
        float *x = random_buffer(&rng, shape_numel(&in2), 2.0f);
        if (l != S_MAF_AFFINE) {
            /* Without a tape, so the networks' actnorms keep their
             * identity start (no data-dependent init). */
            int was = fg_set_grad_enabled(g, 0);
            fg_var *ld = NULL, *xin = input_const(g, x, &in2);
            fg_var *z = fg_flow_forward(f, g, xin, &ld, NULL);
            for (size_t i = 0; i < fg_numel(&z->t); i++)
                ck_assert_msg(fabsf(z->t.data[i] - x[i]) <= 1e-6f * fmaxf(1.0f, fabsf(x[i])),
                              "%s: fresh layer moved %g to %g", SPLINE_NAMES[l], x[i],
                              z->t.data[i]);
            ck_assert_msg(fabsf(ld->t.data[0]) < 1e-5f, "%s: fresh log-det %g",
                          SPLINE_NAMES[l], ld->t.data[0]);
            fg_graph_reset(g);
            fg_set_grad_enabled(g, was);
        }
        /* Moves of 0.1 give raw spline parameters of about N(0, 1): at
         * 0.2 the conv network's outputs reach +-5, bins of a thousandth
         * of the range and slopes of 1e-3, where the float rounding of y
         * alone moves the inverse by 1e-4. */
        perturb(f, &rng, 0.1f);
        double ld_sum, ld_mag;
        double err = round_trip(f, g, x, &in2, &ld_sum, &ld_mag);
        fg_flow_destroy(f);
        free(x);

        /* Jacobian and gradients with 2 bins at knot-safe inputs. */
        f = make_spline_case(l, 2, 1, &rng, &in1);
        in2 = in1;
        in2.dim[0] = 2;
        perturb(f, &rng, 0.02f);
        x = knot_safe_inputs(&rng, shape_numel(&in2));
        double analytic, numeric = numerical_logdet(f, g, x, &in1, &analytic);
        collect_ctx *c = calloc(1, sizeof *c);
        fg_flow_visit(f, NULL, collect_visitor, c);
        nll_ctx nc = {f, x, in2};
        fg_gradcheck_result res;
        int ok = fg_gradcheck(g, mean_nll, &nc, c->params, c->n_params, 1e-2, 2e-3, 1e-2, &res);
        printf("flows: %-20s round trip %.2e (log-dets cancel to %.1e of %.3g); log-det "
               "%+.6f vs numerical %+.6f; gradcheck %d elements max abs err %.2e\n",
               SPLINE_NAMES[l], err, ld_sum, ld_mag, analytic, numeric, res.n_checked,
               res.max_abs_err);
        fflush(stdout);
        ck_assert_msg(err < 1e-4, "%s: round trip error %g", SPLINE_NAMES[l], err);
        ck_assert_msg(ld_sum <= 1e-5 * fmax(1.0, ld_mag), "%s: log-dets do not cancel: %g",
                      SPLINE_NAMES[l], ld_sum);
        ck_assert_msg(ld_mag > 1e-2, "%s: log-det %g is suspiciously small", SPLINE_NAMES[l],
                      ld_mag);
        ck_assert_msg(fabs(analytic) > 1e-3, "%s: log-det %g at the Jacobian check is too "
                      "small to prove anything", SPLINE_NAMES[l], analytic);
        ck_assert_msg(fabs(analytic - numeric) < 2e-4, "%s: analytic %g vs numerical %g",
                      SPLINE_NAMES[l], analytic, numeric);
        ck_assert_msg(ok, "%s: %d of %d gradient elements fail (worst %s[%d])",
                      SPLINE_NAMES[l], res.n_failed, res.n_checked,
                      res.worst_leaf >= 0 ? c->param_names[res.worst_leaf] : "?",
                      res.worst_index);
        free(c);
        free(x);
        fg_flow_destroy(f);
    }
    fg_graph_destroy(g);
}
END_TEST

/* The MADE conditioner is autoregressive: output i of a MAF or IAF depends
 * on inputs 0..i only (the numerical Jacobian is lower triangular, with
 * exact zeros above the diagonal), and does depend on earlier ones. */
START_TEST(test_autoregressive_jacobian_is_triangular)
{
    fg_rng rng;
    fg_rng_seed(&rng, 32);
    fg_graph *g = fg_graph_create();
    for (int l = S_MAF_AFFINE; l < N_SPLINE_CASES; l++) {
        fg_flow_shape in;
        fg_flow *f = make_spline_case(l, 8, 1, &rng, &in);
        perturb(f, &rng, 0.3f);
        const int D = 16;
        float *x = random_buffer(&rng, D, 1.0f), y0[16], y[16];
        eval_flat(f, g, x, &in, y0, NULL);
        int upper = 0, diagonal = 0, lower = 0;
        for (int j = 0; j < D; j++) {
            float saved = x[j];
            x[j] = saved + 0.25f;
            eval_flat(f, g, x, &in, y, NULL);
            x[j] = saved;
            for (int i = 0; i < D; i++) {
                int moved = y[i] != y0[i];
                if (j > i)
                    upper += moved;
                else if (j == i)
                    diagonal += moved;
                else
                    lower += moved;
            }
        }
        printf("flows: %-20s Jacobian pattern: %d of %d above the diagonal, %d of %d on it, "
               "%d of %d below it are non-zero\n", SPLINE_NAMES[l], upper, D * (D - 1) / 2,
               diagonal, D, lower, D * (D - 1) / 2);
        ck_assert_msg(upper == 0, "%s: %d outputs depend on later inputs", SPLINE_NAMES[l],
                      upper);
        ck_assert_int_eq(diagonal, D);
        ck_assert_msg(lower > D * (D - 1) / 4, "%s: only %d of the earlier inputs reach later "
                      "outputs", SPLINE_NAMES[l], lower);
        free(x);
        fg_flow_destroy(f);
    }
    fg_graph_destroy(g);
}
END_TEST

/* Far inputs go through the identity tails; non-finite ones come out NaN
 * with a message naming the layer, and never stop the program. */
START_TEST(test_spline_far_and_nonfinite_inputs)
{
    fg_rng rng;
    fg_rng_seed(&rng, 33);
    fg_graph *g = fg_graph_create();
    for (int l = 0; l < N_SPLINE_CASES; l++) {
        if (l == S_MAF_AFFINE || l == S_IAF_TANH)
            continue;
        fg_flow_shape in;
        fg_flow *f = make_spline_case(l, 8, 2, &rng, &in);
        perturb(f, &rng, 0.2f);
        size_t n = shape_numel(&in);
        float *x = fg_xmalloc(n * sizeof *x, "test");
        for (size_t i = 0; i < n; i++)
            x[i] = i % 3 ? 1e6f : -1e6f;
        fg_var *ld = NULL, *xin = input_const(g, x, &in);
        fg_var *z = fg_flow_forward(f, g, xin, &ld, NULL);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(z->t.data[i] == x[i], "%s: far input %g came out %g",
                          SPLINE_NAMES[l], x[i], z->t.data[i]);
        ck_assert(ld->t.data[0] == 0.0f && ld->t.data[1] == 0.0f);
        fg_var *ldi = NULL;
        fg_var *back = fg_flow_inverse(f, g, z, &ldi, NULL);
        ck_assert(fg_k_max_abs_diff(n, back->t.data, x) == 0.0);
        fg_graph_reset(g);
        /* A NaN in the second sample. */
        for (size_t i = 0; i < n; i++)
            x[i] = 0.1f * (float)(i % 7);
        x[n / 2 + 5] = NAN;
        fg_clear_error();
        ld = NULL;
        z = fg_flow_forward(f, g, input_const(g, x, &in), &ld, NULL);
        ck_assert_msg(!fg_k_all_finite(n, z->t.data), "%s: NaN vanished", SPLINE_NAMES[l]);
        const char *kind = l <= S_CHECKER_FLIP ? "coupling" : l == S_DENSE_FLIP
                         ? "dense_coupling" : l == S_MAF_SPLINE ? "maf" : "iaf";
        const char *msg = fg_last_error();
        printf("flows: %-20s NaN input: %s\n", SPLINE_NAMES[l], msg);
        ck_assert_msg(strncmp(msg, kind, strlen(kind)) == 0 && strstr(msg, "NaN") &&
                      strstr(msg, "sample 1"), "%s: message '%s'", SPLINE_NAMES[l], msg);
        fg_graph_reset(g);
        free(x);
        fg_flow_destroy(f);
    }
    fg_graph_destroy(g);
}
END_TEST

typedef struct prior_ctx {
    fg_prior *p;
    const float *z;
    fg_flow_shape s;
    const int *y;
} prior_ctx;

static fg_var *prior_nll(fg_graph *g, void *vctx)
{
    prior_ctx *c = vctx;
    return fg_neg(g, fg_mean(g, fg_prior_logp(c->p, g, input_const(g, c->z, &c->s), c->y)));
}

START_TEST(test_prior)
{
    fg_rng rng;
    fg_rng_seed(&rng, 19);
    fg_graph *g = fg_graph_create();
    const int y[3] = {2, 0, 1};
    fg_flow_shape s = fg_flow_shape4(3, 2, 3, 3);
    float *z = random_buffer(&rng, shape_numel(&s), 1.0f);
    /* Standard normal by default. */
    fg_prior *std = fg_prior_create(&(fg_prior_options){2, 3, 3, 0, 0, 0, 0});
    fg_var *lp = fg_prior_logp(std, g, input_const(g, z, &s), NULL);
    float zeros[18] = {0};
    ck_assert_double_eq_tol(lp->t.data[2], naive_gauss(z + 36, zeros, zeros, 18), 1e-4);

    /* Learned top + class term, moved off zero: h = bias e^{3 logs} (the
     * conv sees only zeros) + W onehot(y) + b, mean = h[:C], logs = h[C:]. */
    fg_prior *p = fg_prior_create(&(fg_prior_options){2, 3, 3, 1, 3, 0, 0});
    perturb_ctx pc = {&rng, 0.3f};
    fg_prior_visit(p, NULL, perturb_visitor, &pc);
    collect_ctx *c = calloc(1, sizeof *c);
    fg_prior_visit(p, NULL, collect_visitor, c);
    ck_assert_int_eq(c->n, 5);
    ck_assert_str_eq(c->names[1], "prior.learn_top.bias");
    ck_assert_str_eq(c->names[2], "prior.learn_top.logs");
    ck_assert_str_eq(c->names[3], "prior.project_y.weight");
    ck_assert_str_eq(c->names[4], "prior.project_y.bias");
    const float *tb = c->vars[1]->t.data, *tl = c->vars[2]->t.data;
    const float *pw = c->vars[3]->t.data, *pb = c->vars[4]->t.data;
    fg_graph_reset(g);
    lp = fg_prior_logp(p, g, input_const(g, z, &s), y);
    for (int n = 0; n < 3; n++) {
        float mean[18], logs[18];
        for (int ch = 0; ch < 4; ch++) {
            double h = tb[ch] * exp(3.0 * tl[ch]) + pw[ch * 3 + y[n]] + pb[ch];
            for (int k = 0; k < 9; k++)
                (ch < 2 ? mean : logs)[(ch % 2) * 9 + k] = (float)h;
        }
        ck_assert_double_eq_tol(lp->t.data[n], naive_gauss(z + n * 18, mean, logs, 18), 1e-4);
    }
    /* T = 0 draws the means; gradients of the NLL by finite differences. */
    fg_var *m, *l, *s0 = fg_prior_sample(p, g, 3, y, 0.0f, NULL);
    fg_prior_params(p, g, 3, y, &m, &l);
    ck_assert_double_eq(max_abs_diff(s0, m), 0.0);
    prior_ctx ctx = {p, z, s, y};
    fg_gradcheck_result res;
    ck_assert(fg_gradcheck(g, prior_nll, &ctx, c->params, c->n_params, 1e-2, 2e-3, 1e-2,
                           &res));
    free(c), free(z);
    fg_prior_destroy(std);
    fg_prior_destroy(p);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- multi-scale */

/* 2 levels x 2 steps: squeeze, 2 x (actnorm, invconv LU, affine coupling),
 * split, squeeze, 2 x (actnorm, invconv, additive coupling). */
static fg_multiscale *small_stack(int c, int h, int w, fg_rng *rng, int learn_top,
                                  int n_classes)
{
    fg_flow *layers[16];
    int n = 0, ch = 4 * c;
    layers[n++] = fg_squeeze_create();
    for (int k = 0; k < 2; k++) {
        layers[n++] = make_layer(L_ACTNORM, ch, rng);
        layers[n++] = make_layer(L_INVCONV_LU, ch, rng);
        layers[n++] = make_layer(L_AFFINE, ch, rng);
    }
    layers[n++] = make_layer(L_SPLIT, ch, rng);
    ch = 4 * (ch / 2);
    layers[n++] = fg_squeeze_create();
    for (int k = 0; k < 2; k++) {
        layers[n++] = make_layer(L_ACTNORM, ch, rng);
        layers[n++] = make_layer(L_INVCONV, ch, rng);
        layers[n++] = make_layer(L_ADDITIVE, ch, rng);
    }
    fg_multiscale *m;
    fg_multiscale_options o = {layers, n, fg_flow_shape4(1, c, h, w), learn_top, n_classes, 0};
    ck_assert_int_eq(fg_multiscale_create(&o, &m), FG_OK);
    return m;
}

static void perturb_stack(fg_multiscale *m, fg_rng *rng, float scale)
{
    perturb_ctx p = {rng, scale};
    fg_multiscale_visit(m, NULL, perturb_visitor, &p);
}

START_TEST(test_multiscale_round_trip_and_jacobian)
{
    fg_rng rng;
    fg_rng_seed(&rng, 20);
    fg_graph *g = fg_graph_create();
    fg_multiscale *m = small_stack(2, 8, 8, &rng, 1, 0);
    perturb_stack(m, &rng, 0.2f);
    ck_assert_int_eq(m->n_latents, 2);
    ck_assert_int_eq(m->top.dim[1], 16);
    ck_assert_int_eq(m->top.dim[2], 2);

    fg_flow_shape in = fg_flow_shape4(2, 2, 8, 8);
    float *x = random_buffer(&rng, shape_numel(&in), 1.0f);
    fg_var *xin = input_const(g, x, &in), *lat[FG_FLOW_MAX_LATENTS], *logp;
    ck_assert_int_eq(fg_multiscale_encode(m, g, xin, NULL, lat, &logp), 2);
    ck_assert_int_eq(lat[0]->t.shape[1], 4);
    ck_assert_int_eq(lat[0]->t.shape[2], 4);
    fg_var *back = fg_multiscale_decode(m, g, lat, 2);
    double err = max_abs_diff(back, xin);

    /* Through the chain directly: the body's log-dets cancel too. */
    double ld_sum, ld_mag;
    double err_body = round_trip(m->body, g, x, &in, &ld_sum, &ld_mag);
    printf("flows: %-18s round trip max|x'-x| = %.2e (decode %.2e), "
           "max|ld_fwd + ld_inv| = %.2e (|ld_fwd| up to %.3g)\n",
           "multiscale", err_body, err, ld_sum, ld_mag);
    ck_assert_msg(err < 1e-4 && err_body < 1e-4, "round trip %g / %g", err, err_body);
    ck_assert(ld_sum <= 1e-5 * fmax(1.0, ld_mag) && ld_mag > 1e-2);

    /* log p(x) = log-dets + every latent's density, assembled by hand. */
    fg_graph_reset(g);
    xin = input_const(g, x, &in);
    logp = fg_multiscale_log_prob(m, g, xin, NULL);
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    fg_var *ld = NULL;
    fg_var *top = fg_flow_forward(m->body, g, xin, &ld, &ctx);
    fg_var *tm, *tl;
    fg_prior_params(m->prior, g, 2, NULL, &tm, &tl);
    for (int n = 0; n < 2; n++) {
        double want = ld->t.data[n] + ctx.logp->t.data[n] +
                      naive_gauss(top->t.data + n * 64, tm->t.data + n * 64,
                                  tl->t.data + n * 64, 64);
        ck_assert_double_eq_tol(logp->t.data[n], want, 1e-4 * fabs(want));
    }

    /* The whole map x -> (top, z2) against its numerical Jacobian. */
    fg_flow_shape one = fg_flow_shape4(1, 2, 8, 8);
    double analytic, numeric = numerical_logdet(m->body, g, x, &one, &analytic);
    printf("flows: %-18s log-det analytic %+.6f numerical %+.6f |diff| = %.2e\n",
           "multiscale", analytic, numeric, fabs(analytic - numeric));
    fflush(stdout);
    ck_assert_msg(fabs(analytic - numeric) < 2e-4, "analytic %g numerical %g", analytic,
                  numeric);
    free(x);
    fg_multiscale_destroy(m);
    fg_graph_destroy(g);
}
END_TEST

typedef struct ms_ctx {
    fg_multiscale *m;
    const float *x;
    fg_flow_shape in;
    const int *y;
} ms_ctx;

static fg_var *ms_nll(fg_graph *g, void *vctx)
{
    ms_ctx *c = vctx;
    fg_var *lp = fg_multiscale_log_prob(c->m, g, input_const(g, c->x, &c->in), c->y);
    return fg_neg(g, fg_mean(g, lp));
}

static void ms_collect(fg_multiscale *m, collect_ctx *c)
{
    fg_multiscale_visit(m, NULL, collect_visitor, c);
}

START_TEST(test_multiscale_gradients_and_names)
{
    fg_rng rng;
    fg_rng_seed(&rng, 21);
    fg_graph *g = fg_graph_create();
    fg_multiscale *m = small_stack(1, 8, 8, &rng, 1, 3);
    perturb_stack(m, &rng, 0.2f);
    collect_ctx *c = calloc(1, sizeof *c);
    ms_collect(m, c);
    /* Stable dotted names, unique. */
    const char *expect[] = {"flow.1.actnorm.bias", "flow.1.actnorm.initialized",
                            "flow.2.invconv.p", "flow.2.invconv.log_s",
                            "flow.3.coupling.nn.0.weight", "flow.3.coupling.nn.1.logs",
                            "flow.3.coupling.nn.4.initialized",
                            "flow.3.coupling.nn.6.logs", "flow.7.split.conv.weight",
                            "flow.10.invconv.weight", "prior.learn_top.bias",
                            "prior.project_y.weight"};
    for (size_t e = 0; e < sizeof expect / sizeof *expect; e++) {
        int found = 0;
        for (int i = 0; i < c->n; i++)
            found += strcmp(c->names[i], expect[e]) == 0;
        ck_assert_msg(found == 1, "%s found %d times", expect[e], found);
    }
    for (int i = 0; i < c->n; i++)
        for (int j = i + 1; j < c->n; j++)
            ck_assert_str_ne(c->names[i], c->names[j]);

    fg_flow_shape in = fg_flow_shape4(2, 1, 8, 8);
    float *x = random_buffer(&rng, shape_numel(&in), 1.0f);
    const int y[2] = {1, 2};
    ms_ctx mc = {m, x, in, y};
    /* Several random directions through every parameter at once. */
    for (int t = 0; t < 3; t++) {
        double an, num;
        double rel = fg_gradcheck_direction(g, ms_nll, &mc, c->params, c->n_params, 1e-2,
                                            &rng, &an, &num);
        printf("flows: %-18s gradcheck direction %d: analytic %.6f numerical %.6f rel %.2e\n",
               "multiscale", t, an, num, rel);
        fflush(stdout);
        ck_assert_msg(rel < 1e-2, "direction %d: analytic %g numerical %g", t, an, num);
    }
    free(c), free(x);
    fg_multiscale_destroy(m);
    fg_graph_destroy(g);
}
END_TEST

/* Standardized residuals (z - mean) / e^logs of every latent of x, in
 * forward order; the split's mean comes from re-running the first level. */
static void residuals(fg_multiscale *m, fg_graph *g, fg_var *x, float *out, size_t *n_out)
{
    fg_var *lat[FG_FLOW_MAX_LATENTS];
    fg_multiscale_encode(m, g, x, NULL, lat, NULL);
    int split_at = -1;
    for (int i = 0; i < fg_sequence_length(m->body); i++)
        if (strcmp(fg_flow_kind(fg_sequence_layer(m->body, i)), "split") == 0)
            split_at = i;
    fg_var *h = x;
    for (int i = 0; i < split_at; i++)
        h = fg_flow_forward(fg_sequence_layer(m->body, i), g, h, NULL, NULL);
    fg_var *mean[2], *logs[2];
    fg_split_prior_params(fg_sequence_layer(m->body, split_at), g,
                          fg_channel_slice(g, h, 0, h->t.shape[1] / 2), &mean[0], &logs[0]);
    fg_prior_params(m->prior, g, x->t.shape[0], NULL, &mean[1], &logs[1]);
    size_t k = 0;
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < fg_numel(&lat[l]->t); i++)
            out[k++] = (lat[l]->t.data[i] - mean[l]->t.data[i]) / expf(logs[l]->t.data[i]);
    *n_out = k;
}

START_TEST(test_multiscale_sampling)
{
    fg_rng rng;
    fg_rng_seed(&rng, 22);
    fg_graph *g = fg_graph_create();
    fg_multiscale *m = small_stack(1, 8, 8, &rng, 1, 0);
    perturb_stack(m, &rng, 0.1f);
    fg_set_grad_enabled(g, 0);
    const int n = 8;
    float r0[512], r1[512], rh[512];
    size_t k0, k1, kh;

    /* T = 0: every latent of the sample sits at its prior mean. */
    fg_var *x0 = fg_multiscale_sample(m, g, n, NULL, 0.0f, NULL);
    ck_assert_int_eq(x0->t.shape[0], n);
    ck_assert_int_eq(x0->t.shape[1], 1);
    ck_assert_int_eq(x0->t.shape[2], 8);
    residuals(m, g, x0, r0, &k0);
    ck_assert_int_eq((int)k0, n * 64);
    for (size_t i = 0; i < k0; i++)
        ck_assert_msg(fabsf(r0[i]) < 1e-3, "latent %zu off its mean by %g std", i, r0[i]);
    /* ... and equals decoding the means by hand: top mean, split mean. */
    fg_var *tm, *tl;
    fg_prior_params(m->prior, g, n, NULL, &tm, &tl);
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    fg_var *xm = fg_flow_inverse(m->body, g, tm, NULL, &ctx);
    ck_assert_double_eq(max_abs_diff(xm, x0), 0.0);

    /* T scales the spread: the same draws at T = 1 and T = 0.5 give
     * residuals in the ratio 2, with unit spread at T = 1. */
    fg_rng a, b;
    fg_rng_seed(&a, 5);
    fg_rng_seed(&b, 5);
    fg_graph_reset(g);
    residuals(m, g, fg_multiscale_sample(m, g, n, NULL, 1.0f, &a), r1, &k1);
    fg_graph_reset(g);
    residuals(m, g, fg_multiscale_sample(m, g, n, NULL, 0.5f, &b), rh, &kh);
    double s1 = 0, worst = 0;
    for (size_t i = 0; i < k1; i++) {
        s1 += (double)r1[i] * r1[i];
        worst = fmax(worst, fabs(r1[i] - 2.0 * rh[i]));
    }
    double std1 = sqrt(s1 / k1);
    printf("flows: multiscale sampling: residual std at T=1 %.3f, max|r(1) - 2 r(0.5)| = %.2e\n",
           std1, worst);
    fflush(stdout);
    ck_assert_double_lt(worst, 1e-3);
    ck_assert_double_lt(fabs(std1 - 1.0), 0.15);
    fg_multiscale_destroy(m);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- bad shapes */

static void expect_error(int rc, const char *a, const char *b)
{
    ck_assert_int_eq(rc, FG_ERR);
    const char *msg = fg_last_error();
    ck_assert_msg(strstr(msg, a) && strstr(msg, b), "message '%s' lacks '%s' or '%s'", msg,
                  a, b);
}

START_TEST(test_bad_shapes)
{
    fg_rng rng;
    fg_rng_seed(&rng, 23);
    fg_flow_shape out;
    fg_flow_shape three = fg_flow_shape4(2, 3, 8, 8);
    for (int l = 0; l < N_LAYERS; l++) {
        if (l == L_SQUEEZE || l == L_UNSQUEEZE || l == L_SEQUENCE)
            continue;
        fg_flow *f = make_layer(l, 4, &rng);
        expect_error(fg_flow_out_shape(f, &three, &out), fg_flow_kind(f), "(2, 3, 8, 8)");
        fg_flow_destroy(f);
    }
    fg_flow *sq = fg_squeeze_create();
    fg_flow_shape odd = fg_flow_shape4(2, 4, 7, 8);
    expect_error(fg_flow_out_shape(sq, &odd, &out), "squeeze", "(2, 4, 7, 8)");
    fg_flow_shape flat = {2, {2, 16}};
    expect_error(fg_flow_out_shape(sq, &flat, &out), "squeeze", "(2, 16)");
    fg_flow *unsq = fg_unsqueeze_create();
    expect_error(fg_flow_out_shape(unsq, &three, &out), "unsqueeze", "(2, 3, 8, 8)");

    ck_assert_ptr_null(fg_split_create(&(fg_split_options){3, 0, 0, 0.0f}));
    expect_error(FG_ERR, "split", "3");
    ck_assert_ptr_null(make_layer(L_ADDITIVE, 5, &rng));
    expect_error(FG_ERR, "coupling", "5");
    ck_assert_ptr_null(fg_actnorm_create(&(fg_actnorm_options){0, 1.0f}));
    expect_error(FG_ERR, "actnorm", "0");
    double singular[4] = {1, 2, 2, 4};
    ck_assert_ptr_null(fg_invconv_create(&(fg_invconv_options){2, 1, singular, NULL}));
    expect_error(FG_ERR, "invconv", "singular");

    /* A stack whose second squeeze meets an odd size names the layer. */
    fg_flow *layers[4] = {fg_squeeze_create(), make_layer(L_ACTNORM, 4, &rng),
                          fg_squeeze_create(), make_layer(L_ACTNORM, 16, &rng)};
    fg_multiscale *m = (fg_multiscale *)1;
    fg_multiscale_options o = {layers, 4, fg_flow_shape4(1, 1, 6, 6), 0, 0, 0};
    expect_error(fg_multiscale_create(&o, &m), "layer 2: squeeze", "(1, 4, 3, 3)");
    ck_assert_ptr_null(m);
    fg_flow_destroy(sq);
    fg_flow_destroy(unsq);
}
END_TEST

/* ---------------------------------------------------------------- rank 2
 * Batches of vectors (N, D) straight into every layer that takes them, with
 * nothing reshaped by the caller: round trip, log-det against the numerical
 * Jacobian, gradients by finite differences, and the values the same layer
 * gives on the old carrier (N, D, 1, 1). Spline layers take 2 bins, moves
 * of 0.02 and knot-safe inputs, as in the spline test above. */
enum { R_ACTNORM, R_INVCONV, R_INVCONV_LU, R_REVERSE, R_SHUFFLE, R_SCALE_DIAG,
       R_DENSE_ADDITIVE, R_DENSE_SIGMOID_FLIP, R_DENSE_TANH, R_DENSE_SPLINE, R_MAF_AFFINE,
       R_MAF_SPLINE, R_IAF_TANH, R_IAF_SPLINE, R_SEQUENCE, N_RANK2 };
static const char *RANK2_NAMES[N_RANK2] = {
    "actnorm", "invconv", "invconv_lu", "permute_reverse", "permute_shuffle", "scale_diag",
    "dense_additive", "dense_sigmoid_flip", "dense_tanh", "dense_spline_flip", "maf_affine",
    "maf_spline", "iaf_tanh", "iaf_spline", "sequence"};
#define RANK2_DIM 4

static int rank2_spline(int which)
{
    return which == R_DENSE_SPLINE || which == R_MAF_SPLINE || which == R_IAF_SPLINE;
}

static fg_flow *make_rank2(int which, fg_rng *rng)
{
    const int d = RANK2_DIM;
    /* The channel-wise layers are the image test's own. */
    static const int image_kind[] = {[R_ACTNORM] = L_ACTNORM, [R_INVCONV] = L_INVCONV,
                                     [R_INVCONV_LU] = L_INVCONV_LU, [R_REVERSE] = L_REVERSE,
                                     [R_SHUFFLE] = L_SHUFFLE};
    fg_dense_coupling_options dc = {d, HIDDEN, 2, FG_TRANSFORM_ADDITIVE,
                                    FG_COUPLING_MASK_CHANNEL, FG_COUPLING_SCALE_SIGMOID, rng,
                                    2, 3.0f, NULL, 0, 0};
    fg_autoregressive_options ar = {d, HIDDEN, 2, 0, FG_TRANSFORM_AFFINE,
                                    FG_COUPLING_SCALE_SIGMOID, 2, 3.0f, rng};
    switch (which) {
    case R_ACTNORM: case R_INVCONV: case R_INVCONV_LU: case R_REVERSE: case R_SHUFFLE:
        return make_layer(image_kind[which], d, rng);
    case R_SCALE_DIAG: return fg_scale_diag_create(d);
    case R_DENSE_ADDITIVE: return fg_dense_coupling_create(&dc);
    case R_DENSE_SIGMOID_FLIP:
    case R_DENSE_SPLINE:
        dc.transform = which == R_DENSE_SPLINE ? FG_TRANSFORM_SPLINE : FG_TRANSFORM_AFFINE;
        dc.mask = FG_COUPLING_MASK_CHANNEL_FLIP;
        return fg_dense_coupling_create(&dc);
    case R_DENSE_TANH:
        dc.transform = FG_TRANSFORM_AFFINE;
        dc.scale = FG_COUPLING_SCALE_TANH;
        return fg_dense_coupling_create(&dc);
    case R_MAF_AFFINE: return fg_autoregressive_create(&ar);
    case R_MAF_SPLINE:
    case R_IAF_SPLINE:
        ar.transform = FG_TRANSFORM_SPLINE;
        ar.inverse = which == R_IAF_SPLINE;
        return fg_autoregressive_create(&ar);
    case R_IAF_TANH:
        ar.inverse = 1;
        ar.scale = FG_COUPLING_SCALE_TANH;
        return fg_autoregressive_create(&ar);
    case R_SEQUENCE: {
        fg_flow *layers[5] = {make_rank2(R_ACTNORM, rng), make_rank2(R_INVCONV_LU, rng),
                              make_rank2(R_DENSE_SIGMOID_FLIP, rng),
                              make_rank2(R_SHUFFLE, rng), make_rank2(R_MAF_AFFINE, rng)};
        return fg_sequence_create(layers, 5);
    }
    }
    return NULL;
}

/* The largest difference between f on x as (N, D) and on the same values
 * as (N, D, 1, 1), over outputs and log-dets, forward and inverse. */
static double rank2_against_4d(fg_flow *f, fg_graph *g, const float *x, const fg_flow_shape *in)
{
    fg_flow_shape in4 = fg_flow_shape4(in->dim[0], in->dim[1], 1, 1);
    fg_graph_reset(g);
    int was = fg_set_grad_enabled(g, 0);
    double worst = 0.0;
    for (int inverse = 0; inverse < 2; inverse++) {
        fg_var *ld2 = NULL, *ld4 = NULL;
        fg_var *x2 = input_const(g, x, in), *x4 = input_const(g, x, &in4);
        fg_var *z2 = inverse ? fg_flow_inverse(f, g, x2, &ld2, NULL)
                             : fg_flow_forward(f, g, x2, &ld2, NULL);
        fg_var *z4 = inverse ? fg_flow_inverse(f, g, x4, &ld4, NULL)
                             : fg_flow_forward(f, g, x4, &ld4, NULL);
        ck_assert_int_eq(z2->t.ndim, 2);
        ck_assert_int_eq(z4->t.ndim, 4);
        ck_assert_int_eq((int)fg_numel(&z2->t), (int)fg_numel(&z4->t));
        worst = fmax(worst, fg_k_max_abs_diff(fg_numel(&z2->t), z2->t.data, z4->t.data));
        worst = fmax(worst, fg_k_max_abs_diff(fg_numel(&ld2->t), ld2->t.data, ld4->t.data));
    }
    fg_set_grad_enabled(g, was);
    fg_graph_reset(g);
    return worst;
}

START_TEST(test_rank2_layers)
{
    fg_rng rng;
    fg_rng_seed(&rng, 41);
    fg_graph *g = fg_graph_create();
    const int d = RANK2_DIM;
    fg_flow_shape in2 = {2, {2, d}}, in1 = {2, {1, d}};
    for (int l = 0; l < N_RANK2; l++) {
        fg_flow *f = make_rank2(l, &rng);
        ck_assert_ptr_nonnull(f);
        fg_flow_shape out;
        ck_assert_int_eq(fg_flow_out_shape(f, &in2, &out), FG_OK);
        ck_assert_int_eq(out.ndim, 2);
        ck_assert_int_eq(out.dim[0], 2);
        ck_assert_int_eq(out.dim[1], d);
        int spline = rank2_spline(l);
        perturb(f, &rng, spline ? 0.02f : 0.1f);
        float *x = spline ? knot_safe_inputs(&rng, 2 * d) : random_buffer(&rng, 2 * d, 1.0f);
        layer_checks k = check_layer(f, g, x, &in2, &in1);
        double err = k.err, ld_sum = k.ld_sum, ld_mag = k.ld_mag, analytic = k.analytic,
               numeric = k.numeric;
        collect_ctx *c = k.c;
        fg_gradcheck_result res = k.res;
        int ok = k.ok;
        double same = rank2_against_4d(f, g, x, &in2);
        printf("flows: rank 2 %-18s round trip %.2e (log-dets cancel to %.1e of %.3g); "
               "log-det %+.6f vs numerical %+.6f; gradcheck %d elements max abs err %.2e; "
               "against (N, D, 1, 1) %.1e\n", RANK2_NAMES[l], err, ld_sum, ld_mag, analytic,
               numeric, res.n_checked, res.max_abs_err, same);
        fflush(stdout);
        ck_assert_msg(err < 1e-4, "%s: round trip error %g", RANK2_NAMES[l], err);
        ck_assert_msg(ld_sum <= 1e-5 * fmax(1.0, ld_mag), "%s: log-dets do not cancel: %g",
                      RANK2_NAMES[l], ld_sum);
        int volume = l != R_REVERSE && l != R_SHUFFLE && l != R_DENSE_ADDITIVE;
        if (volume)
            ck_assert_msg(fabs(analytic) > 1e-3 && ld_mag > 1e-3,
                          "%s: log-det %g is too small to prove anything", RANK2_NAMES[l],
                          analytic);
        else
            ck_assert_msg(ld_mag == 0.0, "%s: volume-preserving layer has log-det %g",
                          RANK2_NAMES[l], ld_mag);
        ck_assert_msg(fabs(analytic - numeric) < 2e-4, "%s: analytic %g vs numerical %g",
                      RANK2_NAMES[l], analytic, numeric);
        ck_assert_msg(ok, "%s: %d of %d gradient elements fail (worst %s[%d])",
                      RANK2_NAMES[l], res.n_failed, res.n_checked,
                      res.worst_leaf >= 0 ? c->param_names[res.worst_leaf] : "?",
                      res.worst_index);
        /* The same kernels on the same memory; only invconv's product
         * (a GEMM against a 1x1 convolution) may round differently. */
        int exact = l != R_INVCONV && l != R_INVCONV_LU && l != R_SEQUENCE;
        ck_assert_msg(exact ? same == 0.0 : same < 1e-5, "%s: (N, D) and (N, D, 1, 1) differ "
                      "by %g", RANK2_NAMES[l], same);
        free(c);
        free(x);
        fg_flow_destroy(f);
    }

    /* actnorm's data-dependent start on vectors: zero mean, unit spread
     * per entry over the batch. */
    enum { NB = 64 };
    fg_flow *an = make_rank2(R_ACTNORM, &rng);
    fg_flow_shape batch = {2, {NB, d}};
    float *x = random_buffer(&rng, NB * d, 1.0f);
    for (int i = 0; i < NB * d; i++)
        x[i] = 3.0f * x[i] + (float)(i % d) - 1.0f;
    fg_graph_reset(g);
    fg_var *y = fg_flow_forward(an, g, input_const(g, x, &batch), NULL, NULL);
    ck_assert(fg_actnorm_is_initialized(an));
    for (int k = 0; k < d; k++) {
        double mean = 0, sq = 0;
        for (int i = 0; i < NB; i++)
            mean += y->t.data[i * d + k] / NB;
        for (int i = 0; i < NB; i++)
            sq += pow(y->t.data[i * d + k] - mean, 2) / NB;
        ck_assert_msg(fabs(mean) < 1e-5 && fabs(sq - 1.0) < 1e-4, "entry %d: mean %g, "
                      "variance %g after the data-dependent start", k, mean, sq);
    }
    fg_graph_reset(g);
    fg_flow_destroy(an);
    free(x);
    fg_graph_destroy(g);
}
END_TEST

/* A chain over vectors: actnorm, LU invconv, dense affine, shuffle, MAF
 * spline, under a learned prior shifted per class. */
static fg_multiscale *vector_stack(fg_flow_shape input, uint64_t seed)
{
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    const int d = RANK2_DIM;
    fg_flow *layers[5] = {make_rank2(R_ACTNORM, &rng), make_rank2(R_INVCONV_LU, &rng),
                          make_rank2(R_DENSE_SIGMOID_FLIP, &rng), make_rank2(R_SHUFFLE, &rng),
                          make_rank2(R_MAF_SPLINE, &rng)};
    fg_multiscale *m;
    fg_multiscale_options o = {layers, 5, input, 1, 3, 0};
    ck_assert_msg(fg_multiscale_create(&o, &m) == FG_OK, "%s", fg_last_error());
    ck_assert_int_eq(m->n_latents, 1);
    ck_assert_int_eq(m->top.ndim, input.ndim);
    ck_assert_int_eq(m->top.dim[1], d);
    perturb_ctx p = {&rng, 0.02f};
    fg_multiscale_visit(m, NULL, perturb_visitor, &p);
    return m;
}

/* -mean log p(x | y) over n points by the plain tape (invert 0) or by
 * inversion, and every parameter's gradient concatenated into out. */
static double vector_loss_grads(fg_multiscale *m, fg_graph *g, const float *x,
                                const fg_flow_shape *in, const int *y, int invert, float *out,
                                size_t *count)
{
    fg_state_list l;
    fg_state_list_init(&l);
    fg_multiscale_visit(m, NULL, fg_state_list_add, &l);
    fg_state_list_zero_grad(&l);
    fg_graph_reset(g);
    fg_var *logp, *xv = input_const(g, x, in);
    if (invert)
        fg_multiscale_encode_invert(m, g, xv, y, NULL, &logp, NULL);
    else
        logp = fg_multiscale_log_prob(m, g, xv, y);
    fg_var *loss = fg_neg(g, fg_mean(g, logp));
    double value = loss->t.data[0];
    fg_backward(g, loss);
    size_t k = 0;
    for (int i = 0; i < l.n; i++) {
        fg_var *v = l.items[i].var;
        if (l.items[i].kind != FG_PARAM)
            continue;
        for (size_t j = 0; j < fg_numel(&v->t); j++)
            out[k++] = v->grad ? v->grad[j] : 0.0f;
    }
    *count = k;
    fg_state_list_free(&l);
    fg_graph_reset(g);
    return value;
}

START_TEST(test_rank2_container)
{
    enum { NP = 6, MAXG = 8192 };
    const int d = RANK2_DIM;
    fg_flow_shape v = {2, {NP, d}}, v1 = {2, {1, d}}, img = fg_flow_shape4(NP, d, 1, 1);
    fg_multiscale *m2 = vector_stack(v1, 5), *m4 = vector_stack(fg_flow_shape4(1, d, 1, 1), 5);
    fg_graph *g = fg_graph_create();
    fg_rng rng;
    fg_rng_seed(&rng, 42);
    float *x = knot_safe_inputs(&rng, NP * d);
    const int y[NP] = {0, 1, 2, 2, 1, 0};

    /* The same weights give the same log p(x | y) on (N, D) as on
     * (N, D, 1, 1), without a tape and with one. */
    fg_set_grad_enabled(g, 0);
    fg_var *lp2 = fg_multiscale_log_prob(m2, g, input_const(g, x, &v), y);
    fg_var *lp4 = fg_multiscale_log_prob(m4, g, input_const(g, x, &img), y);
    double lp_diff = max_abs_diff(lp2, lp4);
    float logp[NP];   /* the graph's values go at the next reset */
    memcpy(logp, lp2->t.data, sizeof logp);
    fg_graph_reset(g);
    fg_set_grad_enabled(g, 1);
    static float g2[MAXG], g4[MAXG], gi[MAXG];
    size_t n2, n4, ni;
    double l2 = vector_loss_grads(m2, g, x, &v, y, 0, g2, &n2);
    double l4 = vector_loss_grads(m4, g, x, &img, y, 0, g4, &n4);
    /* Memory by inversion runs on vectors too, with the same gradients. */
    double li = vector_loss_grads(m2, g, x, &v, y, 1, gi, &ni);
    ck_assert(n2 == n4 && n2 == ni && n2 < MAXG);
    double g_diff = 0, gi_diff = 0, g_scale = 0;
    for (size_t i = 0; i < n2; i++) {
        g_scale = fmax(g_scale, fabs(g2[i]));
        g_diff = fmax(g_diff, fabs((double)g2[i] - g4[i]));
        gi_diff = fmax(gi_diff, fabs((double)g2[i] - gi[i]));
    }

    /* The likelihood by hand: log N(z; mean_y, e^logs_y) + log-det. */
    fg_set_grad_enabled(g, 0);
    fg_var *ld = NULL, *mean, *logs;
    fg_var *z = fg_flow_forward(m2->body, g, input_const(g, x, &v), &ld, NULL);
    fg_prior_params(m2->prior, g, NP, y, &mean, &logs);
    ck_assert_int_eq(mean->t.ndim, 2);
    double by_hand = 0;
    for (int n = 0; n < NP; n++)
        by_hand = fmax(by_hand, fabs(logp[n] -
                                     (ld->t.data[n] + naive_gauss(z->t.data + n * d,
                                                                  mean->t.data + n * d,
                                                                  logs->t.data + n * d, d))));
    /* The standard prior on vectors is N(0, I). */
    fg_prior *std = fg_prior_create(&(fg_prior_options){.channels = d, .vectors = 1});
    fg_var *lp_std = fg_prior_logp(std, g, input_const(g, x, &v), NULL);
    const float zeros[RANK2_DIM] = {0};
    for (int n = 0; n < NP; n++)
        by_hand = fmax(by_hand, fabs(lp_std->t.data[n] -
                                     naive_gauss(x + n * d, zeros, zeros, d)));
    fg_prior_destroy(std);
    fg_graph_reset(g);

    /* Samples: the same draws give the same points; at T = 0 the prior's
     * means, mapped back. */
    fg_rng a, b;
    fg_rng_seed(&a, 9);
    fg_rng_seed(&b, 9);
    fg_var *s2 = fg_multiscale_sample(m2, g, NP, y, 1.0f, &a);
    fg_var *s4 = fg_multiscale_sample(m4, g, NP, y, 1.0f, &b);
    ck_assert_int_eq(s2->t.ndim, 2);
    ck_assert_int_eq(s2->t.shape[1], d);
    double s_diff = fg_k_max_abs_diff(fg_numel(&s2->t), s2->t.data, s4->t.data);
    fg_var *t0 = fg_multiscale_sample(m2, g, NP, y, 0.0f, NULL);
    fg_prior_params(m2->prior, g, NP, y, &mean, &logs);
    fg_var *back = fg_flow_inverse(m2->body, g, mean, NULL, NULL);
    double t0_diff = max_abs_diff(t0, back);
    printf("flows: rank 2 container: log p (N, D) vs (N, D, 1, 1) %.1e, vs by hand %.1e; "
           "loss %.6f / %.6f / by inversion %.6f; gradients differ by %.1e (inversion %.1e) "
           "of %.3g; samples differ by %.1e\n", lp_diff, by_hand, l2, l4, li, g_diff, gi_diff,
           g_scale, s_diff);
    fflush(stdout);
    ck_assert_double_lt(lp_diff, 1e-5);
    ck_assert_double_lt(by_hand, 1e-4);
    ck_assert_double_lt(fabs(l2 - l4), 1e-5);
    ck_assert_double_lt(fabs(l2 - li), 1e-5);
    ck_assert(g_scale > 0.01);
    ck_assert_double_le(g_diff, 1e-4 * g_scale);
    ck_assert_double_le(gi_diff, 1e-4 * g_scale);
    ck_assert_double_lt(s_diff, 1e-5);
    ck_assert_double_eq(t0_diff, 0.0);

    /* Gradients by finite differences: the vector prior's own, then the
     * whole flow's along random directions. */
    collect_ctx *c = calloc(1, sizeof *c);
    fg_prior_visit(m2->prior, NULL, collect_visitor, c);
    ck_assert_int_eq(c->n_params, 5);
    prior_ctx pc = {m2->prior, x, v, y};
    fg_gradcheck_result res;
    int ok = fg_gradcheck(g, prior_nll, &pc, c->params, c->n_params, 1e-2, 2e-3, 1e-2, &res);
    printf("flows: rank 2 prior gradcheck %d elements, max abs err %.2e\n", res.n_checked,
           res.max_abs_err);
    ck_assert_msg(ok, "vector prior: %d of %d gradient elements fail", res.n_failed,
                  res.n_checked);
    memset(c, 0, sizeof *c);
    ms_collect(m2, c);
    ms_ctx mc = {m2, x, v, y};
    for (int t = 0; t < 3; t++) {
        double an, num;
        double rel = fg_gradcheck_direction(g, ms_nll, &mc, c->params, c->n_params, 1e-2,
                                            &rng, &an, &num);
        printf("flows: rank 2 container gradcheck direction %d: analytic %.6f numerical "
               "%.6f rel %.2e\n", t, an, num, rel);
        ck_assert_msg(rel < 1e-2, "direction %d: analytic %g numerical %g", t, an, num);
    }
    fflush(stdout);
    free(c);
    free(x);
    fg_multiscale_destroy(m2);
    fg_multiscale_destroy(m4);
    fg_graph_destroy(g);
}
END_TEST

/* Rank 2 where a layer cannot take it: an error naming the layer and the
 * shape from out_shape and from the container, never a stop. */
START_TEST(test_rank2_bad_shapes)
{
    fg_rng rng;
    fg_rng_seed(&rng, 43);
    fg_flow_shape vec = {2, {2, 4}}, out;
    fg_flow *image_only[4] = {make_layer(L_ADDITIVE, 4, &rng), fg_squeeze_create(),
                              make_layer(L_SPLIT, 4, &rng),
                              fg_flatten_create(&(fg_flatten_options){4, 1, 1})};
    for (int i = 0; i < 4; i++) {
        expect_error(fg_flow_out_shape(image_only[i], &vec, &out), fg_flow_kind(image_only[i]),
                     "input (2, 4) is a batch of vectors (N, D); the layer works on image "
                     "batches (N, C, H, W)");
        fg_flow_destroy(image_only[i]);
    }
    /* Wrong length, for a channel-wise and a vector layer. */
    fg_flow_shape six = {2, {2, 6}}, three_d = {3, {2, 4, 1}};
    fg_flow *an = make_rank2(R_ACTNORM, &rng), *maf = make_rank2(R_MAF_AFFINE, &rng);
    expect_error(fg_flow_out_shape(an, &six, &out), "actnorm",
                 "input (2, 6) holds vectors of 6 entries, the layer was built for 4");
    expect_error(fg_flow_out_shape(maf, &six, &out), "maf",
                 "input (2, 6) holds vectors of 6 entries, the layer was built for 4");
    expect_error(fg_flow_out_shape(an, &three_d, &out), "actnorm",
                 "input (2, 4, 1) is neither a batch of vectors (N, D) nor an image batch");
    fg_flow_destroy(an);
    fg_flow_destroy(maf);

    /* The container names the layer that refuses vectors. */
    fg_flow *layers[2] = {make_rank2(R_ACTNORM, &rng), make_layer(L_AFFINE, 4, &rng)};
    fg_multiscale *m = (fg_multiscale *)1;
    fg_multiscale_options o = {layers, 2, {2, {1, 4}}, 0, 0, 0};
    expect_error(fg_multiscale_create(&o, &m), "layer 1: coupling",
                 "input (1, 4) is a batch of vectors");
    ck_assert_ptr_null(m);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("flows");
    TCase *tc = fg_tcase("layers");
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_logdet_vs_jacobian);
    tcase_add_test(tc, test_parameter_gradients);
    tcase_add_test(tc, test_actnorm_init_and_flag);
    tcase_add_test(tc, test_invconv_lu_matches_plain);
    tcase_add_test(tc, test_inverse_with_gradients);
    tcase_add_test(tc, test_fresh_couplings);
    tcase_add_test(tc, test_squeeze_and_permute_order);
    tcase_add_test(tc, test_split_density_and_draws);
    tcase_add_test(tc, test_prior);
    tcase_add_test(tc, test_split_standard);
    tcase_add_test(tc, test_split_logs_floor);
    tcase_add_test(tc, test_checkerboard_masks);
    tcase_add_test(tc, test_vector_layers);
    tcase_add_test(tc, test_spline_and_autoregressive_layers);
    tcase_add_test(tc, test_autoregressive_jacobian_is_triangular);
    tcase_add_test(tc, test_spline_far_and_nonfinite_inputs);
    suite_add_tcase(s, tc);
    TCase *ms = fg_tcase("multiscale");
    tcase_add_test(ms, test_multiscale_round_trip_and_jacobian);
    tcase_add_test(ms, test_multiscale_gradients_and_names);
    tcase_add_test(ms, test_multiscale_sampling);
    tcase_add_test(ms, test_bad_shapes);
    suite_add_tcase(s, ms);
    TCase *vectors = fg_tcase("rank 2");
    tcase_add_test(vectors, test_rank2_layers);
    tcase_add_test(vectors, test_rank2_container);
    tcase_add_test(vectors, test_rank2_bad_shapes);
    suite_add_tcase(s, vectors);
    return s;
}
