/* The rational-quadratic spline op (tensor/rq_spline.c,
 * autograd/ops_spline.c): values and log-derivatives against the float64
 * reference of tests/reference/rq_spline.py (a committed fixture), the
 * inverse against the forward, gradients against finite differences inside
 * bins, on knots, on +-bound and in the tails, all-zero parameters as the
 * identity, and far-out and non-finite inputs.
 *
 * Tolerances. The kernel computes in double and rounds its results to
 * float, so against the reference y and x may differ by the float rounding
 * of the result (2^-24 relative) plus the double error, far below
 * 4e-7 relative to max(1, |value|); log s' likewise below 1e-6 of max(1,
 * |lad|). Gradients: fg_gradcheck in float with step 1e-3, where the float
 * rounding of the loss gives ~1e-4 absolute error in the numerical value;
 * on a knot the second derivative jumps, which adds up to J h / 4 for a
 * jump J, so atol 3e-3 + rtol 1e-2, with raw parameters of N(0, 0.3^2)
 * there to keep J below 10 (steep narrow bins make it thousands, and the
 * central difference at step 1e-3 then misses by 0.4 while one-sided ones
 * converge to the analytic value as the step shrinks). The log-derivative is
 * only continuous at knots (its derivative jumps there), so its gradient
 * is checked at mid-bin points only. */
#include "check_main.h"
#include "flowgrad.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const fg_st_tensor *need(const fg_safetensors *st, const char *name, fg_dtype dtype)
{
    const fg_st_tensor *t = fg_st_find(st, name);
    ck_assert_msg(t != NULL, "rq-spline fixture: missing tensor '%s'", name);
    ck_assert_msg(t->dtype == dtype, "rq-spline fixture: '%s' has dtype %s", name,
                  fg_dtype_name(t->dtype));
    return t;
}

static const char *const KIND_NAMES[4] = {"inside a bin", "on a knot", "tail or +-bound",
                                          "far out (1e6)"};

/* One side of the fixture: the kernel against the reference, worst error
 * per kind of input printed. */
static void check_side(const fg_safetensors *st, const fg_rq_spline *s, int dir)
{
    const char *side = dir > 0 ? "forward" : "inverse";
    char name[64];
    snprintf(name, sizeof name, "%s.v", side);
    const fg_st_tensor *tv = need(st, name, FG_DT_F32);
    snprintf(name, sizeof name, "%s.h", side);
    const fg_st_tensor *th = need(st, name, FG_DT_F32);
    snprintf(name, sizeof name, "%s.kind", side);
    const fg_st_tensor *tk = need(st, name, FG_DT_I32);
    snprintf(name, sizeof name, "expect.%s.%s", side, dir > 0 ? "y" : "x");
    const fg_st_tensor *ty = need(st, name, FG_DT_F64);
    snprintf(name, sizeof name, "expect.%s.lad", side);
    const fg_st_tensor *tl = need(st, name, FG_DT_F64);
    const int M = (int)tv->shape[0], Q = fg_rq_spline_params(s);
    ck_assert_int_eq((int)th->shape[1], Q);
    float *y = fg_xmalloc((size_t)M * sizeof *y, "test"), *lad = fg_xmalloc((size_t)M * sizeof *lad, "test");
    /* M samples of one channel and one position: h is (M, Q, 1). */
    size_t bad = fg_k_rq_spline(s, dir, M, 1, 1, tv->data, th->data, NULL, y, lad);
    ck_assert_uint_eq(bad, 0);
    const float *v = tv->data;
    const int *kind = tk->data;
    const double *ry = ty->data, *rl = tl->data;
    double worst_y[4] = {0}, worst_l[4] = {0};
    int counts[4] = {0};
    for (int i = 0; i < M; i++) {
        double ey = fabs(y[i] - ry[i]) / fmax(1.0, fabs(ry[i]));
        double el = fabs(lad[i] - rl[i]) / fmax(1.0, fabs(rl[i]));
        int k = kind[i];
        ck_assert(k >= 0 && k < 4);
        counts[k]++;
        worst_y[k] = fmax(worst_y[k], ey);
        worst_l[k] = fmax(worst_l[k], el);
        ck_assert_msg(ey <= 4e-7, "%s %d (%s): v = %.9g, got %.9g, reference %.17g", side, i,
                      KIND_NAMES[k], v[i], y[i], ry[i]);
        ck_assert_msg(el <= 1e-6, "%s %d (%s): v = %.9g, log-derivative %.9g, reference "
                      "%.17g", side, i, KIND_NAMES[k], v[i], lad[i], rl[i]);
        if (fabsf(v[i]) > s->bound)
            ck_assert_msg(y[i] == v[i] && lad[i] == 0.0f, "%s %d: a tail must be the identity",
                          side, i);
    }
    for (int k = 0; k < 4; k++) {
        printf("spline: %s vs float64 reference, %2d inputs %-16s max rel err value %.2e, "
               "log-derivative %.2e\n", side, counts[k], KIND_NAMES[k], worst_y[k], worst_l[k]);
        ck_assert_int_gt(counts[k], 0);
    }
    fflush(stdout);
    free(y);
    free(lad);
}

