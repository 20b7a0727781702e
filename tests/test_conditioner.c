/* Couplings with conditioner networks other than the default, and with a
 * condition: round trips, log-determinants against the numerical Jacobian,
 * gradients against finite differences (the parameters' and the
 * condition's), that the output follows the condition, the state names
 * of the default networks (the names of existing checkpoints), the
 * condition's broadcast and pooling by value, and the errors for networks
 * and conditions that do not fit.
 *
 * Tolerances are those of tests/test_flows.c, for the same reasons: the
 * Jacobian's five-point stencil with step 1/8 on inputs on a 2^-10 grid
 * (measured ~1e-6), fg_gradcheck's step 1e-2 with atol 2e-3 + rtol 1e-2.
 * Networks with ReLUs get actnorm biases of +-1 and small weights so no
 * pre-activation sits near the kink; the others use tanh and elu. */
#include "check_main.h"
#include "check_jacobian.h"
#include "flowgrad.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- cases */

/* A coupling, the shape it takes and the condition it reads (or none). */
typedef struct conditioned {
    const char *name;
    fg_flow *f;
    fg_flow_shape in, cond;   /* cond.ndim == 0: no condition */
    int relu_guard;           /* a default network: see perturb_visitor */
} conditioned;

enum {
    C_IMAGE_RESIDUAL, C_VECTOR_RESIDUAL, C_IMAGE_VECTOR_COND, C_IMAGE_IMAGE_COND,
    C_VECTOR_VECTOR_COND, C_VECTOR_IMAGE_COND, N_CASES
};

static const fg_net_layer image_residual[] = {
    {.kind = FG_NET_CONV, .width = 6, .kernel = 3, .bias = 1},
    {.kind = FG_NET_ACTNORM},
    {.kind = FG_NET_TANH},
    {.kind = FG_NET_RESIDUAL, .width = 5, .kernel = 3, .activation = FG_NET_ELU},
    {.kind = FG_NET_CONV, .width = 6, .kernel = 1},
    {.kind = FG_NET_TANH},
    {.kind = FG_NET_ZERO_CONV, .kernel = 3},
};

static const fg_net_layer vector_residual[] = {
    {.kind = FG_NET_DENSE, .width = 10, .bias = 1},
    {.kind = FG_NET_TANH},
    {.kind = FG_NET_RESIDUAL, .activation = FG_NET_TANH},
    {.kind = FG_NET_ACTNORM},
    {.kind = FG_NET_ELU},
    {.kind = FG_NET_ZERO_DENSE},
};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static conditioned make_case(int which, fg_rng *rng)
{
    conditioned c = {0};
    switch (which) {
    case C_IMAGE_RESIDUAL:
        c.name = "image_residual";
        c.in = fg_flow_shape4(2, 4, 4, 4);
        c.f = fg_coupling_create(&(fg_coupling_options){
            .channels = 4, .transform = FG_TRANSFORM_AFFINE, .rng = rng,
            .net = image_residual, .net_layers = COUNT(image_residual)});
        break;
    case C_VECTOR_RESIDUAL:
        c.name = "vector_residual";
        c.in = (fg_flow_shape){2, {3, 6}};
        c.f = fg_dense_coupling_create(&(fg_dense_coupling_options){
            .dim = 6, .transform = FG_TRANSFORM_AFFINE, .mask = FG_COUPLING_MASK_CHANNEL_FLIP,
            .rng = rng, .net = vector_residual,
            .net_layers = COUNT(vector_residual)});
        break;
    case C_IMAGE_VECTOR_COND:
        c.name = "image_vector_cond";
        c.in = fg_flow_shape4(2, 4, 4, 4);
        c.cond = (fg_flow_shape){2, {2, 3}};
        c.f = fg_coupling_create(&(fg_coupling_options){
            .channels = 4, .hidden = 8, .transform = FG_TRANSFORM_AFFINE, .rng = rng,
            .cond_channels = 3});
        c.relu_guard = 1;
        break;
    case C_IMAGE_IMAGE_COND:
        c.name = "image_image_cond";
        c.in = fg_flow_shape4(2, 2, 4, 4);
        c.cond = fg_flow_shape4(2, 2, 8, 8);
        c.f = fg_coupling_create(&(fg_coupling_options){
            .channels = 2, .hidden = 8, .transform = FG_TRANSFORM_AFFINE, .rng = rng,
            .mask = FG_COUPLING_MASK_CHECKERBOARD, .scale = FG_COUPLING_SCALE_TANH,
            .cond_channels = 2});
        c.relu_guard = 1;
        break;
    case C_VECTOR_VECTOR_COND:
        c.name = "vector_vector_cond";
        c.in = (fg_flow_shape){2, {3, 4}};
        c.cond = (fg_flow_shape){2, {3, 3}};
        c.f = fg_dense_coupling_create(&(fg_dense_coupling_options){
            .dim = 4, .hidden = 8, .layers = 2, .transform = FG_TRANSFORM_AFFINE, .rng = rng,
            .cond_channels = 3});
        c.relu_guard = 1;
        break;
    case C_VECTOR_IMAGE_COND:
        c.name = "vector_image_cond";
        c.in = fg_flow_shape4(3, 4, 1, 1);
        c.cond = fg_flow_shape4(3, 1, 2, 2);
        c.f = fg_dense_coupling_create(&(fg_dense_coupling_options){
            .dim = 4, .transform = FG_TRANSFORM_AFFINE, .scale = FG_COUPLING_SCALE_TANH,
            .rng = rng, .net = vector_residual, .net_layers = COUNT(vector_residual),
            .cond_channels = 4});
        break;
    }
    ck_assert_msg(c.f != NULL, "case %d: %s", which, fg_last_error());
    return c;
}

