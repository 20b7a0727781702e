/* nn/: modules against direct loops and finite differences, optimizers
 * against hand-computed steps, checkpoints (round trip, byte layout, hostile
 * files, atomic replacement), data readers on tiny files written here,
 * dequantization and PNG grids read back through libpng. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <math.h>
#include <png.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "check_main.h"
#include "nn/nn.h"
#include "nn/io.h"
#include "nn/distributed.h"
#include "nn/step_guard.h"

/* ---------------------------------------------------------------- helpers */

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fg_test_nn.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

static const char *tmp_path(const char *name, char *buf)
{
    snprintf(buf, 512, "%s/%s", tmpdir, name);
    return buf;
}

static int count_tmp_leftovers(void)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void assert_error_has(const char *needle)
{
    ck_assert_msg(strstr(fg_last_error(), needle) != NULL, "error '%s' lacks '%s'",
                  fg_last_error(), needle);
}

static fg_var *leaf1(int n, const float *vals)
{
    int shape[1] = {n};
    fg_var *v = fg_leaf_new(1, shape, 1);
    memcpy(v->t.data, vals, (size_t)n * sizeof *vals);
    return v;
}

/* ---------------------------------------------------------------- modules */

typedef struct module_ctx {
    int kind;                  /* 0 conv, 1 zero conv, 2 linear */
    fg_conv conv;
    fg_zero_conv zc;
    fg_linear lin;
    float *x, *r;
    int xshape[4], xdim;
    int yn;
} module_ctx;

static fg_var *module_apply(fg_graph *g, module_ctx *c)
{
    fg_var *x = fg_const_wrap(g, c->x, c->xdim, c->xshape);
    if (c->kind == 0)
        return fg_conv_apply(g, &c->conv, x);
    if (c->kind == 1)
        return fg_zero_conv_apply(g, &c->zc, x);
    return fg_linear_apply(g, &c->lin, x);
}

static fg_var *module_loss(fg_graph *g, void *p)
{
    module_ctx *c = p;
    fg_var *y = module_apply(g, c);
    fg_var *r = fg_const_wrap(g, c->r, y->t.ndim, y->t.shape);
    return fg_sum(g, fg_mul(g, y, r));
}

/* Direct convolution, same padding, in double. */
static double conv_at(const float *x, const float *w, const float *b, int ci, int H, int W,
                      int k, int n, int o, int y, int xx)
{
    double s = b ? b[o] : 0.0;
    int p = k / 2;
    for (int c = 0; c < ci; c++)
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                int yy = y + i - p, xj = xx + j - p;
                if (yy < 0 || yy >= H || xj < 0 || xj >= W)
                    continue;
                s += (double)x[((n * ci + c) * H + yy) * W + xj] *
                     w[((o * ci + c) * k + i) * k + j];
            }
    return s;
}

static void fill_uniform(fg_rng *r, float *x, size_t n, float lo, float hi)
{
    fg_rng_uniform(r, x, n);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * x[i];
}

START_TEST(test_conv_module)
{
    fg_rng rng;
    fg_rng_seed(&rng, 11);
    module_ctx c = {0};
    const int N = 2, ci = 3, co = 4, H = 5, W = 4, k = 3;
    fg_conv_init(&c.conv, ci, co, k, 1, 0.3f, &rng);
    fill_uniform(&rng, c.conv.bias->t.data, co, -1, 1);
    c.kind = 0;
    c.xdim = 4;
    c.xshape[0] = N; c.xshape[1] = ci; c.xshape[2] = H; c.xshape[3] = W;
    c.x = malloc(sizeof(float) * N * ci * H * W);
    c.r = malloc(sizeof(float) * N * co * H * W);
    fill_uniform(&rng, c.x, (size_t)N * ci * H * W, -1, 1);
    fill_uniform(&rng, c.r, (size_t)N * co * H * W, -1, 1);

    fg_graph *g = fg_graph_create();
    fg_var *y = module_apply(g, &c);
    ck_assert_int_eq(y->t.ndim, 4);
    ck_assert_int_eq(y->t.shape[1], co);
    double worst = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < co; o++)
            for (int yy = 0; yy < H; yy++)
                for (int xx = 0; xx < W; xx++) {
                    double ref = conv_at(c.x, c.conv.weight->t.data, c.conv.bias->t.data,
                                         ci, H, W, k, n, o, yy, xx);
                    double d = fabs(ref - y->t.data[((n * co + o) * H + yy) * W + xx]);
                    worst = d > worst ? d : worst;
                }
    ck_assert_double_lt(worst, 1e-5);

    fg_state_list l;
    fg_state_list_init(&l);
    fg_conv_visit(&c.conv, "net.0", fg_state_list_add, &l);
    ck_assert_int_eq(l.n, 2);
    ck_assert_str_eq(l.items[0].name, "net.0.weight");
    ck_assert_str_eq(l.items[1].name, "net.0.bias");
    ck_assert_uint_eq(fg_state_list_param_count(&l), (size_t)co * ci * k * k + co);

    fg_var *leaves[2] = {c.conv.weight, c.conv.bias};
    fg_gradcheck_result res;
    ck_assert_msg(fg_gradcheck(g, module_loss, &c, leaves, 2, 1e-2, 2e-3, 1e-3, &res),
                  "conv gradcheck: %d failed, max abs err %g", res.n_failed, res.max_abs_err);
    fg_state_list_free(&l);
    fg_graph_destroy(g);
    fg_conv_free(&c.conv);
    free(c.x);
    free(c.r);
}
END_TEST

START_TEST(test_zero_conv_module)
{
    fg_rng rng;
    fg_rng_seed(&rng, 12);
    module_ctx c = {0};
    const int N = 2, ci = 2, co = 3, H = 4, W = 3, k = 3;
    fg_zero_conv_init(&c.zc, ci, co, k, 3.0f);
    c.kind = 1;
    c.xdim = 4;
    c.xshape[0] = N; c.xshape[1] = ci; c.xshape[2] = H; c.xshape[3] = W;
    size_t nx = (size_t)N * ci * H * W, ny = (size_t)N * co * H * W;
    c.x = malloc(sizeof(float) * nx);
    c.r = malloc(sizeof(float) * ny);
    fill_uniform(&rng, c.x, nx, -2, 2);
    fill_uniform(&rng, c.r, ny, -1, 1);
    fg_graph *g = fg_graph_create();

    /* At creation the output is exactly zero, whatever the input. */
    fg_var *y = module_apply(g, &c);
    for (size_t i = 0; i < ny; i++)
        ck_assert_float_eq(y->t.data[i], 0.0f);
    fg_graph_reset(g);

    /* Away from init: conv(x) * exp(3 logs) per output channel. */
    fill_uniform(&rng, c.zc.conv.weight->t.data, (size_t)co * ci * k * k, -0.5f, 0.5f);
    fill_uniform(&rng, c.zc.conv.bias->t.data, co, -0.5f, 0.5f);
    fill_uniform(&rng, c.zc.logs->t.data, co, -0.2f, 0.2f);
    y = module_apply(g, &c);
    double worst = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < co; o++)
            for (int yy = 0; yy < H; yy++)
                for (int xx = 0; xx < W; xx++) {
                    double ref = conv_at(c.x, c.zc.conv.weight->t.data, c.zc.conv.bias->t.data,
                                         ci, H, W, k, n, o, yy, xx) *
                                 exp(3.0 * c.zc.logs->t.data[o]);
                    double d = fabs(ref - y->t.data[((n * co + o) * H + yy) * W + xx]);
                    worst = d > worst ? d : worst;
                }
    ck_assert_double_lt(worst, 1e-5);
    fg_graph_reset(g);

    fg_state_list l;
    fg_state_list_init(&l);
    fg_zero_conv_visit(&c.zc, "zc", fg_state_list_add, &l);
    ck_assert_int_eq(l.n, 3);
    ck_assert_ptr_eq(fg_state_list_find(&l, "zc.logs")->var, c.zc.logs);
    ck_assert_ptr_nonnull(fg_state_list_find(&l, "zc.weight"));
    ck_assert_ptr_nonnull(fg_state_list_find(&l, "zc.bias"));

    fg_var *leaves[3] = {c.zc.conv.weight, c.zc.conv.bias, c.zc.logs};
    fg_gradcheck_result res;
    ck_assert_msg(fg_gradcheck(g, module_loss, &c, leaves, 3, 1e-2, 2e-3, 2e-3, &res),
                  "zero conv gradcheck: %d failed, max abs err %g", res.n_failed,
                  res.max_abs_err);
    fg_state_list_free(&l);
    fg_graph_destroy(g);
    fg_zero_conv_free(&c.zc);
    free(c.x);
    free(c.r);
}
END_TEST