START_TEST(test_against_reference)
{
    char path[1024];
    fg_safetensors st;
    fg_st_init(&st);
    ck_assert_msg(fg_st_read(&st, fg_test_path("tests/fixtures/rq-spline.safetensors", path,
                                               sizeof path)) == FG_OK, "%s", fg_last_error());
    const char *bins = fg_st_get_meta(&st, "bins"), *bound = fg_st_get_meta(&st, "bound");
    ck_assert_ptr_nonnull(bins);
    ck_assert_ptr_nonnull(bound);
    fg_rq_spline s = {atoi(bins), (float)atof(bound)};
    check_side(&st, &s, +1);
    check_side(&st, &s, -1);
    fg_st_free(&st);
}
END_TEST

/* ---------------------------------------------------------------- inverse */

START_TEST(test_round_trip_and_identity)
{
    fg_rng rng;
    fg_rng_seed(&rng, 41);
    const fg_rq_spline s = {8, 3.0f};
    const int N = 512, Q = fg_rq_spline_params(&s);
    float *x = fg_xmalloc(N * sizeof *x, "test"), *h = fg_xmalloc((size_t)N * Q * sizeof *h, "test");
    float *y = fg_xmalloc(N * sizeof *y, "test"), *back = fg_xmalloc(N * sizeof *back, "test");
    float *lf = fg_xmalloc(N * sizeof *lf, "test"), *li = fg_xmalloc(N * sizeof *li, "test");
    fg_rng_normal(&rng, x, N);
    fg_rng_normal(&rng, h, (size_t)N * Q);
    for (int i = 0; i < N; i++)
        x[i] *= 2.0f;                       /* about 13 % in the tails */
    for (size_t i = 0; i < (size_t)N * Q; i++)
        h[i] *= 2.0f;
    fg_k_rq_spline(&s, +1, N, 1, 1, x, h, NULL, y, lf);
    fg_k_rq_spline(&s, -1, N, 1, 1, y, h, NULL, back, li);
    /* y is rounded to float before it is inverted, and x' to float after:
     * the rounding of y (2^-24 |y|) moves x' by that over the slope s'(x),
     * which reaches 1e-4 where a bin is narrow in y, so each point's error
     * is measured in units of that bound. */
    double worst = 0.0, err = 0.0, lerr = 0.0;
    for (int i = 0; i < N; i++) {
        double bound = 0x1p-24 * fmax(fabs(y[i]), 1.0) / exp(lf[i]) + 0x1p-24 * fabs(x[i]);
        worst = fmax(worst, fabs(back[i] - x[i]) / bound);
        err = fmax(err, fabs(back[i] - x[i]));
        lerr = fmax(lerr, fabs(lf[i] - li[i]) * fmin(1.0, exp(lf[i])));
    }
    printf("spline: round trip of %d points max|x' - x| = %.2e (%.2f of the rounding bound), "
           "max|lad_f - lad_i| s' = %.2e\n", N, err, worst, lerr);
    ck_assert_msg(worst <= 2.0, "round trip error %.2f times the rounding bound", worst);
    /* The log-derivative at x' differs from that at x by (log s')' dx,
     * a rounding-sized dx times a slope bounded where s' is not tiny. */
    ck_assert_msg(lerr < 1e-3, "log-derivatives differ by %g", lerr);
    /* All-zero parameters are the identity, inside and out. */
    memset(h, 0, (size_t)N * Q * sizeof *h);
    fg_k_rq_spline(&s, +1, N, 1, 1, x, h, NULL, y, lf);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(fabsf(y[i] - x[i]) <= 1e-6f * fmaxf(1.0f, fabsf(x[i])),
                      "zero parameters moved %g to %g", x[i], y[i]);
        ck_assert_msg(fabsf(lf[i]) < 1e-6f, "zero parameters: log-derivative %g", lf[i]);
    }
    free(x), free(h), free(y), free(back), free(lf), free(li);
}
END_TEST

/* ---------------------------------------------------------------- gradients */