/* Moves every parameter off its start (zero outputs, the residual blocks'
 * zero second layers, actnorms) and marks actnorms initialized. In the
 * default networks (relu_guard), whose ReLUs follow an actnorm or a dense
 * layer, the hidden weights stay small (conv weights N(0, 0.05^2), dense
 * ones shrunk) and those biases are +-1, so no pre-activation sits near
 * the kink; only the output moves freely. Noise of 0.1, as tests/test_flows.c
 * uses for gradients: larger output weights make the exp(3 logs) terms
 * curved enough for the finite differences' truncation error to show. */
typedef struct perturb_ctx {
    fg_rng *rng;
    int relu_guard;
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
    int hidden = p->relu_guard && !strstr(name, ".nn.6.") && !strstr(name, ".out.");
    float *noise = fg_xmalloc(n * sizeof(float), "test");
    fg_rng_normal(p->rng, noise, n);
    for (size_t i = 0; i < n; i++) {
        float e = 0.1f * noise[i];
        if (hidden && fg_test_ends_with(name, "bias"))
            v->t.data[i] = (i % 2 ? -1.0f : 1.0f) + e;
        else if (hidden && strstr(name, ".hidden."))
            v->t.data[i] *= 0.1f;
        else if (!hidden || fg_test_ends_with(name, "logs"))
            v->t.data[i] += e;
    }
    free(noise);
}

static void perturb(const conditioned *c, fg_rng *rng)
{
    perturb_ctx p = {rng, c->relu_guard};
    fg_flow_visit(c->f, NULL, perturb_visitor, &p);
}

/* ---------------------------------------------------------------- running */

static fg_var *constant(fg_graph *g, const float *data, const fg_flow_shape *s)
{
    fg_var *x = fg_const(g, s->ndim, s->dim);
    memcpy(x->t.data, data, fg_numel(&x->t) * sizeof(float));
    return x;
}

static float *random_buffer(fg_rng *rng, size_t n)
{
    float *x = fg_xmalloc(n * sizeof(float), "test");
    fg_rng_normal(rng, x, n);
    return x;
}

static size_t numel(const fg_flow_shape *s)
{
    return fg_shape_numel(s->ndim, s->dim);
}

/* z = f(x | cond) without a tape into out; *logdet gets sample 0's. */
static void eval(const conditioned *c, fg_graph *g, const float *x, fg_var *cond, float *out,
                 double *logdet)
{
    int was = fg_set_grad_enabled(g, 0);
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    ctx.condition = cond;
    fg_var *ld = NULL;
    fg_var *z = fg_flow_forward(c->f, g, constant(g, x, &c->in), &ld, &ctx);
    if (out)
        memcpy(out, z->t.data, fg_numel(&z->t) * sizeof(float));
    if (logdet)
        *logdet = ld->t.data[0];
    fg_set_grad_enabled(g, was);
}

/* The layer with its condition, as fg_test_numerical_logdet maps it. */
typedef struct conditioned_map {
    const conditioned *c;
    fg_graph *g;
    fg_var *cond;
} conditioned_map;

static void conditioned_map_eval(void *ctx, const float *x, float *out, double *logdet)
{
    conditioned_map *m = ctx;
    eval(m->c, m->g, x, m->cond, out, logdet);
}

/* log|det dz/dx| of sample 0 (check_jacobian.h); the other samples are
 * held, so the Jacobian of one sample is square. */
static double numerical_logdet(const conditioned *c, fg_graph *g, float *x, fg_var *cond,
                               double *analytic)
{
    size_t total = numel(&c->in), d = total / (size_t)c->in.dim[0];
    conditioned_map map = {c, g, cond};
    return fg_test_numerical_logdet(x, total, d, total, conditioned_map_eval, &map, analytic);
}

typedef struct nll_ctx {
    const conditioned *c;
    const float *x;
    fg_var *cond;      /* a leaf, so that gradients reach it */
} nll_ctx;

static fg_var *mean_nll(fg_graph *g, void *vctx)
{
    nll_ctx *n = vctx;
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    ctx.condition = n->cond;
    fg_var *ld = NULL;
    fg_var *z = fg_flow_forward(n->c->f, g, constant(g, n->x, &n->c->in), &ld, &ctx);
    fg_var *zero = fg_const(g, z->t.ndim, z->t.shape);
    return fg_neg(g, fg_mean(g, fg_add(g, fg_gaussian_logp(g, z, zero, zero), ld)));
}