START_TEST(test_linear_module)
{
    fg_rng rng;
    fg_rng_seed(&rng, 13);
    module_ctx c = {0};
    const int N = 3, in = 5, out = 4;
    fg_linear_init(&c.lin, in, out, 1, 0.5f, &rng);
    fill_uniform(&rng, c.lin.bias->t.data, out, -1, 1);
    c.kind = 2;
    c.xdim = 2;
    c.xshape[0] = N; c.xshape[1] = in;
    c.x = malloc(sizeof(float) * N * in);
    c.r = malloc(sizeof(float) * N * out);
    fill_uniform(&rng, c.x, (size_t)N * in, -1, 1);
    fill_uniform(&rng, c.r, (size_t)N * out, -1, 1);
    fg_graph *g = fg_graph_create();
    fg_var *y = module_apply(g, &c);
    ck_assert_int_eq(y->t.shape[0], N);
    ck_assert_int_eq(y->t.shape[1], out);
    const float *Wt = c.lin.weight->t.data, *b = c.lin.bias->t.data;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) {
            double s = b[o];
            for (int i = 0; i < in; i++)
                s += (double)c.x[n * in + i] * Wt[o * in + i];
            ck_assert_double_eq_tol(y->t.data[n * out + o], s, 1e-5);
        }
    fg_graph_reset(g);
    fg_var *leaves[2] = {c.lin.weight, c.lin.bias};
    fg_gradcheck_result res;
    ck_assert_msg(fg_gradcheck(g, module_loss, &c, leaves, 2, 1e-2, 2e-3, 1e-3, &res),
                  "linear gradcheck: %d failed, max abs err %g", res.n_failed, res.max_abs_err);
    fg_graph_destroy(g);
    fg_linear_free(&c.lin);
    free(c.x);
    free(c.r);
}
END_TEST

START_TEST(test_name_join)
{
    char buf[FG_NAME_LEN];
    ck_assert_str_eq(fg_name_join(buf, sizeof buf, "flow.3", "weight"), "flow.3.weight");
    ck_assert_str_eq(fg_name_join(buf, sizeof buf, "", "weight"), "weight");
    ck_assert_str_eq(fg_name_join(buf, sizeof buf, NULL, "logs"), "logs");
}
END_TEST

/* ---------------------------------------------------------------- state lists */

START_TEST(test_state_list_ops)
{
    const float a0[2] = {1, 2}, b0[1] = {5};
    fg_var *a = leaf1(2, a0), *b = leaf1(1, b0);
    fg_state_list l;
    fg_state_list_init(&l);
    fg_state_list_add(&l, "a", a, FG_PARAM);
    fg_state_list_add(&l, "b", b, FG_PARAM);
    int fshape[1] = {3};
    fg_var *flag = fg_leaf_new(1, fshape, 0);
    fg_state_list_add(&l, "flag", flag, FG_BUFFER);
    ck_assert_uint_eq(fg_state_list_param_count(&l), 3);
    ck_assert_ptr_eq(fg_state_list_find(&l, "b")->var, b);
    ck_assert_ptr_null(fg_state_list_find(&l, "c"));

    /* Gradients (3, 4) and (12): global norm 13. */
    a->grad[0] = 3; a->grad[1] = 4; b->grad[0] = 12;
    ck_assert_double_eq_tol(fg_state_list_grad_norm(&l), 13.0, 1e-12);
    ck_assert_double_eq_tol(fg_state_list_clip_grad_norm(&l, 20.0), 13.0, 1e-12);
    ck_assert_float_eq(a->grad[0], 3.0f);   /* under the limit: unchanged */
    ck_assert_double_eq_tol(fg_state_list_clip_grad_norm(&l, 6.5), 13.0, 1e-12);
    ck_assert_float_eq_tol(a->grad[0], 1.5f, 1e-6);
    ck_assert_float_eq_tol(a->grad[1], 2.0f, 1e-6);
    ck_assert_float_eq_tol(b->grad[0], 6.0f, 1e-6);
    ck_assert_double_eq_tol(fg_state_list_grad_norm(&l), 6.5, 1e-5);

    ck_assert_int_eq(fg_state_list_check_finite(&l, 1), FG_OK);
    b->grad[0] = INFINITY;
    ck_assert_int_eq(fg_state_list_check_finite(&l, 0), FG_OK);
    ck_assert_int_eq(fg_state_list_check_finite(&l, 1), FG_ERR);
    assert_error_has("gradient in 'b'");
    fg_state_list_zero_grad(&l);
    ck_assert_float_eq(b->grad[0], 0.0f);
    ck_assert_float_eq(a->grad[1], 0.0f);
    flag->t.data[2] = NAN;
    ck_assert_int_eq(fg_state_list_check_finite(&l, 1), FG_ERR);
    assert_error_has("'flag'");

    /* Copy by name, shapes checked. */
    const float c0[2] = {7, 8}, d0[1] = {9};
    fg_var *c = leaf1(2, c0), *d = leaf1(1, d0);
    fg_state_list src;
    fg_state_list_init(&src);
    fg_state_list_add(&src, "b", d, FG_PARAM);
    fg_state_list_add(&src, "a", c, FG_PARAM);
    fg_state_list dst;
    fg_state_list_init(&dst);
    fg_state_list_add(&dst, "a", a, FG_PARAM);
    fg_state_list_add(&dst, "b", b, FG_PARAM);
    ck_assert_int_eq(fg_state_list_copy_values(&dst, &src), FG_OK);
    ck_assert_float_eq(a->t.data[1], 8.0f);
    ck_assert_float_eq(b->t.data[0], 9.0f);
    ck_assert_int_eq(fg_state_list_copy_values(&l, &src), FG_ERR);
    assert_error_has("'flag' missing");
    fg_state_list_free(&src);
    fg_state_list_init(&src);
    fg_state_list_add(&src, "a", d, FG_PARAM);
    fg_state_list_add(&src, "b", d, FG_PARAM);
    ck_assert_int_eq(fg_state_list_copy_values(&dst, &src), FG_ERR);
    assert_error_has("'a' has shape (2)");

    fg_state_list_free(&src);
    fg_state_list_free(&dst);
    fg_state_list_free(&l);
    fg_leaf_free(a); fg_leaf_free(b); fg_leaf_free(c); fg_leaf_free(d); fg_leaf_free(flag);
}
END_TEST

/* ---------------------------------------------------------------- optimizers */

/* Adam and Adamax in double, straight from the paper's algorithms. */
static void ref_step(int adamax, double *p, const double *g, double *m, double *v, int n,
                     double lr, double b1, double b2, double eps, int t)
{
    for (int i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        if (adamax) {
            v[i] = fmax(b2 * v[i], fabs(g[i]) + eps);
            p[i] -= lr / (1 - pow(b1, t)) * m[i] / v[i];
        } else {
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
            double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
            p[i] -= lr * mh / (sqrt(vh) + eps);
        }
    }
}

static void check_optimizer(fg_optim_kind kind)
{
    const float p0[3] = {0.5f, -1.0f, 2.0f};
    fg_var *p = leaf1(3, p0);
    fg_state_list l;
    fg_state_list_init(&l);
    fg_state_list_add(&l, "w", p, FG_PARAM);
    fg_optim o;
    const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    fg_optim_init(&o, kind, &l, b1, b2, eps);

    /* Step 1 by hand: the bias-corrected first step is lr * g / (|g| + eps)
     * for both algorithms, i.e. lr * sign(g). */
    const float g1[3] = {0.1f, -0.2f, 0.0f};
    memcpy(p->grad, g1, sizeof g1);
    fg_optim_step(&o, lr);
    ck_assert_int_eq(o.step, 1);
    ck_assert_float_eq_tol(p->t.data[0], 0.5f - 0.01f, 1e-6);
    ck_assert_float_eq_tol(p->t.data[1], -1.0f + 0.01f, 1e-6);
    ck_assert_float_eq(p->t.data[2], 2.0f);   /* zero gradient: no move */

    /* Several steps against the double-precision reference. */
    double rp[3] = {0.5, -1.0, 2.0}, rm[3] = {0}, rv[3] = {0};
    double gd[3] = {g1[0], g1[1], g1[2]};
    ref_step(kind == FG_ADAMAX, rp, gd, rm, rv, 3, lr, b1, b2, eps, 1);
    const float gs[4][3] = {{0.3f, 0.05f, -0.4f}, {-0.1f, 0.2f, 0.1f},
                            {0.02f, -0.3f, 0.25f}, {0.5f, 0.0f, -0.05f}};
    for (int t = 0; t < 4; t++) {
        memcpy(p->grad, gs[t], sizeof gs[t]);
        for (int i = 0; i < 3; i++)
            gd[i] = gs[t][i];
        fg_optim_step(&o, lr);
        ref_step(kind == FG_ADAMAX, rp, gd, rm, rv, 3, lr, b1, b2, eps, t + 2);
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_double_eq_tol(p->t.data[i], rp[i], 2e-6);
        ck_assert_double_eq_tol(o.m[0]->t.data[i], rm[i], 1e-7);
        ck_assert_double_eq_tol(o.v[0]->t.data[i], rv[i], 1e-7);
    }

    fg_state_list ol;
    fg_state_list_init(&ol);
    fg_optim_visit(&o, fg_state_list_add, &ol);
    ck_assert_int_eq(ol.n, 2);
    ck_assert_str_eq(ol.items[0].name, "optim.m.w");
    ck_assert_str_eq(ol.items[1].name, "optim.v.w");
    ck_assert_int_eq(ol.items[0].kind, FG_BUFFER);
    fg_state_list_free(&ol);
    fg_optim_free(&o);
    fg_state_list_free(&l);
    fg_leaf_free(p);
}

