/* Training memory by inversion (flows/multiscale_invert.c): gradients equal
 * those of the recorded tape for every shipped config, training in either
 * mode ends at the same loss, and the arena stays flat over many steps. */
#include "check_main.h"
#include "flowgrad.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Every config shipped in models/, the class-conditional test configs (a
 * y_condition prior; a flow conditioned on the class, whose condition is
 * built from the labels), and the spline coupling with MAF and IAF layers
 * on vectors. A tensor condition's own gradient is compared in
 * tests/test_conditional_flow.c. */
static const char *const configs[] = {
    "models/ablation-fmnist.yaml", "models/cifar10.yaml",       "models/fmnist-quick.yaml",
    "models/generic-example.yaml", "models/glow-spline-fmnist.yaml", "models/mnist.yaml",
    "models/nice-fmnist.yaml",     "models/realnvp-fmnist.yaml", "tests/configs/cli-tiny.yaml",
    "tests/configs/good-spline-maf.yaml", "models/fmnist-cond.yaml", "models/fmnist-quick-cond.yaml",
    "tests/configs/cond-tiny.yaml", NULL};

static fg_config *load(const char *rel)
{
    char path[1024];
    fg_config *cfg;
    ck_assert_msg(fg_config_load_file(fg_test_path(rel, path, sizeof path), &cfg) == FG_OK,
                  "%s", fg_last_error());
    return cfg;
}

/* A reduced instance of the config's layer list: the smallest input every
 * squeeze accepts (at least 4x4), couplings at most 8 wide. */
static fg_model *build_small(const fg_config *cfg)
{
    const fg_model_spec *s = &cfg->model;
    int squeezes = 0;
    for (int i = 0; i < s->n_layers; i++)
        squeezes += s->layers[i].kind == fg_layer_kind_find("squeeze");
    int side = 1 << squeezes;
    if (side < 4)
        side = 4;
    fg_model_build_options o = {side < s->input.h ? side : s->input.h,
                                side < s->input.w ? side : s->input.w, 8};
    fg_model *m;
    ck_assert_msg(fg_model_build_ex(s, 3, &o, &m) == FG_OK, "%s", fg_last_error());
    return m;
}

/* Every parameter moved off its start (zero convs stop being zero), then
 * the actnorms initialized on x by a recorded forward. */
static void perturb(fg_model *m, fg_graph *g, float *x0, const int *shape, const int *y)
{
    fg_rng rng;
    fg_rng_seed(&rng, 11);
    for (int i = 0; i < m->state.n; i++) {
        fg_state_entry *e = &m->state.items[i];
        if (e->kind != FG_PARAM)
            continue;
        size_t n = fg_numel(&e->var->t);
        size_t fan_in = e->var->t.ndim >= 2 ? n / (size_t)e->var->t.shape[0] : 1;
        for (size_t k = 0; k < n; k++) {
            float r;
            fg_rng_normal(&rng, &r, 1);
            e->var->t.data[k] += 0.05f / sqrtf((float)fan_in) * r;
        }
    }
    fg_graph_reset(g);
    fg_model_loss(m, g, fg_const_wrap(g, x0, 4, shape), y, NULL);
    fg_graph_reset(g);
}

/* The loss of x under mode and the gradients it gives: every parameter's,
 * then the input's, concatenated into a fresh buffer. */
static float *gradients(fg_model *m, fg_graph *g, const float *x0, const int *shape,
                        const int *y, fg_memory_mode mode, double *loss, size_t *count)
{
    fg_graph_reset(g);
    fg_state_list_zero_grad(&m->state);
    fg_var *x = fg_const(g, 4, shape);
    size_t nx = fg_numel(&x->t);
    memcpy(x->t.data, x0, nx * sizeof *x0);
    x->requires_grad = 1;
    fg_invert_stats st = {0};
    fg_var *l = fg_model_loss_ex(m, g, x, y, NULL, mode, &st);
    *loss = l->t.data[0];
    fg_backward(g, l);
    if (mode == FG_MEMORY_INVERT)
        ck_assert_int_eq(st.backwards, 1);
    size_t total = nx;
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
    memcpy(p, x->grad, nx * sizeof *p);
    *count = total;
    fg_graph_reset(g);
    return out;
}