typedef struct params {
    fg_var *v[64];
    char names[64][FG_NAME_LEN];
    int n;
} params;

static void collect(void *vctx, const char *name, fg_var *v, fg_state_kind kind)
{
    params *p = vctx;
    if (kind != FG_PARAM)
        return;
    ck_assert_int_lt(p->n, 63);
    snprintf(p->names[p->n], FG_NAME_LEN, "%s", name);
    p->v[p->n++] = v;
}

/* ---------------------------------------------------------------- checks */

START_TEST(test_round_trip_jacobian_gradients)
{
    fg_rng rng;
    fg_rng_seed(&rng, 101);
    fg_graph *g = fg_graph_create();
    for (int which = 0; which < N_CASES; which++) {
        conditioned c = make_case(which, &rng);
        fg_flow_shape out;
        ck_assert_msg(fg_flow_out_shape(c.f, &c.in, &out) == FG_OK, "%s", fg_last_error());
        perturb(&c, &rng);
        float *x = random_buffer(&rng, numel(&c.in));
        fg_var *cond = NULL;
        if (c.cond.ndim) {
            cond = fg_leaf_new(c.cond.ndim, c.cond.dim, 1);
            fg_rng_normal(&rng, cond->t.data, numel(&c.cond));
        }

        /* Round trip, with a tape on, log-dets cancelling. */
        fg_graph_reset(g);
        fg_flow_ctx ctx;
        fg_flow_ctx_init(&ctx);
        ctx.condition = cond;
        fg_var *xv = constant(g, x, &c.in), *ldf = NULL, *ldi = NULL;
        fg_var *z = fg_flow_forward(c.f, g, xv, &ldf, &ctx);
        fg_var *back = fg_flow_inverse(c.f, g, z, &ldi, &ctx);
        double err = fg_k_max_abs_diff(fg_numel(&xv->t), xv->t.data, back->t.data);
        double ld_sum = 0, ld_mag = 0;
        for (int s = 0; s < c.in.dim[0]; s++) {
            ld_sum = fmax(ld_sum, fabs((double)ldf->t.data[s] + ldi->t.data[s]));
            ld_mag = fmax(ld_mag, fabs((double)ldf->t.data[s]));
        }
        ck_assert_msg(err < 1e-4, "%s: round trip error %g", c.name, err);
        ck_assert_msg(ld_sum <= 1e-5 * fmax(1.0, ld_mag), "%s: log-dets %g", c.name, ld_sum);
        ck_assert_msg(ld_mag > 1e-2, "%s: log-det %g is too small to test", c.name, ld_mag);

        /* Log-det against the numerical Jacobian. */
        fg_graph_reset(g);
        double analytic, numeric = numerical_logdet(&c, g, x, cond, &analytic);
        ck_assert_msg(fabs(analytic - numeric) < 2e-4, "%s: log-det %g, numerical %g", c.name,
                      analytic, numeric);

        /* Gradients of the parameters and of the condition. */
        params *p = calloc(1, sizeof *p);
        fg_flow_visit(c.f, NULL, collect, p);
        if (cond) {
            snprintf(p->names[p->n], FG_NAME_LEN, "condition");
            p->v[p->n++] = cond;
        }
        nll_ctx nc = {&c, x, cond};
        fg_gradcheck_result res;
        fg_graph_reset(g);
        int ok = fg_gradcheck(g, mean_nll, &nc, p->v, p->n, 1e-2, 2e-3, 1e-2, &res);
        printf("conditioner: %-20s round trip %.1e, log-det %+.5f vs %+.5f, gradcheck %d "
               "values, max abs err %.1e\n", c.name, err, analytic, numeric, res.n_checked,
               res.max_abs_err);
        fflush(stdout);
        ck_assert_msg(ok, "%s: %d of %d gradient values fail (worst %s[%d])", c.name,
                      res.n_failed, res.n_checked,
                      res.worst_leaf >= 0 ? p->names[res.worst_leaf] : "?", res.worst_index);
        free(p);
        free(x);
        if (cond)
            fg_leaf_free(cond);
        fg_flow_destroy(c.f);
    }
    fg_graph_destroy(g);
}
END_TEST