START_TEST(test_adam) { check_optimizer(FG_ADAM); }
END_TEST

START_TEST(test_adamax) { check_optimizer(FG_ADAMAX); }
END_TEST

START_TEST(test_optim_names)
{
    fg_optim_kind k;
    ck_assert_int_eq(fg_optim_kind_parse("adamax", &k), FG_OK);
    ck_assert_int_eq(k, FG_ADAMAX);
    ck_assert_str_eq(fg_optim_kind_name(FG_ADAM), "adam");
    ck_assert_int_eq(fg_optim_kind_parse("sgd", &k), FG_ERR);
    assert_error_has("expected adam or adamax");
}
END_TEST

START_TEST(test_warmup)
{
    ck_assert_double_eq_tol(fg_lr_warmup(1e-3, 1, 10), 1e-4, 1e-15);
    ck_assert_double_eq_tol(fg_lr_warmup(1e-3, 5, 10), 5e-4, 1e-15);
    ck_assert_double_eq(fg_lr_warmup(1e-3, 10, 10), 1e-3);
    ck_assert_double_eq(fg_lr_warmup(1e-3, 500, 10), 1e-3);
    ck_assert_double_eq(fg_lr_warmup(1e-3, 1, 0), 1e-3);
    ck_assert_double_eq(fg_lr_warmup(1e-3, 0, 10), 0.0);
}
END_TEST

START_TEST(test_schedule)
{
    /* Warmup is the same under every schedule. */
    for (int k = 0; k < 3; k++)
        ck_assert_double_eq_tol(fg_lr_schedule((fg_schedule_kind)k, 1e-3, 5, 10, 110), 5e-4,
                                1e-15);
    ck_assert_double_eq(fg_lr_schedule(FG_SCHEDULE_CONSTANT, 1e-3, 110, 10, 110), 1e-3);
    /* Decay over the 100 updates after warmup, divided in 101 parts: update
     * 10 has the full rate, the midpoint half of it, the last 1/101. */
    ck_assert_double_eq(fg_lr_schedule(FG_SCHEDULE_COSINE, 1e-3, 10, 10, 110), 1e-3);
    ck_assert_double_eq(fg_lr_schedule(FG_SCHEDULE_LINEAR, 1e-3, 10, 10, 110), 1e-3);
    ck_assert_double_eq_tol(fg_lr_schedule(FG_SCHEDULE_LINEAR, 1e-3, 60, 10, 110),
                            1e-3 * (1 - 50.0 / 101), 1e-15);
    ck_assert_double_eq_tol(fg_lr_schedule(FG_SCHEDULE_COSINE, 1e-3, 60, 10, 110),
                            1e-3 * 0.5 * (1 + cos(M_PI * 50.0 / 101)), 1e-15);
    ck_assert_double_eq_tol(fg_lr_schedule(FG_SCHEDULE_LINEAR, 1e-3, 110, 10, 110),
                            1e-3 / 101, 1e-15);
    double last = fg_lr_schedule(FG_SCHEDULE_COSINE, 1e-3, 110, 10, 110);
    ck_assert(last > 0 && last < 1e-6);
    /* Monotone after warmup; steps past the end stay at 0, never negative. */
    for (long t = 11; t <= 110; t++)
        ck_assert(fg_lr_schedule(FG_SCHEDULE_COSINE, 1e-3, t, 10, 110) <
                  fg_lr_schedule(FG_SCHEDULE_COSINE, 1e-3, t - 1, 10, 110));
    ck_assert_double_eq(fg_lr_schedule(FG_SCHEDULE_LINEAR, 1e-3, 500, 10, 110), 0.0);
    ck_assert_str_eq(fg_schedule_name(FG_SCHEDULE_COSINE), "cosine");
}
END_TEST

/* Deterministic noise, uniform in [-amp, amp] and uncorrelated from one i
 * to the next (the usual sine hash): batch-to-batch scatter. */
static double noisy(int i, double amp)
{
    double h = sin(i * 12.9898 + 1.0) * 43758.5453;
    return amp * (2 * (h - floor(h)) - 1);
}

START_TEST(test_step_guard_spike)
{
    fg_step_guard g;
    fg_step_guard_init(&g, 50, 10, 8, 4);
    /* Warmup: even an absurd value is taken and nothing is clipped. */
    ck_assert_double_eq(fg_step_guard_clip(&g), 0);
    ck_assert_int_eq(fg_step_guard_judge(&g, 1e6, 1e9), FG_GUARD_ACCEPT);
    for (int i = 0; i < 100; i++) {
        double loss = 6 - 0.005 * i + noisy(i, 0.1), norm = 10 * exp(noisy(i + 7, 0.3));
        ck_assert_int_eq(fg_step_guard_judge(&g, loss, norm), FG_GUARD_ACCEPT);
        fg_step_guard_accept(&g, loss, norm);
    }
    /* The spike: 14 bits/dim and a norm of 1732 after ~5.5 and ~10. */
    ck_assert_int_eq(fg_step_guard_judge(&g, 14.3, 1732), FG_GUARD_LOSS | FG_GUARD_NORM);
    ck_assert_int_eq(fg_step_guard_judge(&g, 5.6, 1732), FG_GUARD_NORM);
    ck_assert_int_eq(fg_step_guard_judge(&g, 14.3, 10), FG_GUARD_LOSS);
    /* A 2 bits/dim jump of a falling loss (fashion-mnist additive, seed 3,
     * step 157: 8.52 after 6.4-6.5) is one, though the window spans more. */
    ck_assert_int_eq(fg_step_guard_judge(&g, 5.5 + 2, 10), FG_GUARD_LOSS);
    /* Ordinary noise, and a norm 3x the median, are not outliers. */
    ck_assert_int_eq(fg_step_guard_judge(&g, 5.8, 30), FG_GUARD_ACCEPT);
    /* A fall is never an outlier. */
    ck_assert_int_eq(fg_step_guard_judge(&g, 0.5, 0.01), FG_GUARD_ACCEPT);
    /* clip_factor 4 times the median norm (about 10). */
    double clip = fg_step_guard_clip(&g);
    ck_assert_msg(clip > 35 && clip < 45, "clip %g", clip);
    fg_step_guard_reject(&g, FG_GUARD_LOSS | FG_GUARD_NORM);
    ck_assert_int_eq(g.skipped, 1);
    ck_assert_int_eq(g.by_loss, 1);
    ck_assert_int_eq(g.by_norm, 1);
    ck_assert_int_eq(g.run, 1);
    /* Each rejection halves the rate's factor, down to 1/64; each accepted
     * step raises it by 10 %, up to 1. */
    ck_assert_float_eq(g.lr_scale, 0.5f);
    for (int i = 0; i < 10; i++)
        fg_step_guard_reject(&g, FG_GUARD_LOSS);
    ck_assert_float_eq(g.lr_scale, 1.0f / 64);
    fg_step_guard_accept(&g, 5.5, 10);
    ck_assert_float_eq(g.lr_scale, 1.1f / 64);
    for (int i = 0; i < 60; i++)
        fg_step_guard_accept(&g, 5.5, 10);
    ck_assert_float_eq(g.lr_scale, 1.0f);
    /* The window did not take the spike in: the next one is judged alike. */
    ck_assert_int_eq(fg_step_guard_judge(&g, 14.3, 1732), FG_GUARD_LOSS | FG_GUARD_NORM);
    fg_step_guard_restart(&g);
    ck_assert_int_eq(fg_step_guard_judge(&g, 14.3, 1732), FG_GUARD_ACCEPT);
    ck_assert_double_eq(fg_step_guard_clip(&g), 0);
}
END_TEST