typedef struct spline_ctx {
    fg_rq_spline s;
    int dir;
    fg_var *v, *h, *mask;
    fg_var *w;            /* weights of y in the loss, or NULL */
    float lad_weight;     /* weight of sum log s' (0: none) */
} spline_ctx;

static fg_var *spline_loss(fg_graph *g, void *vctx)
{
    spline_ctx *c = vctx;
    fg_var *lad = NULL;
    fg_var *y = fg_rq_spline_map(g, c->v, c->h, c->mask, &c->s, c->dir,
                                 c->lad_weight != 0.0f ? &lad : NULL);
    fg_var *loss = c->w ? fg_sum(g, fg_mul(g, y, c->w)) : NULL;
    if (lad) {
        fg_var *l = fg_scale(g, fg_sum(g, lad), c->lad_weight);
        loss = loss ? fg_add(g, loss, l) : l;
    }
    return loss;
}

/* N = 3 samples of C = 2 channels at P = 4 positions. The raw parameters
 * are random, except that the widths (forward) or heights (inverse) are
 * all zero, which puts the knots on the input side at -3 + 0.75 k, so that
 * inputs can sit exactly on them. */
enum { GN = 3, GC = 2, GP = 4 };

static void fill_params(fg_rng *rng, const fg_rq_spline *s, int dir, float scale, float *h)
{
    const int K = s->bins, Q = fg_rq_spline_params(s);
    fg_rng_normal(rng, h, (size_t)GN * GC * Q * GP);
    for (int n = 0; n < GN; n++)
        for (int c = 0; c < GC; c++)
            for (int q = 0; q < Q; q++)
                for (int i = 0; i < GP; i++) {
                    float *p = &h[(((size_t)n * GC + c) * Q + q) * GP + i];
                    int zero = dir > 0 ? q < K : (q >= K && q < 2 * K);
                    *p = zero ? 0.0f : scale * *p;
                }
}

static void run_gradcheck(const char *what, spline_ctx *c, const float *values, float scale,
                          int use_y)
{
    int vs[3] = {GN, GC, GP}, hs[3] = {GN, GC * fg_rq_spline_params(&c->s), GP};
    fg_graph *g = fg_graph_create();
    fg_rng rng;
    fg_rng_seed(&rng, 43);
    c->v = fg_leaf_new(3, vs, 1);
    c->h = fg_leaf_new(3, hs, 1);
    memcpy(c->v->t.data, values, sizeof(float) * GN * GC * GP);
    fill_params(&rng, &c->s, c->dir, scale, c->h->t.data);
    fg_var *w = NULL;
    if (use_y) {
        w = fg_leaf_new(3, vs, 0);
        fg_rng_normal(&rng, w->t.data, GN * GC * GP);
    }
    c->w = w;
    fg_var *leaves[2] = {c->v, c->h};
    fg_gradcheck_result r;
    int ok = fg_gradcheck(g, spline_loss, c, leaves, 2, 1e-3, 3e-3, 1e-2, &r);
    printf("spline: gradcheck %-34s %3d elements, max abs err %.2e, max rel err %.2e\n", what,
           r.n_checked, r.max_abs_err, r.max_rel_err);
    fflush(stdout);
    ck_assert_msg(ok, "%s: %d of %d gradient elements fail (worst: %s[%d])", what, r.n_failed,
                  r.n_checked, r.worst_leaf == 0 ? "v" : "h", r.worst_index);
    /* The check would prove little if the loss hardly depended on the
     * parameters: fg_gradcheck leaves the analytic gradient in place. */
    double biggest = 0.0;
    for (size_t i = 0; i < fg_numel(&c->h->t); i++)
        biggest = fmax(biggest, fabs(c->h->grad[i]));
    ck_assert_msg(biggest > 1e-2, "%s: parameter gradients are all tiny (%g)", what, biggest);
    if (w) fg_leaf_free(w);
    fg_leaf_free(c->v);
    fg_leaf_free(c->h);
    fg_graph_destroy(g);
}