/* |a - b| <= 1e-4 max|a| over one tensor; names it when not. */
static void expect_close(const char *cfg, const char *name, const float *a, const float *b,
                         size_t n)
{
    double scale = 0, err = 0;
    for (size_t k = 0; k < n; k++) {
        scale = fmax(scale, fabs(a[k]));
        err = fmax(err, fabs((double)a[k] - b[k]));
    }
    ck_assert_msg(err <= 1e-4 * scale || (scale == 0 && err == 0),
                  "%s: gradient of %s differs by %g (largest entry %g)", cfg, name, err, scale);
}

START_TEST(gradients_equal_store_for_every_config)
{
    fg_config *cfg = load(configs[_i]);
    fg_model *m = build_small(cfg);
    fg_graph *g = fg_graph_create();
    enum { N = 4 };
    int shape[4] = {N, m->c, m->h, m->w}, y[N] = {0, 1, 2, 3};
    size_t nx = (size_t)N * m->c * m->h * m->w;
    float *x0 = malloc(nx * sizeof *x0);
    fg_rng rng;
    fg_rng_seed(&rng, 5);
    fg_rng_uniform(&rng, x0, nx);
    fg_k_add_scalar(nx, -0.5f, x0, x0);
    perturb(m, g, x0, shape, y);

    double ls, li;
    size_t ns, ni;
    float *gs = gradients(m, g, x0, shape, y, FG_MEMORY_STORE, &ls, &ns);
    float *gi = gradients(m, g, x0, shape, y, FG_MEMORY_INVERT, &li, &ni);
    ck_assert_uint_eq(ns, ni);
    ck_assert_msg(fabs(ls - li) <= 1e-5 * fabs(ls), "%s: loss %.9g (store) vs %.9g (invert)",
                  configs[_i], ls, li);
    size_t off = 0;
    for (int i = 0; i < m->state.n; i++) {
        fg_state_entry *e = &m->state.items[i];
        if (e->kind != FG_PARAM)
            continue;
        size_t n = fg_numel(&e->var->t);
        expect_close(configs[_i], e->name, gs + off, gi + off, n);
        off += n;
    }
    expect_close(configs[_i], "the input", gs + off, gi + off, nx);
    free(gs);
    free(gi);
    free(x0);
    fg_graph_destroy(g);
    fg_model_free(m);
    fg_config_free(cfg);
}
END_TEST

/* ---------------------------------------------------------------- training */

typedef struct run {
    fg_model_batches mb;
    int batch, n;
    long step;
} run;

static fg_var *next_loss(void *ctx, fg_graph *g, double *metric)
{
    run *r = ctx;
    int idx[64];
    for (int k = 0; k < r->batch; k++)
        idx[k] = (int)((r->step * r->batch + k) % r->n);
    fg_batch b = {idx, r->batch, 0, r->batch, r->step, 0};
    r->step++;
    return fg_model_batch_loss(&r->mb, g, &b, metric);
}

/* Trains the tiny class-conditional config for steps in a mode; returns the
 * mean training bits/dim of the last 5 steps; *arena receives the bytes the
 * graph's arena held from the system after step 2 and after the last, and
 * *peak its peak. */
static double train(fg_memory_mode mode, int steps, size_t arena[2], size_t *peak,
                    fg_invert_stats *stats)
{
    fg_config *cfg = load("tests/configs/cli-tiny.yaml");
    fg_dataset d;
    ck_assert_msg(fg_config_load_split(cfg, 1, -1, &d) == FG_OK, "%s", fg_last_error());
    fg_model *m;
    ck_assert(fg_model_build(&cfg->model, cfg->train.seed, &m) == FG_OK);
    fg_trainer t;
    fg_trainer_options o = fg_config_trainer_options(cfg, 0);
    fg_trainer_init(&t, &m->state, &o);
    run r = {.batch = cfg->train.batch, .n = d.n};
    fg_model_batches_init(&r.mb, m, &d, r.batch, cfg->train.seed);
    r.mb.memory = mode;
    double tail = 0;
    for (int s = 0; s < steps; s++) {
        fg_step_report rep;
        ck_assert_int_eq(fg_trainer_step(&t, next_loss, &r, &rep), FG_STEP_TAKEN);
        if (s >= steps - 5)
            tail += rep.metric / 5;
        if (s == 1)
            arena[0] = fg_arena_reserved(fg_graph_arena(t.g));
    }
    arena[1] = fg_arena_reserved(fg_graph_arena(t.g));
    *peak = fg_arena_peak(fg_graph_arena(t.g));
    if (stats)
        *stats = r.mb.invert;
    fg_model_batches_free(&r.mb);
    fg_trainer_free(&t);
    fg_model_free(m);
    fg_dataset_free(&d);
    fg_config_free(cfg);
    return tail;
}