START_TEST(test_step_guard_steady_rise)
{
    /* A loss that climbs 0.02 bits/dim a step (4 bits/dim over the run)
     * and norms that double every 50 steps: drift, not outliers. */
    fg_step_guard g;
    fg_step_guard_init(&g, 50, 10, 8, 0);
    for (int i = 0; i < 200; i++) {
        double loss = 4 + 0.02 * i + noisy(i, 0.05), norm = 5 * exp2(i / 50.0);
        ck_assert_msg(fg_step_guard_judge(&g, loss, norm) == FG_GUARD_ACCEPT, "step %d", i);
        fg_step_guard_accept(&g, loss, norm);
    }
    ck_assert_int_eq(g.skipped, 0);
    ck_assert_double_eq(fg_step_guard_clip(&g), 0); /* clip_factor 0: off */
    /* Constant values: the floors keep tiny changes from being outliers. */
    fg_step_guard_init(&g, 20, 5, 8, 2);
    for (int i = 0; i < 20; i++)
        fg_step_guard_accept(&g, 3.0, 7.0);
    ck_assert_int_eq(fg_step_guard_judge(&g, 3.7, 7.7), FG_GUARD_ACCEPT);
    ck_assert_int_eq(fg_step_guard_judge(&g, 3.9, 7.0), FG_GUARD_LOSS);
    /* The measured warmup climb of fmnist-quick, 3 -> 25, is not an
     * outlier; 60 times the median is. */
    ck_assert_int_eq(fg_step_guard_judge(&g, 3.0, 7.0 * 25 / 3), FG_GUARD_ACCEPT);
    ck_assert_int_eq(fg_step_guard_judge(&g, 3.0, 7.0 * 60), FG_GUARD_NORM);
    ck_assert_double_eq_tol(fg_step_guard_clip(&g), 14.0, 1e-5);
}
END_TEST

START_TEST(test_step_guard_state)
{
    fg_step_guard a, b;
    fg_step_guard_init(&a, 16, 4, 8, 4);
    fg_step_guard_init(&b, 16, 4, 8, 4);
    for (int i = 0; i < 21; i++)
        fg_step_guard_accept(&a, 5 + noisy(i, 0.1), 3 + i);
    fg_step_guard_reject(&a, FG_GUARD_NORM);
    int n = fg_step_guard_state_len(&a);
    int64_t s[9 + 32], bad[9 + 32];
    ck_assert_int_eq(n, 9 + 32);
    fg_step_guard_save(&a, s);
    ck_assert_int_eq(fg_step_guard_load(&b, s, n), FG_OK);
    ck_assert_int_eq(b.n, a.n);
    ck_assert_int_eq(b.head, a.head);
    ck_assert_int_eq(b.by_norm, 1);
    ck_assert_mem_eq(b.loss, a.loss, sizeof(float) * 16);
    ck_assert_double_eq(fg_step_guard_clip(&b), fg_step_guard_clip(&a));
    ck_assert_float_eq(b.lr_scale, 0.5f);
    /* Another window, a bad counter, a non-finite value: refused, b kept. */
    fg_step_guard c;
    fg_step_guard_init(&c, 8, 4, 8, 4);
    ck_assert_int_eq(fg_step_guard_load(&c, s, n), FG_ERR);
    assert_error_has("guard_window is 8");
    memcpy(bad, s, sizeof s);
    bad[2] = 16;
    ck_assert_int_eq(fg_step_guard_load(&b, bad, n), FG_ERR);
    memcpy(bad, s, sizeof s);
    float inf = INFINITY;
    uint32_t u;
    memcpy(&u, &inf, 4);
    bad[9 + 20] = u;
    ck_assert_int_eq(fg_step_guard_load(&b, bad, n), FG_ERR);
    assert_error_has("not a finite float");
    ck_assert_mem_eq(b.log_norm, a.log_norm, sizeof(float) * 16);
}
END_TEST

START_TEST(test_snapshot)
{
    const float p0[2] = {1.0f, -2.0f};
    fg_var *p = leaf1(2, p0);
    fg_state_list l;
    fg_state_list_init(&l);
    fg_state_list_add(&l, "w", p, FG_PARAM);
    long counter = 3;
    fg_snapshot s;
    fg_snapshot_init(&s, &l, &counter);
    ck_assert_int_eq(fg_snapshot_restore(&s), 0); /* nothing taken yet */
    fg_snapshot_take(&s);
    p->t.data[0] = 9.0f;
    counter = 4;
    ck_assert_int_eq(fg_snapshot_restore(&s), 1);
    ck_assert_float_eq(p->t.data[0], 1.0f);
    ck_assert_float_eq(p->t.data[1], -2.0f);
    ck_assert_int_eq(counter, 3);
    p->t.data[0] = 5.0f;
    ck_assert_int_eq(fg_snapshot_restore(&s), 0); /* once only */
    ck_assert_float_eq(p->t.data[0], 5.0f);
    fg_snapshot_free(&s);
    fg_state_list_free(&l);
    fg_leaf_free(p);
}
END_TEST

START_TEST(test_ema)
{
    const float p0[2] = {1.0f, -2.0f};
    fg_var *p = leaf1(2, p0);
    fg_state_list l;
    fg_state_list_init(&l);
    fg_state_list_add(&l, "w", p, FG_PARAM);
    fg_ema e;
    fg_ema_init(&e, &l, 0.9);
    p->t.data[0] = 2.0f; p->t.data[1] = 0.0f;
    fg_ema_update(&e);                        /* 0.9*1 + 0.1*2 = 1.1; -1.8 */
    p->t.data[0] = 3.0f; p->t.data[1] = 1.0f;
    fg_ema_update(&e);                        /* 0.9*1.1 + 0.3 = 1.29; -1.52 */
    ck_assert_float_eq_tol(e.shadow[0]->t.data[0], 1.29f, 1e-6);
    ck_assert_float_eq_tol(e.shadow[0]->t.data[1], -1.52f, 1e-6);
    fg_ema_swap(&e);
    ck_assert_float_eq_tol(p->t.data[0], 1.29f, 1e-6);
    ck_assert_float_eq_tol(p->t.data[1], -1.52f, 1e-6);
    fg_ema_swap(&e);
    ck_assert_float_eq(p->t.data[0], 3.0f);
    ck_assert_float_eq(p->t.data[1], 1.0f);
    fg_state_list el;
    fg_state_list_init(&el);
    fg_ema_visit(&e, fg_state_list_add, &el);
    ck_assert_str_eq(el.items[0].name, "ema.w");
    fg_state_list_free(&el);
    fg_ema_free(&e);
    fg_state_list_free(&l);
    fg_leaf_free(p);
}
END_TEST

/* ---------------------------------------------------------------- safetensors */

/* A file from a header text and a data buffer, with the header padded to a
 * multiple of 8 by spaces, as our writer does. */
static unsigned char *build_file(const char *header, const void *data, size_t ndata,
                                 size_t *len)
{
    size_t h = strlen(header), hp = (h + 7) / 8 * 8;
    *len = 8 + hp + ndata;
    unsigned char *b = malloc(*len);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hp >> (8 * i));
    memcpy(b + 8, header, h);
    memset(b + 8 + h, ' ', hp - h);
    if (ndata)
        memcpy(b + 8 + hp, data, ndata);
    return b;
}

START_TEST(test_st_byte_layout)
{
    make_tmpdir();
    char path[512];
    fg_safetensors st;
    fg_st_init(&st);
    const float w[2] = {1.5f, -2.0f};
    int64_t wshape[1] = {2};
    fg_st_add(&st, "w", FG_DT_F32, 1, wshape, w, 0);
    const int64_t s[1] = {7};
    fg_st_add_i64(&st, "step", s, 1);
    fg_st_set_meta(&st, "k", "v");
    ck_assert_int_eq(fg_st_write(&st, tmp_path("a.safetensors", path)), FG_OK);
    fg_st_free(&st);

    /* Hand-built: metadata first, then entries by decreasing element size
     * (the I64 before the F32), offsets relative to the data buffer. */
    const char *hdr = "{\"__metadata__\":{\"k\":\"v\"},"
                      "\"step\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                      "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}";
    unsigned char data[16];
    const unsigned char step_le[8] = {7, 0, 0, 0, 0, 0, 0, 0};
    const unsigned char w_le[8] = {0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x00, 0xC0};
    memcpy(data, step_le, 8);
    memcpy(data + 8, w_le, 8);
    size_t elen, glen;
    unsigned char *expect = build_file(hdr, data, 16, &elen);
    unsigned char *got = slurp(path, &glen);
    ck_assert_uint_eq(glen, elen);
    ck_assert_uint_eq((glen - 16) % 8, 0);
    ck_assert_int_eq(memcmp(got, expect, elen), 0);
    ck_assert_int_eq(count_tmp_leftovers(), 0);
    free(expect);
    free(got);
    remove_tmpdir();
}
END_TEST