/* The output changes with the condition and only with it. */
START_TEST(test_output_follows_condition)
{
    fg_rng rng;
    fg_rng_seed(&rng, 102);
    fg_graph *g = fg_graph_create();
    for (int which = C_IMAGE_VECTOR_COND; which < N_CASES; which++) {
        conditioned c = make_case(which, &rng);
        perturb(&c, &rng);
        size_t n = numel(&c.in), m = numel(&c.cond);
        float *x = random_buffer(&rng, n);
        float *za = fg_xmalloc(n * sizeof(float), "test"), *zb = fg_xmalloc(n * sizeof(float),
                                                                             "test");
        float *zc = fg_xmalloc(n * sizeof(float), "test");
        fg_var *a = fg_leaf_new(c.cond.ndim, c.cond.dim, 0);
        fg_var *b = fg_leaf_new(c.cond.ndim, c.cond.dim, 0);
        fg_rng_normal(&rng, a->t.data, m);
        fg_rng_normal(&rng, b->t.data, m);
        eval(&c, g, x, a, za, NULL);
        eval(&c, g, x, b, zb, NULL);
        eval(&c, g, x, a, zc, NULL);
        double moved = fg_k_max_abs_diff(n, za, zb), again = fg_k_max_abs_diff(n, za, zc);
        ck_assert_msg(moved > 1e-3, "%s: another condition moved z by %g only", c.name, moved);
        ck_assert_msg(again == 0.0, "%s: the same condition gave z %g apart", c.name, again);
        fg_leaf_free(a), fg_leaf_free(b);
        free(x), free(za), free(zb), free(zc);
        fg_flow_destroy(c.f);
        fg_graph_reset(g);
    }
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- names */

typedef struct names {
    char text[4096];
} names;

static void join_name(void *vctx, const char *name, fg_var *v, fg_state_kind kind)
{
    names *s = vctx;
    size_t k = strlen(s->text);
    snprintf(s->text + k, sizeof s->text - k, "%s%s%s", k ? " " : "", name,
             kind == FG_BUFFER ? "(buffer)" : "");
    (void)v;
}

static const char *state_names(fg_flow *f, names *s)
{
    s->text[0] = '\0';
    fg_flow_visit(f, "flow.3", join_name, s);
    return s->text;
}

/* The names of checkpoints written before conditioner networks existed:
 * Glow's coupling and the dense coupling, with and without a condition. */
START_TEST(test_default_state_names)
{
    fg_rng rng;
    fg_rng_seed(&rng, 103);
    names s;
    const char *glow = "flow.3.coupling.nn.0.weight flow.3.coupling.nn.1.bias "
                       "flow.3.coupling.nn.1.logs flow.3.coupling.nn.1.initialized(buffer) "
                       "flow.3.coupling.nn.3.weight flow.3.coupling.nn.4.bias "
                       "flow.3.coupling.nn.4.logs flow.3.coupling.nn.4.initialized(buffer) "
                       "flow.3.coupling.nn.6.weight flow.3.coupling.nn.6.bias "
                       "flow.3.coupling.nn.6.logs";
    for (int cc = 0; cc <= 3; cc += 3) {
        fg_flow *f = fg_coupling_create(&(fg_coupling_options){
            .channels = 4, .hidden = 8, .transform = FG_TRANSFORM_AFFINE, .rng = &rng,
            .cond_channels = cc});
        ck_assert_str_eq(state_names(f, &s), glow);
        params p = {0};
        fg_flow_visit(f, NULL, collect, &p);
        /* nn.0 sees the conditioning half and the condition. */
        ck_assert_int_eq(p.v[0]->t.shape[1], 2 + cc);
        ck_assert_int_eq(p.v[0]->t.shape[2], 3);
        ck_assert_int_eq(p.v[p.n - 1]->t.shape[0], 4);   /* nn.6.logs: 2 halves x 2 */
        fg_flow_destroy(f);
    }
    fg_flow *d = fg_dense_coupling_create(&(fg_dense_coupling_options){
        .dim = 6, .hidden = 5, .layers = 2, .transform = FG_TRANSFORM_ADDITIVE, .rng = &rng});
    ck_assert_str_eq(state_names(d, &s),
                     "flow.3.dense_coupling.hidden.0.weight flow.3.dense_coupling.hidden.0.bias "
                     "flow.3.dense_coupling.hidden.1.weight flow.3.dense_coupling.hidden.1.bias "
                     "flow.3.dense_coupling.out.weight flow.3.dense_coupling.out.bias");
    fg_flow_destroy(d);
    /* A list names its modules by index; residual blocks as a Sequential. */
    fg_flow *r = fg_coupling_create(&(fg_coupling_options){
        .channels = 4, .transform = FG_TRANSFORM_ADDITIVE, .rng = &rng, .net = image_residual,
        .net_layers = COUNT(image_residual)});
    ck_assert_str_eq(state_names(r, &s),
                     "flow.3.coupling.nn.0.weight flow.3.coupling.nn.0.bias "
                     "flow.3.coupling.nn.1.bias flow.3.coupling.nn.1.logs "
                     "flow.3.coupling.nn.1.initialized(buffer) "
                     "flow.3.coupling.nn.3.0.weight flow.3.coupling.nn.3.0.bias "
                     "flow.3.coupling.nn.3.2.weight flow.3.coupling.nn.3.2.bias "
                     "flow.3.coupling.nn.4.weight flow.3.coupling.nn.6.weight "
                     "flow.3.coupling.nn.6.bias flow.3.coupling.nn.6.logs");
    fg_flow_destroy(r);
}
END_TEST

/* Glow's network written out as a list is the default, value for value:
 * the same weights from the same seed, the same output. */
START_TEST(test_default_as_a_list)
{
    const fg_net_layer glow[] = {
        {.kind = FG_NET_CONV, .width = 8, .kernel = 3}, {.kind = FG_NET_ACTNORM},
        {.kind = FG_NET_RELU}, {.kind = FG_NET_CONV, .width = 8, .kernel = 1},
        {.kind = FG_NET_ACTNORM}, {.kind = FG_NET_RELU}, {.kind = FG_NET_ZERO_CONV},
    };
    fg_rng r1, r2, rx;
    fg_rng_seed(&r1, 104);
    fg_rng_seed(&r2, 104);
    fg_rng_seed(&rx, 105);
    fg_flow *a = fg_coupling_create(&(fg_coupling_options){
        .channels = 4, .hidden = 8, .transform = FG_TRANSFORM_AFFINE, .rng = &r1});
    fg_flow *b = fg_coupling_create(&(fg_coupling_options){
        .channels = 4, .hidden = 99, .transform = FG_TRANSFORM_AFFINE, .rng = &r2,
        .net = glow, .net_layers = COUNT(glow)});
    conditioned ca = {"a", a, fg_flow_shape4(2, 4, 4, 4), {0}, 1}, cb = ca;
    cb.f = b;
    perturb(&ca, &rx);
    fg_rng_seed(&rx, 105);
    perturb(&cb, &rx);
    fg_graph *g = fg_graph_create();
    float *x = random_buffer(&rx, 128), za[128], zb[128];
    double la, lb;
    eval(&ca, g, x, NULL, za, &la);
    eval(&cb, g, x, NULL, zb, &lb);
    ck_assert(memcmp(za, zb, sizeof za) == 0);
    ck_assert(la == lb && la != 0.0);
    free(x);
    fg_flow_destroy(a);
    fg_flow_destroy(b);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- condition shaping */

START_TEST(test_condition_broadcast_and_pool)
{
    fg_graph *g = fg_graph_create();
    int vs[2] = {2, 2}, ls[4] = {2, 1, 2, 3};
    fg_var *v = fg_const(g, 2, vs), *like = fg_const(g, 4, ls);
    for (int i = 0; i < 4; i++)
        v->t.data[i] = (float)(i + 1);
    fg_var *b = fg_condition_for(g, v, like, "coupling");
    ck_assert_int_eq(b->t.ndim, 4);
    ck_assert_int_eq(b->t.shape[1], 2);
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 2; c++)
            for (int p = 0; p < 6; p++)
                ck_assert_float_eq(b->t.data[(s * 2 + c) * 6 + p], (float)(s * 2 + c + 1));
    /* (2, 1, 4, 6) pooled by 2 x 2 onto the 2 x 3 of like. */
    int is[4] = {2, 1, 4, 6};
    fg_var *im = fg_const(g, 4, is);
    for (int i = 0; i < 48; i++)
        im->t.data[i] = (float)i;
    fg_var *p = fg_condition_for(g, im, like, "coupling");
    ck_assert_int_eq(p->t.shape[2], 2);
    ck_assert_int_eq(p->t.shape[3], 3);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) {
                const float *q = im->t.data + s * 24 + (2 * i) * 6 + 2 * j;
                float want = (q[0] + q[1] + q[6] + q[7]) / 4.0f;
                ck_assert_float_eq_tol(p->t.data[s * 6 + i * 3 + j], want, 1e-5f);
            }
    /* A vector layer gets the image flattened. */
    int vl[2] = {2, 5};
    fg_var *flat = fg_condition_for(g, im, fg_const(g, 2, vl), "dense_coupling");
    ck_assert_int_eq(flat->t.ndim, 2);
    ck_assert_int_eq(flat->t.shape[1], 24);
    ck_assert(memcmp(flat->t.data, im->t.data, 48 * sizeof(float)) == 0);
    /* Sizes that do not divide, and other batch sizes, are refused. */
    int odd[4] = {2, 1, 5, 6}, other[2] = {3, 2};
    ck_assert_ptr_null(fg_condition_for(g, fg_const(g, 4, odd), like, "flow.2.coupling"));
    ck_assert_str_eq(fg_last_error(), "flow.2.coupling: the condition (2, 1, 5, 6) cannot be "
                     "pooled to the layer's (2, 1, 2, 3) (its height and width must be whole "
                     "multiples of the layer's)");
    ck_assert_ptr_null(fg_condition_for(g, fg_const(g, 2, other), like, "coupling"));
    ck_assert_str_eq(fg_last_error(), "coupling: the condition (3, 2) has 3 samples, the "
                     "layer's input (2, 1, 2, 3) has 2");
    fg_graph_destroy(g);
}
END_TEST