START_TEST(test_gradients)
{
    /* Per sample: knots (-2.25, 0, 0.75, 1.5), +-bound, tails (far ones
     * too, though not so far that a float step of 1e-3 is lost), and
     * mid-bin points; the mid-bin set has no input within 0.3
     * of a knot, so finite differences never cross one. */
    static const float edges[GN * GC * GP] = {
        -2.25f, 0.0f, 0.75f, 1.5f,   3.0f, -3.0f, -1.5f, 2.25f,
        -0.75f, 2.25f, -3.0f, 3.0f,  4.5f, -5.0f, 40.0f, -12.0f,
        0.0f, -0.75f, 3.0f, -2.25f,  1.5f, 0.75f, 3.5f, -3.25f};
    static const float inside[GN * GC * GP] = {
        -2.625f, -1.875f, -1.125f, -0.375f,  0.375f, 1.125f, 1.875f, 2.625f,
        -2.5f, 0.3f, 1.2f, 2.1f,             4.5f, -5.0f, 0.45f, -0.4f,
        -1.3f, 2.7f, -2.6f, 1.05f,           -0.35f, 3.5f, -1.0f, 0.4f};
    for (int dir = 1; dir >= -1; dir -= 2) {
        spline_ctx c = {{8, 3.0f}, dir, NULL, NULL, NULL, NULL, 0.0f};
        char what[64];
        snprintf(what, sizeof what, "%s y on knots, +-B, tails", dir > 0 ? "forward" : "inverse");
        run_gradcheck(what, &c, edges, 0.3f, 1);
        c.lad_weight = 0.7f;
        snprintf(what, sizeof what, "%s y + log s' mid-bin, tails", dir > 0 ? "forward" : "inverse");
        run_gradcheck(what, &c, inside, 0.7f, 1);
        snprintf(what, sizeof what, "%s log s' alone", dir > 0 ? "forward" : "inverse");
        run_gradcheck(what, &c, inside, 0.7f, 0);
    }
}
END_TEST

/* A mask of 0 makes an entry the identity and cuts its parameters off. */
START_TEST(test_mask)
{
    fg_rng rng;
    fg_rng_seed(&rng, 44);
    const fg_rq_spline s = {4, 2.0f};
    const int Q = fg_rq_spline_params(&s);
    float v[4] = {0.3f, -0.7f, 1.1f, -1.9f}, h[4 * 11], mask[4] = {1, 0, 1, 0};
    float y[4], lad[4], gv[4] = {0}, gh[4 * 11] = {0}, gy[4] = {1, 1, 1, 1}, gl[1] = {1};
    ck_assert_int_eq(Q, 11);
    fg_rng_normal(&rng, h, 4 * 11);
    fg_k_rq_spline(&s, +1, 1, 4, 1, v, h, mask, y, lad);
    fg_k_rq_spline_backward(&s, +1, 1, 4, 1, v, h, mask, gy, gl, gv, gh);
    for (int c = 0; c < 4; c++) {
        if (mask[c] != 0.0f) {
            ck_assert(y[c] != v[c]);
            continue;
        }
        ck_assert(y[c] == v[c] && lad[c] == 0.0f && gv[c] == 1.0f);
        for (int q = 0; q < Q; q++)
            ck_assert(gh[c * Q + q] == 0.0f);
    }
}
END_TEST

START_TEST(test_far_and_nonfinite)
{
    const fg_rq_spline s = {8, 3.0f};
    const int Q = fg_rq_spline_params(&s);
    float v[6] = {1e6f, -1e6f, 3e38f, NAN, INFINITY, 0.5f}, h[6 * 23], y[6], lad[6], x[6];
    fg_rng rng;
    fg_rng_seed(&rng, 45);
    ck_assert_int_eq(Q, 23);
    fg_rng_normal(&rng, h, 6 * 23);
    for (int dir = 1; dir >= -1; dir -= 2) {
        size_t bad = fg_k_rq_spline(&s, dir, 6, 1, 1, v, h, NULL, y, lad);
        ck_assert_uint_eq(bad, 2);
        for (int i = 0; i < 3; i++)
            ck_assert(y[i] == v[i] && lad[i] == 0.0f);
        ck_assert(isnan(y[3]) && isnan(lad[3]) && isnan(y[4]) && isnan(lad[4]));
        ck_assert(isfinite(y[5]) && isfinite(lad[5]));
    }
    /* Inverse of forward at the far values is exact. */
    fg_k_rq_spline(&s, +1, 3, 1, 1, v, h, NULL, y, lad);
    fg_k_rq_spline(&s, -1, 3, 1, 1, y, h, NULL, x, lad);
    for (int i = 0; i < 3; i++)
        ck_assert(x[i] == v[i]);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("spline");
    TCase *tc = fg_tcase("spline");
    tcase_add_test(tc, test_against_reference);
    tcase_add_test(tc, test_round_trip_and_identity);
    tcase_add_test(tc, test_gradients);
    tcase_add_test(tc, test_mask);
    tcase_add_test(tc, test_far_and_nonfinite);
    suite_add_tcase(s, tc);
    return s;
}