START_TEST(test_st_round_trip)
{
    make_tmpdir();
    char path[512];
    fg_safetensors st;
    fg_st_init(&st);
    float a[6] = {1, -2, 3.25f, 1e-30f, -0.0f, 65504};
    int64_t sa[2] = {2, 3};
    fg_st_add(&st, "layer.0.weight", FG_DT_F32, 2, sa, a, 1);
    double dv[2] = {0.1, -1e300};
    int64_t sd[1] = {2};
    fg_st_add(&st, "rng.double", FG_DT_F64, 1, sd, dv, 0);
    int32_t perm[4] = {3, 1, 0, 2};
    int64_t sp[1] = {4};
    fg_st_add(&st, "perm", FG_DT_I32, 1, sp, perm, 0);
    int64_t big[2] = {INT64_MIN, 1234567890123LL};
    fg_st_add_i64(&st, "counters", big, 2);
    int32_t scalar = 42;
    fg_st_add(&st, "scalar", FG_DT_I32, 0, NULL, &scalar, 0);
    int64_t se[2] = {0, 4};
    fg_st_add(&st, "empty", FG_DT_F32, 2, se, NULL, 0);
    uint8_t bytes[3] = {0, 128, 255};
    int64_t sb[1] = {3};
    fg_st_add(&st, "bytes \"quoted\"", FG_DT_U8, 1, sb, bytes, 0);
    const char *cfg = "model:\n  name: \"glow\"\\path\ttab\x01 caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80";
    fg_st_set_meta(&st, "config", cfg);
    fg_st_set_meta(&st, "empty", "");
    ck_assert_int_eq(fg_st_write(&st, tmp_path("r.safetensors", path)), FG_OK);
    fg_st_free(&st);

    fg_safetensors rd;
    ck_assert_int_eq(fg_st_read(&rd, path), FG_OK);
    ck_assert_int_eq(rd.n, 7);
    ck_assert_int_eq(rd.n_meta, 2);
    ck_assert_str_eq(fg_st_get_meta(&rd, "config"), cfg);
    ck_assert_str_eq(fg_st_get_meta(&rd, "empty"), "");
    const fg_st_tensor *t = fg_st_find(&rd, "layer.0.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, FG_DT_F32);
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], 2);
    ck_assert_int_eq(t->shape[1], 3);
    ck_assert_int_eq(memcmp(t->data, a, sizeof a), 0);
    t = fg_st_find(&rd, "rng.double");
    ck_assert_int_eq(t->dtype, FG_DT_F64);
    ck_assert_int_eq(memcmp(t->data, dv, sizeof dv), 0);
    t = fg_st_find(&rd, "perm");
    ck_assert_int_eq(t->dtype, FG_DT_I32);
    ck_assert_int_eq(memcmp(t->data, perm, sizeof perm), 0);
    int64_t back[2];
    ck_assert_int_eq(fg_st_get_i64(&rd, "counters", back, 2), FG_OK);
    ck_assert(back[0] == INT64_MIN && back[1] == 1234567890123LL);
    t = fg_st_find(&rd, "scalar");
    ck_assert_int_eq(t->ndim, 0);
    ck_assert_int_eq(*(int32_t *)t->data, 42);
    t = fg_st_find(&rd, "empty");
    ck_assert_int_eq(t->nbytes, 0);
    ck_assert_int_eq(t->shape[0], 0);
    t = fg_st_find(&rd, "bytes \"quoted\"");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(memcmp(t->data, bytes, 3), 0);

    /* Unicode escapes written by another writer decode to the same text. */
    fg_st_free(&rd);
    size_t len;
    unsigned char *f = build_file("{\"__metadata__\":{\"s\":\"caf\\u00e9 \\u2603 \\ud83d\\ude00 "
                                  "\\\"q\\\" \\n\\/\"}}", NULL, 0, &len);
    ck_assert_int_eq(fg_st_parse(&rd, f, len, "mem"), FG_OK);
    ck_assert_str_eq(fg_st_get_meta(&rd, "s"),
                     "caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80 \"q\" \n/");
    ck_assert_int_eq(rd.n, 0);
    fg_st_free(&rd);
    free(f);
    remove_tmpdir();
}
END_TEST

static void expect_reject(const char *header, const void *data, size_t ndata, const char *needle)
{
    size_t len;
    unsigned char *f = build_file(header, data, ndata, &len);
    fg_safetensors st;
    ck_assert_msg(fg_st_parse(&st, f, len, "bad.safetensors") == FG_ERR,
                  "accepted: %s", header);
    ck_assert_int_eq(st.n, 0);
    assert_error_has("bad.safetensors: ");
    assert_error_has(needle);
    free(f);
}

START_TEST(test_st_reject)
{
    unsigned char d[16] = {0};
    const char *T = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    /* Valid baseline, so the rejections below are about their one defect. */
    size_t len;
    unsigned char *ok = build_file(T, d, 8, &len);
    fg_safetensors st;
    ck_assert_int_eq(fg_st_parse(&st, ok, len, "ok"), FG_OK);
    fg_st_free(&st);

    /* Truncations: inside the length, inside the header, inside the data. */
    ck_assert_int_eq(fg_st_parse(&st, ok, 5, "bad.safetensors"), FG_ERR);
    assert_error_has("too short");
    ck_assert_int_eq(fg_st_parse(&st, ok, 20, "bad.safetensors"), FG_ERR);
    assert_error_has("runs past the end");
    ck_assert_int_eq(fg_st_parse(&st, ok, len - 3, "bad.safetensors"), FG_ERR);
    assert_error_has("tensor 'a': shape needs more bytes than the 5 of the data buffer");
    /* Header length beyond the cap, and one just past EOF. */
    unsigned char *bad = malloc(len);
    memcpy(bad, ok, len);
    bad[5] = 1;                      /* 2^40 + ... */
    ck_assert_int_eq(fg_st_parse(&st, bad, len, "bad.safetensors"), FG_ERR);
    assert_error_has("exceeds");
    memcpy(bad, ok, len);
    bad[0] = (unsigned char)(len - 7);
    ck_assert_int_eq(fg_st_parse(&st, bad, len, "bad.safetensors"), FG_ERR);
    assert_error_has("runs past the end");
    free(bad);
    free(ok);

    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],}}", d, 8,
                  "header: byte");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}x", d, 8,
                  "after the JSON value");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", d, 8,
                  "expected ',' or '}'");
    expect_reject("[1,2]", d, 0, "starting with '{'");
    expect_reject("{\"a\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8,
                  "unsupported dtype \"F17\"");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", d, 8,
                  "outside the data buffer");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", d, 8,
                  "outside the data buffer");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", d, 8,
                  "span 8 bytes, dtype and shape need 4");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8,
                  "shape needs more bytes than the 8");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 12,
                  "overlaps");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", d, 12,
                  "leaves a hole");
    expect_reject(T, d, 12, "cover 8 bytes of a 12-byte");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", d, 8,
                  "shape[0]");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", d, 8,
                  "shape[0]");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                  "\"data_offsets\":[0,8]}}", d, 8, "more bytes");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,"
                  "18446744073709551624]}}", d, 8, "data_offsets must be");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", d, 8, "expected dtype");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}",
                  d, 8, "unknown field");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8,
                  "duplicate key");
    expect_reject("{\"__metadata__\":{\"n\":1}}", d, 0, "not a string");
    expect_reject("{\"__metadata__\":{\"n\":\"\\u0000\"}}", d, 0, "\\u0000");
    expect_reject("{\"__metadata__\":{\"n\":\"\\ud800\"}}", d, 0, "surrogate");
    expect_reject("{\"__metadata__\":{\"n\":\"a\tb\"}}", d, 0, "control character");
    expect_reject("{\"__metadata__\":{\"n\":\"\xc3\x28\"}}", d, 0, "UTF-8");
    char deep[256] = "{\"__metadata__\":";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    for (int i = 0; i < 40; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    expect_reject(deep, d, 0, "nesting deeper");
}
END_TEST

/* Random byte flips and truncations of a valid file: each is accepted with
 * consistent entries or rejected with a message, never a crash (this test
 * earns its keep under the sanitizer build). */
START_TEST(test_st_mutations)
{
    fg_safetensors st;
    fg_st_init(&st);
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t sa[2] = {2, 3}, s1[1] = {2};
    fg_st_add(&st, "a", FG_DT_F32, 2, sa, a, 0);
    int64_t c[2] = {5, 6};
    fg_st_add(&st, "c", FG_DT_I64, 1, s1, c, 0);
    fg_st_set_meta(&st, "k", "v\"w");
    char *buf;
    size_t len;
    FILE *mem = open_memstream(&buf, &len);
    ck_assert_int_eq(fg_st_write_stream(&st, mem, "mem"), FG_OK);
    fclose(mem);
    fg_st_free(&st);
    fg_rng r;
    fg_rng_seed(&r, 2024);
    unsigned char *m = malloc(len);
    int accepted = 0, rejected = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(m, buf, len);
        size_t n = len;
        int flips = 1 + (int)(fg_rng_u32(&r) % 3);
        for (int k = 0; k < flips; k++)
            m[fg_rng_u32(&r) % len] = (unsigned char)fg_rng_u32(&r);
        if (fg_rng_u32(&r) % 4 == 0)
            n = fg_rng_u32(&r) % len;
        fg_safetensors rd;
        if (fg_st_parse(&rd, m, n, "mut") == FG_OK) {
            accepted++;
            for (int i = 0; i < rd.n; i++) {
                size_t numel = 1;
                for (int d = 0; d < rd.t[i].ndim; d++)
                    numel *= (size_t)rd.t[i].shape[d];
                ck_assert_uint_eq(numel * fg_dtype_size(rd.t[i].dtype), rd.t[i].nbytes);
            }
            fg_st_free(&rd);
        } else {
            rejected++;
            ck_assert_int_eq(strncmp(fg_last_error(), "mut: ", 5), 0);
        }
    }
    ck_assert_int_gt(rejected, 1000);
    ck_assert_int_gt(accepted, 0);   /* flips inside the data are harmless */
    free(m);
    free(buf);
}
END_TEST