/* Each activation by value, through a network whose output layer is set
 * to the identity. */
static void set_identity(void *vctx, const char *name, fg_var *v, fg_state_kind kind)
{
    (void)vctx, (void)kind;
    if (fg_test_ends_with(name, "weight"))
        for (int i = 0; i < v->t.shape[0]; i++)
            v->t.data[i * v->t.shape[1] + i] = 1.0f;
}

START_TEST(test_activation_values)
{
    static const float x[4] = {-2.0f, -0.5f, 0.5f, 2.0f};
    const fg_net_kind kinds[4] = {FG_NET_RELU, FG_NET_TANH, FG_NET_ELU, FG_NET_LEAKY_RELU};
    fg_rng rng;
    fg_rng_seed(&rng, 106);
    fg_graph *g = fg_graph_create();
    for (int k = 0; k < 4; k++) {
        fg_net_layer net[2] = {{.kind = kinds[k]}, {.kind = FG_NET_ZERO_DENSE}};
        fg_net *n = fg_net_create("test", net, 2, 4, 4, 0, &rng);
        fg_net_visit(n, NULL, set_identity, NULL);
        fg_var *y = fg_net_apply(n, g, constant(g, x, &(fg_flow_shape){2, {1, 4}}));
        for (int i = 0; i < 4; i++) {
            double v = x[i], want = kinds[k] == FG_NET_RELU ? fmax(v, 0.0)
                                  : kinds[k] == FG_NET_TANH ? tanh(v)
                                  : kinds[k] == FG_NET_ELU ? (v > 0 ? v : expm1(v))
                                  : (v > 0 ? v : 0.01 * v);
            ck_assert_msg(fabs(y->t.data[i] - want) < 1e-6, "%s(%g) = %g, expected %g",
                          fg_net_kind_name(kinds[k]), v, y->t.data[i], want);
        }
        fg_net_destroy(n);
        fg_graph_reset(g);
    }
    fg_graph_destroy(g);
}
END_TEST