START_TEST(training_ends_at_the_same_loss)
{
    size_t as[2], ai[2], ps, pi;
    fg_invert_stats st;
    double store = train(FG_MEMORY_STORE, 60, as, &ps, NULL);
    double invert = train(FG_MEMORY_INVERT, 60, ai, &pi, &st);
    ck_assert_msg(fabs(store - invert) < 1e-3, "store %.6f vs invert %.6f bits/dim", store,
                  invert);
    ck_assert_int_eq(st.backwards, 60);
    ck_assert_msg(st.drift > 0 || st.drift == 0, "drift is NaN");
    ck_assert_msg(st.drift < 1e-3, "drift %g", st.drift);
    /* Inversion must hold less than the tape. */
    ck_assert_msg(pi < ps, "arena peak %zu (invert) vs %zu (store)", pi, ps);
}
END_TEST

START_TEST(arena_stays_flat_in_invert_mode)
{
    size_t a[2], peak;
    train(FG_MEMORY_INVERT, 200, a, &peak, NULL);
    ck_assert_msg(a[0] == a[1], "arena grew from %zu to %zu bytes between step 2 and 200",
                  a[0], a[1]);
    ck_assert_msg(peak <= a[1], "peak %zu above the reserved %zu", peak, a[1]);
}
END_TEST

/* ---------------------------------------------------------------- config */

START_TEST(config_reads_prints_and_refuses_memory)
{
    const char *base = "model: {type: glow, height: 8, width: 8, channels: 1, levels: 1, "
                       "steps: 1, hidden: 4}\ntrain: {dataset: {name: synthetic}, memory: ";
    char text[512];
    fg_config *cfg;
    snprintf(text, sizeof text, "%sinvert}\n", base);
    ck_assert_msg(fg_config_load_string(text, strlen(text), "t", &cfg) == FG_OK, "%s",
                  fg_last_error());
    ck_assert_int_eq(cfg->train.memory, FG_MEMORY_INVERT);
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    fg_config_print(cfg, f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "memory invert"));
    free(buf);
    fg_config_free(cfg);
    snprintf(text, sizeof text, "%sstore}\n", base);
    ck_assert(fg_config_load_string(text, strlen(text), "t", &cfg) == FG_OK);
    ck_assert_int_eq(cfg->train.memory, FG_MEMORY_STORE);
    fg_config_free(cfg);
    snprintf(text, sizeof text, "%sswap}\n", base);
    ck_assert(fg_config_load_string(text, strlen(text), "t", &cfg) == FG_ERR);
    ck_assert_msg(strstr(fg_last_error(), "memory") && strstr(fg_last_error(), "invert"),
                  "%s", fg_last_error());
    fg_memory_mode mm;
    ck_assert(fg_memory_mode_parse("invert", &mm) == FG_OK && mm == FG_MEMORY_INVERT);
    ck_assert(fg_memory_mode_parse("lean", &mm) == FG_ERR);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("invert");
    TCase *tc = fg_tcase("invert");
    int n = 0;
    while (configs[n])
        n++;
    tcase_add_loop_test(tc, gradients_equal_store_for_every_config, 0, n);
    tcase_add_test(tc, training_ends_at_the_same_loss);
    tcase_add_test(tc, arena_stays_flat_in_invert_mode);
    tcase_add_test(tc, config_reads_prints_and_refuses_memory);
    suite_add_tcase(s, tc);
    return s;
}