START_TEST(test_st_file_errors)
{
    make_tmpdir();
    char path[512];
    fg_safetensors st;
    ck_assert_int_eq(fg_st_read(&st, tmp_path("missing.safetensors", path)), FG_ERR);
    assert_error_has("missing.safetensors: cannot open");
    ck_assert_int_eq(fg_st_read(&st, tmpdir), FG_ERR);
    assert_error_has("not a regular file");

    /* The stream writer reports a full device. */
    fg_st_init(&st);
    float big[4096] = {0};
    int64_t shape[1] = {4096};
    fg_st_add(&st, "x", FG_DT_F32, 1, shape, big, 0);
    FILE *full = fopen("/dev/full", "wb");
    if (full) {
        ck_assert_int_eq(fg_st_write_stream(&st, full, "/dev/full"), FG_ERR);
        assert_error_has("/dev/full: write failed");
        fclose(full);
    }
    /* A path whose directory does not exist. */
    ck_assert_int_eq(fg_st_write(&st, "/nonexistent-fg-dir/x.safetensors"), FG_ERR);
    assert_error_has("/nonexistent-fg-dir/x.safetensors: cannot create");

    /* An old checkpoint survives a write that fails halfway: the file size
     * limit makes write() fail with EFBIG even for root. */
    fg_safetensors small;
    fg_st_init(&small);
    float one[1] = {3.0f};
    int64_t s1[1] = {1};
    fg_st_add(&small, "x", FG_DT_F32, 1, s1, one, 0);
    tmp_path("ckpt.safetensors", path);
    ck_assert_int_eq(fg_st_write(&small, path), FG_OK);
    size_t old_len;
    unsigned char *old = slurp(path, &old_len);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved, lim;
    getrlimit(RLIMIT_FSIZE, &saved);
    lim = saved;
    lim.rlim_cur = 1000;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = fg_st_write(&st, path);
    setrlimit(RLIMIT_FSIZE, &saved);
    ck_assert_int_eq(rc, FG_ERR);
    assert_error_has("ckpt.safetensors");
    size_t now_len;
    unsigned char *now = slurp(path, &now_len);
    ck_assert_uint_eq(now_len, old_len);
    ck_assert_int_eq(memcmp(now, old, old_len), 0);
    ck_assert_int_eq(count_tmp_leftovers(), 0);
    fg_safetensors rd;
    ck_assert_int_eq(fg_st_read(&rd, path), FG_OK);
    fg_st_free(&rd);
    free(old);
    free(now);
    fg_st_free(&small);
    fg_st_free(&st);
    remove_tmpdir();
}
END_TEST

START_TEST(test_st_load_state)
{
    make_tmpdir();
    char path[512];
    const float w0[3] = {1, 2, 3}, b0[1] = {4};
    fg_var *w = leaf1(3, w0), *b = leaf1(1, b0);
    fg_state_list l;
    fg_state_list_init(&l);
    fg_state_list_add(&l, "w", w, FG_PARAM);
    fg_state_list_add(&l, "b", b, FG_PARAM);
    fg_safetensors st;
    fg_st_init(&st);
    fg_st_add_state(&st, &l);
    float extra[1] = {0};
    int64_t s1[1] = {1};
    fg_st_add(&st, "optim.m.w", FG_DT_F32, 1, s1, extra, 0);
    ck_assert_int_eq(fg_st_write(&st, tmp_path("s.safetensors", path)), FG_OK);
    fg_st_free(&st);

    fg_safetensors rd;
    ck_assert_int_eq(fg_st_read(&rd, path), FG_OK);
    w->t.data[1] = 0;
    b->t.data[0] = 0;
    ck_assert_int_eq(fg_st_load_state(&rd, &l, NULL), FG_ERR);
    assert_error_has("1 unexpected tensor, first 'optim.m.w'");
    ck_assert_float_eq(w->t.data[1], 0.0f);   /* nothing copied on error */
    ck_assert_int_eq(fg_st_load_state(&rd, &l, "optim."), FG_OK);
    ck_assert_float_eq(w->t.data[1], 2.0f);
    ck_assert_float_eq(b->t.data[0], 4.0f);

    /* A model whose shape differs, and one that expects another tensor. */
    int s2[1] = {2};
    fg_var *w2 = fg_leaf_new(1, s2, 1);
    fg_state_list l2;
    fg_state_list_init(&l2);
    fg_state_list_add(&l2, "w", w2, FG_PARAM);
    ck_assert_int_eq(fg_st_load_state(&rd, &l2, ""), FG_ERR);
    assert_error_has("s.safetensors: tensor 'w' has shape (3) in the file, expected (2)");
    fg_state_list_add(&l2, "missing", b, FG_PARAM);
    fg_state_list_free(&l2);
    fg_state_list_init(&l2);
    fg_state_list_add(&l2, "missing", b, FG_PARAM);
    ck_assert_int_eq(fg_st_load_state(&rd, &l2, ""), FG_ERR);
    assert_error_has("missing tensor 'missing'");
    fg_state_list_free(&l2);
    fg_st_free(&rd);
    fg_state_list_free(&l);
    fg_leaf_free(w); fg_leaf_free(b); fg_leaf_free(w2);
    remove_tmpdir();
}
END_TEST

/* Resume from a checkpoint continues bitwise like an uninterrupted run. */
START_TEST(test_optim_resume_bitwise)
{
    make_tmpdir();
    char path[512];
    tmp_path("resume.safetensors", path);
    const float p0[4] = {0.3f, -0.7f, 1.1f, 0.0f};
    float finals[2][4];
    for (int run = 0; run < 2; run++) {
        fg_var *p = leaf1(4, p0);
        fg_state_list l;
        fg_state_list_init(&l);
        fg_state_list_add(&l, "p", p, FG_PARAM);
        fg_optim o;
        fg_optim_init(&o, FG_ADAM, &l, 0.9, 0.999, 1e-8);
        int start = 0;
        if (run == 1) {
            fg_safetensors rd;
            ck_assert_int_eq(fg_st_read(&rd, path), FG_OK);
            ck_assert_int_eq(fg_st_load_state(&rd, &l, "optim."), FG_OK);
            ck_assert_int_eq(fg_optim_load(&o, &rd), FG_OK);
            fg_st_free(&rd);
            ck_assert_int_eq(o.step, 3);
            start = 3;
        }
        for (int t = start; t < 6; t++) {
            for (int i = 0; i < 4; i++)   /* a gradient that depends on p */
                p->grad[i] = p->t.data[i] * (float)(i + 1) - 0.1f * (float)t;
            fg_optim_step(&o, fg_lr_warmup(0.05, o.step + 1, 4));
            if (run == 0 && t == 2) {
                fg_safetensors st;
                fg_st_init(&st);
                fg_st_add_state(&st, &l);
                fg_optim_save(&o, &st);
                ck_assert_int_eq(fg_st_write(&st, path), FG_OK);
                fg_st_free(&st);
            }
        }
        memcpy(finals[run], p->t.data, sizeof finals[run]);
        fg_optim_free(&o);
        fg_state_list_free(&l);
        fg_leaf_free(p);
    }
    ck_assert_int_eq(memcmp(finals[0], finals[1], sizeof finals[0]), 0);
    ck_assert(finals[0][0] != p0[0]);

    /* An optimizer of another model refuses the file and keeps its state. */
    const float q0[3] = {0, 0, 0};
    fg_var *q = leaf1(3, q0);
    fg_state_list l;
    fg_state_list_init(&l);
    fg_state_list_add(&l, "p", q, FG_PARAM);
    fg_optim o;
    fg_optim_init(&o, FG_ADAMAX, &l, 0.9, 0.999, 1e-8);
    fg_safetensors rd;
    ck_assert_int_eq(fg_st_read(&rd, path), FG_OK);
    ck_assert_int_eq(fg_optim_load(&o, &rd), FG_ERR);
    assert_error_has("tensor 'optim.m.p' has shape (4) in the file, expected (3)");
    ck_assert_int_eq(o.step, 0);
    fg_st_free(&rd);
    fg_optim_free(&o);
    fg_state_list_free(&l);
    fg_leaf_free(q);
    remove_tmpdir();
}
END_TEST

/* ---------------------------------------------------------------- data */

static void put_be32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24); b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8); b[3] = (unsigned char)v;
}

/* An IDX file: magic, dims, then `payload` bytes of data (may be fewer than
 * the dims promise, for truncation tests). */