/* ------------------------------------------------ the condition in closed form */

static void noise_visitor(void *vctx, const char *name, fg_var *v, fg_state_kind kind)
{
    (void)name;
    if (kind != FG_PARAM)
        return;
    size_t n = fg_numel(&v->t);
    float *noise = fg_xmalloc(n * sizeof(float), "test");
    fg_rng_normal(vctx, noise, n);
    for (size_t i = 0; i < n; i++)
        v->t.data[i] += 0.1f * noise[i];
    free(noise);
}

static void zero_grad_visitor(void *vctx, const char *name, fg_var *v, fg_state_kind kind)
{
    (void)vctx;
    (void)name;
    if (kind == FG_PARAM)
        fg_zero_grad(v);
}

typedef struct grads {
    float *v[16];
    size_t n[16];
    int count;
} grads;

static void grab_grad(void *vctx, const char *name, fg_var *v, fg_state_kind kind)
{
    (void)name;
    grads *gr = vctx;
    if (kind != FG_PARAM)
        return;
    ck_assert_int_lt(gr->count, 16);
    size_t n = fg_numel(&v->t);
    gr->v[gr->count] = fg_xmalloc(n * sizeof(float), "test");
    memcpy(gr->v[gr->count], v->grad, n * sizeof(float));
    gr->n[gr->count++] = n;
}

/* Output, parameter and condition gradients of sum(y r), y the network on
 * x with the condition either in closed form or concatenated. */
static void run_net(fg_net *net, fg_graph *g, fg_var *x, fg_var *cond, int closed, float *y_out,
                    grads *gr, float *cond_grad)
{
    fg_net_visit(net, NULL, zero_grad_visitor, NULL);
    fg_zero_grad(cond);
    fg_var *y = closed ? fg_net_apply_vector_condition(net, g, x, cond)
                       : fg_net_apply(net, g, fg_channel_concat(g, x, fg_condition_for(
                                                                         g, cond, x, "test")));
    ck_assert_ptr_nonnull(y);
    size_t n = fg_numel(&y->t);
    memcpy(y_out, y->t.data, n * sizeof(float));
    fg_var *r = fg_const(g, y->t.ndim, y->t.shape);
    for (size_t i = 0; i < n; i++)
        r->t.data[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
    fg_backward(g, fg_sum(g, fg_mul(g, y, r)));
    fg_net_visit(net, NULL, grab_grad, gr);
    memcpy(cond_grad, cond->grad, fg_numel(&cond->t) * sizeof(float));
}

static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0, m = 1e-3;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / m;
}

/* A condition vector read in closed form (fg_net_apply_vector_condition)
 * gives what repeating it over the image as channels gives: the output, and
 * the gradients of every parameter and of the condition, to float
 * rounding; networks it does not fit, and one whose actnorms wait for their
 * init, are left to the caller (NULL). */
START_TEST(test_vector_condition_in_closed_form)
{
    static const fg_net_layer layers[] = {
        {.kind = FG_NET_CONV, .width = 6, .kernel = 3, .bias = 1},
        {.kind = FG_NET_ACTNORM},
        {.kind = FG_NET_RELU},
        {.kind = FG_NET_CONV, .width = 6, .kernel = 1},
        {.kind = FG_NET_ACTNORM},
        {.kind = FG_NET_RELU},
        {.kind = FG_NET_ZERO_CONV, .kernel = 3},
    };
    enum { N = 5, C = 2, CC = 3, H = 5, W = 4 };
    fg_rng rng;
    fg_rng_seed(&rng, 108);
    fg_graph *g = fg_graph_create();
    fg_net *net = fg_net_create("test", layers, COUNT(layers), C + CC, 4, 1, &rng);
    ck_assert_ptr_nonnull(net);
    int xs[4] = {N, C, H, W}, cs[2] = {N, CC};
    fg_var *x = fg_const(g, 4, xs);
    fg_rng_normal(&rng, x->t.data, fg_numel(&x->t));
    fg_var *cond = fg_leaf_new(2, cs, 1);
    fg_rng_normal(&rng, cond->t.data, fg_numel(&cond->t));
    fg_var *x_keep = fg_leaf_new(4, xs, 0);
    memcpy(x_keep->t.data, x->t.data, fg_numel(&x->t) * sizeof(float));

    /* The actnorms' init needs the pre-activations: the caller's path. */
    ck_assert_ptr_null(fg_net_apply_vector_condition(net, g, x, cond));
    ck_assert_uint_eq(fg_graph_nodes(g), 0);
    fg_net_apply(net, g, fg_channel_concat(g, x, fg_condition_for(g, cond, x, "test")));
    ck_assert_int_eq(fg_net_data_init(net, 0), 0);
    fg_net_visit(net, NULL, noise_visitor, &rng);

    const size_t ny = (size_t)N * 4 * H * W;
    float y[2][N * 4 * H * W], gc[2][N * CC];
    grads gr[2] = {0};
    for (int closed = 0; closed < 2; closed++) {
        fg_graph_reset(g);
        x = fg_const(g, 4, xs);
        memcpy(x->t.data, x_keep->t.data, fg_numel(&x->t) * sizeof(float));
        run_net(net, g, x, cond, closed, y[closed], &gr[closed], gc[closed]);
    }
    double dy = rel_diff(y[1], y[0], ny), dc = rel_diff(gc[1], gc[0], (size_t)N * CC), dp = 0;
    ck_assert_int_eq(gr[0].count, gr[1].count);
    for (int i = 0; i < gr[0].count; i++) {
        dp = fmax(dp, rel_diff(gr[1].v[i], gr[0].v[i], gr[0].n[i]));
        free(gr[0].v[i]);
        free(gr[1].v[i]);
    }
    printf("conditioner: condition in closed form: y %.1e, condition gradient %.1e, "
           "parameters %.1e\n", dy, dc, dp);
    ck_assert_double_le(dy, 1e-5);
    ck_assert_double_le(dc, 1e-5);
    ck_assert_double_le(dp, 1e-5);
    ck_assert_double_gt(rel_diff(gc[0], (float[N * CC]){0}, (size_t)N * CC), 1e-3);

    /* A first convolution that narrows the channels, and a vector network,
     * are not taken. */
    static const fg_net_layer narrow[] = {
        {.kind = FG_NET_CONV, .width = 1, .kernel = 3}, {.kind = FG_NET_RELU},
        {.kind = FG_NET_ZERO_CONV, .kernel = 3}};
    fg_net *nn = fg_net_create("test", narrow, COUNT(narrow), C + CC, 4, 1, &rng);
    fg_graph_reset(g);
    x = fg_const(g, 4, xs);
    ck_assert_ptr_null(fg_net_apply_vector_condition(nn, g, x, cond));
    fg_net_destroy(nn);
    static const fg_net_layer dense[] = {{.kind = FG_NET_DENSE, .width = 4},
                                         {.kind = FG_NET_ZERO_DENSE}};
    nn = fg_net_create("test", dense, COUNT(dense), C + CC, 4, 0, &rng);
    int vs[2] = {N, C};
    ck_assert_ptr_null(fg_net_apply_vector_condition(nn, g, fg_const(g, 2, vs), cond));
    fg_net_destroy(nn);

    fg_leaf_free(cond);
    fg_leaf_free(x_keep);
    fg_net_destroy(net);
    fg_graph_destroy(g);
}
END_TEST

/* ---------------------------------------------------------------- errors */

static void expect_net_error(const fg_net_layer *net, int n, int vectors, const char *want)
{
    fg_rng rng;
    fg_rng_seed(&rng, 1);
    fg_flow *f = vectors
        ? fg_dense_coupling_create(&(fg_dense_coupling_options){
              .dim = 4, .transform = FG_TRANSFORM_ADDITIVE, .rng = &rng, .net = net,
              .net_layers = n})
        : fg_coupling_create(&(fg_coupling_options){
              .channels = 4, .transform = FG_TRANSFORM_ADDITIVE, .rng = &rng, .net = net,
              .net_layers = n});
    ck_assert_ptr_null(f);
    ck_assert_str_eq(fg_last_error(), want);
}