static void write_idx(const char *path, uint32_t magic, int ndim, const uint32_t *dims,
                      const unsigned char *data, size_t payload)
{
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    unsigned char h[16];
    put_be32(h, magic);
    for (int d = 0; d < ndim; d++)
        put_be32(h + 4 + 4 * d, dims[d]);
    ck_assert_int_eq(gzwrite(f, h, (unsigned)(4 + 4 * ndim)), 4 + 4 * ndim);
    if (payload)
        ck_assert_int_eq(gzwrite(f, data, (unsigned)payload), (int)payload);
    gzclose(f);
}

START_TEST(test_idx_reader)
{
    make_tmpdir();
    char ip[512], lp[512];
    tmp_path("img.gz", ip);
    tmp_path("lab.gz", lp);
    unsigned char pix[3 * 2 * 3];
    for (int i = 0; i < 18; i++)
        pix[i] = (unsigned char)(i * 14);
    unsigned char lab[3] = {9, 0, 4};
    uint32_t idims[3] = {3, 2, 3}, ldims[1] = {3};
    write_idx(ip, 0x803, 3, idims, pix, sizeof pix);
    write_idx(lp, 0x801, 1, ldims, lab, 3);
    fg_dataset d;
    ck_assert_int_eq(fg_dataset_load_idx(&d, ip, lp), FG_OK);
    ck_assert_int_eq(d.n, 3);
    ck_assert_int_eq(d.c, 1);
    ck_assert_int_eq(d.h, 2);
    ck_assert_int_eq(d.w, 3);
    ck_assert_int_eq(memcmp(d.images, pix, sizeof pix), 0);
    ck_assert_int_eq(memcmp(d.labels, lab, 3), 0);
    fg_dataset_free(&d);

    /* Bad magic (labels magic on the images file). */
    write_idx(ip, 0x801, 3, idims, pix, sizeof pix);
    ck_assert_int_eq(fg_dataset_load_idx(&d, ip, lp), FG_ERR);
    assert_error_has("img.gz: magic number 0x00000801, expected 0x00000803");
    /* Truncated pixels. */
    write_idx(ip, 0x803, 3, idims, pix, sizeof pix - 5);
    ck_assert_int_eq(fg_dataset_load_idx(&d, ip, lp), FG_ERR);
    assert_error_has("img.gz: truncated: the pixels needs 18 bytes, file ends after 13");
    /* Truncated header: the magic promises 3 dims, the file holds one. */
    write_idx(ip, 0x803, 1, idims, NULL, 0);
    ck_assert_int_eq(fg_dataset_load_idx(&d, ip, lp), FG_ERR);
    assert_error_has("img.gz: truncated: the dimensions needs 12 bytes, file ends after 4");
    /* Count mismatch. */
    write_idx(ip, 0x803, 3, idims, pix, sizeof pix);
    uint32_t l2[1] = {2};
    write_idx(lp, 0x801, 1, l2, lab, 2);
    ck_assert_int_eq(fg_dataset_load_idx(&d, ip, lp), FG_ERR);
    assert_error_has("lab.gz: 2 labels, but");
    /* Label out of range, and trailing bytes. */
    unsigned char badlab[3] = {1, 10, 2};
    write_idx(lp, 0x801, 1, ldims, badlab, 3);
    ck_assert_int_eq(fg_dataset_load_idx(&d, ip, lp), FG_ERR);
    assert_error_has("label 10 of item 1");
    unsigned char longlab[4] = {1, 2, 3, 4};
    write_idx(lp, 0x801, 1, ldims, longlab, 4);
    ck_assert_int_eq(fg_dataset_load_idx(&d, ip, lp), FG_ERR);
    assert_error_has("unexpected bytes");
    /* Labels that end before the count their header claims. */
    write_idx(lp, 0x801, 1, ldims, lab, 2);
    ck_assert_int_eq(fg_dataset_load_idx(&d, ip, lp), FG_ERR);
    assert_error_has("lab.gz: truncated: the labels needs 3 bytes, file ends after 2");
    /* Zero images. */
    uint32_t z[3] = {0, 2, 3};
    write_idx(ip, 0x803, 3, z, NULL, 0);
    ck_assert_int_eq(fg_dataset_load_idx(&d, ip, lp), FG_ERR);
    assert_error_has("dimension 0 is 0");
    /* Missing file. */
    ck_assert_int_eq(fg_dataset_load_mnist_dir(&d, tmpdir, 1), FG_ERR);
    assert_error_has("train-images-idx3-ubyte.gz: cannot open");
    /* Plain, uncompressed IDX reads the same way. */
    FILE *f = fopen(lp, "wb");
    unsigned char h[8];
    put_be32(h, 0x801);
    put_be32(h + 4, 3);
    fwrite(h, 1, 8, f);
    fwrite(lab, 1, 3, f);
    fclose(f);
    write_idx(ip, 0x803, 3, idims, pix, sizeof pix);
    ck_assert_int_eq(fg_dataset_load_idx(&d, ip, lp), FG_OK);
    ck_assert_int_eq(d.labels[0], 9);
    fg_dataset_free(&d);
    remove_tmpdir();
}
END_TEST