START_TEST(test_network_errors)
{
    const fg_net_layer dense_in_image[] = {{.kind = FG_NET_DENSE, .width = 4},
                                           {.kind = FG_NET_ZERO_CONV}};
    expect_net_error(dense_in_image, 2, 0, "coupling: conditioner module 0 (dense) needs "
                     "vectors, but this coupling works on images (use conv)");
    const fg_net_layer conv_in_vector[] = {{.kind = FG_NET_CONV, .width = 4},
                                           {.kind = FG_NET_ZERO_DENSE}};
    expect_net_error(conv_in_vector, 2, 1, "dense_coupling: conditioner module 0 (conv) "
                     "needs images, but this coupling works on vectors (use dense)");
    const fg_net_layer no_width[] = {{.kind = FG_NET_CONV}, {.kind = FG_NET_ZERO_CONV}};
    expect_net_error(no_width, 2, 0, "coupling: conditioner module 0 (conv) needs a positive "
                     "width, got 0");
    const fg_net_layer kernel5[] = {{.kind = FG_NET_CONV, .width = 4, .kernel = 5},
                                    {.kind = FG_NET_ZERO_CONV}};
    expect_net_error(kernel5, 2, 0, "coupling: conditioner module 0 (conv) has kernel 5 "
                     "(expected 1 or 3)");
    const fg_net_layer no_output[] = {{.kind = FG_NET_CONV, .width = 4}, {.kind = FG_NET_RELU}};
    expect_net_error(no_output, 2, 0, "coupling: conditioner module 1 (relu): the list must "
                     "end in its output module, zero_conv, and have it only there");
    const fg_net_layer early_output[] = {{.kind = FG_NET_ZERO_DENSE}, {.kind = FG_NET_RELU},
                                         {.kind = FG_NET_ZERO_DENSE}};
    expect_net_error(early_output, 3, 1, "dense_coupling: conditioner module 0 (zero_dense): "
                     "the list must end in its output module, zero_dense, and have it only "
                     "there");
    const fg_net_layer bad_act[] = {{.kind = FG_NET_RESIDUAL, .activation = FG_NET_CONV},
                                    {.kind = FG_NET_ZERO_DENSE}};
    expect_net_error(bad_act, 2, 1, "dense_coupling: conditioner module 0 (residual) has "
                     "activation conv (expected relu, tanh, elu or leaky_relu)");
    expect_net_error(no_width, 0, 0, "coupling: a conditioner network needs at least its "
                     "output module");
}
END_TEST

/* The message a function stops with (fg_fatal), read from its stderr in a
 * child process. */
static void stop_message(void (*fn)(void), char *buf, size_t n)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(stdout);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t k = 0;
    ssize_t r;
    while (k + 1 < n && (r = read(fds[0], buf + k, n - 1 - k)) > 0)
        k += (size_t)r;
    buf[k] = '\0';
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(!(WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  "the call did not stop; it printed '%s'", buf);
}

static void run_conditional(const int *cond_shape, int cond_ndim)
{
    fg_rng rng;
    fg_rng_seed(&rng, 2);
    fg_flow *f = fg_coupling_create(&(fg_coupling_options){
        .channels = 4, .hidden = 4, .transform = FG_TRANSFORM_ADDITIVE, .rng = &rng,
        .cond_channels = 3});
    fg_graph *g = fg_graph_create();
    int xs[4] = {2, 4, 4, 4};
    fg_flow_ctx ctx;
    fg_flow_ctx_init(&ctx);
    if (cond_ndim)
        ctx.condition = fg_const(g, cond_ndim, cond_shape);
    fg_flow_forward(f, g, fg_const(g, 4, xs), NULL, &ctx);
}

static void without_condition(void)
{
    run_conditional(NULL, 0);
}

static void with_other_channels(void)
{
    int shape[2] = {2, 5};
    run_conditional(shape, 2);
}

static void with_unpoolable_image(void)
{
    int shape[4] = {2, 3, 6, 6};
    run_conditional(shape, 4);
}

START_TEST(test_condition_errors)
{
    char msg[1024];
    stop_message(without_condition, msg, sizeof msg);
    ck_assert_str_eq(msg, "flowgrad: coupling: the layer takes a condition of 3 channels, but "
                     "the batch came without one (set fg_flow_ctx.condition)\n");
    stop_message(with_other_channels, msg, sizeof msg);
    ck_assert_str_eq(msg, "flowgrad: coupling: the condition (2, 5) gives 5 channels "
                     "(entries), the layer was built for 3\n");
    stop_message(with_unpoolable_image, msg, sizeof msg);
    ck_assert_str_eq(msg, "flowgrad: coupling: the condition (2, 3, 6, 6) cannot be "
                     "pooled to the layer's (2, 2, 4, 4) (its height and width must be whole "
                     "multiples of the layer's)\n");
    fg_rng rng;
    fg_rng_seed(&rng, 3);
    ck_assert_ptr_null(fg_coupling_create(&(fg_coupling_options){
        .channels = 4, .hidden = 4, .rng = &rng, .cond_channels = -1}));
    ck_assert_str_eq(fg_last_error(), "coupling: cond_channels must be 0 (no condition) or "
                     "positive, got -1");
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("conditioner");
    TCase *tc = fg_tcase("conditioner");
    tcase_add_test(tc, test_round_trip_jacobian_gradients);
    tcase_add_test(tc, test_output_follows_condition);
    tcase_add_test(tc, test_default_state_names);
    tcase_add_test(tc, test_default_as_a_list);
    tcase_add_test(tc, test_condition_broadcast_and_pool);
    tcase_add_test(tc, test_activation_values);
    tcase_add_test(tc, test_vector_condition_in_closed_form);
    tcase_add_test(tc, test_network_errors);
    tcase_add_test(tc, test_condition_errors);
    suite_add_tcase(s, tc);
    return s;
}