START_TEST(test_fashion_mnist_if_present)
{
    struct stat sb;
    if (stat(FG_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz", &sb) != 0) {
        fprintf(stderr, "test_nn: %s absent, real-data check skipped\n", FG_FASHION_MNIST_DIR);
        return;
    }
    fg_dataset d;
    ck_assert_msg(fg_dataset_load_mnist_dir(&d, NULL, 1) == FG_OK, "%s", fg_last_error());
    ck_assert_int_eq(d.n, 60000);
    ck_assert_int_eq(d.h, 28);
    ck_assert_int_eq(d.w, 28);
    int counts[10] = {0};
    for (int i = 0; i < d.n; i++) {
        ck_assert_int_lt(d.labels[i], 10);
        counts[d.labels[i]]++;
    }
    for (int k = 0; k < 10; k++)   /* Fashion-MNIST is balanced */
        ck_assert_int_eq(counts[k], 6000);
    fg_dataset_free(&d);
}
END_TEST

START_TEST(test_cifar_reader)
{
    make_tmpdir();
    char p1[512], p2[512];
    tmp_path("data_batch_1.bin", p1);
    tmp_path("b2.bin", p2);
    unsigned char rec[2][3073];
    for (int r = 0; r < 2; r++) {
        rec[r][0] = (unsigned char)(r ? 7 : 3);
        for (int i = 0; i < 3072; i++)
            rec[r][1 + i] = (unsigned char)((i * 7 + r * 31) & 255);
    }
    FILE *f = fopen(p1, "wb");
    fwrite(rec, 1, sizeof rec, f);
    fclose(f);
    f = fopen(p2, "wb");
    fwrite(rec[1], 1, 3073, f);
    fclose(f);
    const char *paths[2] = {p1, p2};
    fg_dataset d;
    ck_assert_int_eq(fg_dataset_load_cifar10_files(&d, paths, 2), FG_OK);
    ck_assert_int_eq(d.n, 3);
    ck_assert_int_eq(d.c, 3);
    ck_assert_int_eq(d.h, 32);
    ck_assert_int_eq(d.labels[0], 3);
    ck_assert_int_eq(d.labels[1], 7);
    ck_assert_int_eq(d.labels[2], 7);
    /* Green channel, row 1, column 2 of image 1: byte 1024 + 32 + 2. */
    ck_assert_int_eq(d.images[3072 + 1024 + 34], rec[1][1 + 1024 + 34]);
    ck_assert_int_eq(memcmp(d.images + 2 * 3072, rec[1] + 1, 3072), 0);
    fg_dataset_free(&d);

    f = fopen(p2, "wb");
    fwrite(rec[1], 1, 3000, f);
    fclose(f);
    ck_assert_int_eq(fg_dataset_load_cifar10_files(&d, paths, 2), FG_ERR);
    assert_error_has("b2.bin: 3000 bytes, expected a positive multiple of 3073");
    rec[1][0] = 10;
    f = fopen(p2, "wb");
    fwrite(rec[1], 1, 3073, f);
    fclose(f);
    ck_assert_int_eq(fg_dataset_load_cifar10_files(&d, paths, 2), FG_ERR);
    assert_error_has("b2.bin: record 0 has label 10");
    ck_assert_int_eq(fg_dataset_load_cifar10_dir(&d, tmpdir, 1), FG_ERR);
    assert_error_has("data_batch_2.bin: cannot open");
    remove_tmpdir();
}
END_TEST

START_TEST(test_synthetic_and_batches)
{
    fg_dataset a, b, c;
    fg_dataset_synthetic(&a, 10, 3, 8, 8, 5);
    fg_dataset_synthetic(&b, 10, 3, 8, 8, 5);
    fg_dataset_synthetic(&c, 10, 3, 8, 8, 6);
    size_t bytes = 10 * 3 * 8 * 8;
    ck_assert_int_eq(memcmp(a.images, b.images, bytes), 0);
    ck_assert_int_ne(memcmp(a.images, c.images, bytes), 0);
    for (int i = 0; i < a.n; i++)
        ck_assert_int_lt(a.labels[i], a.n_classes);
    /* Shapes are bright on a dark background: both ends are present. */
    int dark = 0, bright = 0;
    for (size_t i = 0; i < bytes; i++) {
        dark += a.images[i] < 30;
        bright += a.images[i] > 140;
    }
    ck_assert_int_gt(dark, (int)bytes / 4);
    ck_assert_int_gt(bright, (int)bytes / 20);

    /* Each epoch is a permutation; a seek reproduces the stream. */
    fg_batch_iter it, it2;
    fg_batch_iter_init(&it, &a, 4, 1, 0, 99);
    int idx[4], seen[10] = {0}, got, total = 0, batches = 0;
    while ((got = fg_batch_iter_next(&it, idx)) > 0) {
        for (int i = 0; i < got; i++)
            seen[idx[i]]++;
        total += got;
        batches++;
    }
    ck_assert_int_eq(total, 10);
    ck_assert_int_eq(batches, 3);   /* 4 + 4 + 2 */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(seen[i], 1);
    ck_assert_int_eq(it.epoch, 1);
    int e1[4];
    ck_assert_int_eq(fg_batch_iter_next(&it, e1), 4);
    int e1b[4];
    ck_assert_int_eq(fg_batch_iter_next(&it, e1b), 4);
    fg_batch_iter_init(&it2, &a, 4, 1, 0, 99);
    fg_batch_iter_seek(&it2, 1, 4);
    ck_assert_int_eq(fg_batch_iter_next(&it2, idx), 4);
    ck_assert_int_eq(memcmp(idx, e1b, sizeof idx), 0);
    fg_batch_iter_free(&it2);
    fg_batch_iter_free(&it);
    fg_batch_iter_init(&it, &a, 4, 0, 1, 0);
    ck_assert_int_eq(fg_batch_iter_next(&it, idx), 4);
    ck_assert_int_eq(idx[0], 0);
    ck_assert_int_eq(idx[3], 3);
    ck_assert_int_eq(fg_batch_iter_next(&it, idx), 4);
    ck_assert_int_eq(fg_batch_iter_next(&it, idx), 0);   /* short batch dropped */
    fg_batch_iter_free(&it);
    fg_dataset_free(&a);
    fg_dataset_free(&b);
    fg_dataset_free(&c);
}
END_TEST

START_TEST(test_dequantize)
{
    /* One 1x16x16 image holding every byte value. */
    fg_dataset d = {0};
    d.n = 1; d.c = 1; d.h = 16; d.w = 16; d.n_classes = 1;
    d.images = malloc(256);
    d.labels = calloc(1, 1);
    for (int i = 0; i < 256; i++)
        d.images[i] = (uint8_t)i;
    float y[256];
    int idx[1] = {0};
    for (int n_bits = 1; n_bits <= 8; n_bits++) {
        fg_rng r;
        fg_rng_seed(&r, (uint64_t)n_bits);
        fg_dequantize(&d, idx, 1, n_bits, &r, y);
        double bins = (double)(1 << n_bits), lo = 1.0, hi = 0.0;
        for (int x = 0; x < 256; x++) {
            int bin = x >> (8 - n_bits);
            double base = bin / bins - 0.5;
            ck_assert_msg(y[x] >= base - 1e-7 && y[x] <= base + 1.0 / bins + 1e-7,
                          "n_bits %d, x %d: %g outside [%g, %g]", n_bits, x, y[x], base,
                          base + 1.0 / bins);
            ck_assert(y[x] >= -0.5f && y[x] <= 0.5f);
            double u = (y[x] - base) * bins;
            lo = u < lo ? u : lo;
            hi = u > hi ? u : hi;
        }
        /* The noise fills its bin, not a fixed offset. */
        ck_assert_double_lt(lo, 0.25);
        ck_assert_double_gt(hi, 0.75);
    }
    /* Same rng state, same noise. */
    fg_rng r1, r2;
    fg_rng_seed(&r1, 3);
    fg_rng_seed(&r2, 3);
    float y2[256];
    fg_dequantize(&d, idx, 1, 5, &r1, y);
    fg_dequantize(&d, idx, 1, 5, &r2, y2);
    ck_assert_int_eq(memcmp(y, y2, sizeof y), 0);
    fg_dataset_free(&d);
}
END_TEST

/* ---------------------------------------------------------------- PNG */

static uint8_t expect_byte(float v)
{
    double s = ((double)v + 0.5) * 255.0;
    if (s <= 0)
        return 0;
    if (s >= 255)
        return 255;
    return (uint8_t)floor(s + 0.5);
}

static void check_png(int c)
{
    make_tmpdir();
    char path[512];
    tmp_path(c == 1 ? "g.png" : "rgb.png", path);
    const int n = 3, h = 2, w = 3, rows = 2, cols = 2, border = 1;
    float x[3 * 3 * 2 * 3];
    for (int i = 0; i < n * c * h * w; i++)
        x[i] = -0.7f + 0.05f * (float)i;   /* crosses both clamps */
    ck_assert_int_eq(fg_png_write_grid(path, x, n, c, h, w, rows, cols, border), FG_OK);
    ck_assert_int_eq(count_tmp_leftovers(), 0);

    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    ck_assert(png_image_begin_read_from_file(&img, path));
    ck_assert_int_eq(img.width, cols * w + (cols + 1) * border);
    ck_assert_int_eq(img.height, rows * h + (rows + 1) * border);
    img.format = c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    unsigned char *buf = malloc(PNG_IMAGE_SIZE(img));
    ck_assert(png_image_finish_read(&img, NULL, buf, 0, NULL));
    const int W = (int)img.width;
    for (int i = 0; i < rows * cols; i++) {
        int y0 = (i / cols) * (h + border) + border, x0 = (i % cols) * (w + border) + border;
        for (int yy = 0; yy < h; yy++)
            for (int xx = 0; xx < w; xx++)
                for (int ch = 0; ch < c; ch++) {
                    int got = buf[((y0 + yy) * W + x0 + xx) * c + ch];
                    int want = i < n ? expect_byte(x[((i * c + ch) * h + yy) * w + xx]) : 255;
                    ck_assert_int_eq(got, want);
                }
    }
    for (int xx = 0; xx < W * c; xx++)   /* the top border row */
        ck_assert_int_eq(buf[xx], 255);
    png_image_free(&img);
    free(buf);

    ck_assert_int_eq(fg_png_write_grid(path, x, n, 2, h, w, rows, cols, border), FG_ERR);
    assert_error_has("2 channels");
    ck_assert_int_eq(fg_png_write_grid("/nonexistent-fg-dir/a.png", x, n, c, h, w, rows,
                                       cols, border), FG_ERR);
    assert_error_has("/nonexistent-fg-dir/a.png");
    remove_tmpdir();
}

START_TEST(test_png_gray) { check_png(1); }
END_TEST

START_TEST(test_png_rgb) { check_png(3); }
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("nn");
    TCase *tc = fg_tcase("modules");
    tcase_add_test(tc, test_name_join);
    tcase_add_test(tc, test_conv_module);
    tcase_add_test(tc, test_zero_conv_module);
    tcase_add_test(tc, test_linear_module);
    suite_add_tcase(s, tc);
    tc = fg_tcase("training");
    tcase_add_test(tc, test_state_list_ops);
    tcase_add_test(tc, test_adam);
    tcase_add_test(tc, test_adamax);
    tcase_add_test(tc, test_optim_names);
    tcase_add_test(tc, test_warmup);
    tcase_add_test(tc, test_ema);
    tcase_add_test(tc, test_schedule);
    tcase_add_test(tc, test_step_guard_spike);
    tcase_add_test(tc, test_step_guard_steady_rise);
    tcase_add_test(tc, test_step_guard_state);
    tcase_add_test(tc, test_snapshot);
    suite_add_tcase(s, tc);
    tc = fg_tcase("safetensors");
    tcase_add_test(tc, test_st_byte_layout);
    tcase_add_test(tc, test_st_round_trip);
    tcase_add_test(tc, test_st_reject);
    tcase_add_test(tc, test_st_mutations);
    tcase_add_test(tc, test_st_file_errors);
    tcase_add_test(tc, test_st_load_state);
    tcase_add_test(tc, test_optim_resume_bitwise);
    suite_add_tcase(s, tc);
    tc = fg_tcase("data");
    tcase_add_test(tc, test_idx_reader);
    tcase_add_test(tc, test_fashion_mnist_if_present);
    tcase_add_test(tc, test_cifar_reader);
    tcase_add_test(tc, test_synthetic_and_batches);
    tcase_add_test(tc, test_dequantize);
    tcase_add_test(tc, test_png_gray);
    tcase_add_test(tc, test_png_rgb);
    suite_add_tcase(s, tc);
    return s;
}
