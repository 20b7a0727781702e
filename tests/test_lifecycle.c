/* The model lifecycle in the library: the trainer's step and loop, bits/dim
 * evaluation, random flips of training batches, and checkpoints: a saved
 * run resumes bit for bit, the EMA averages overlay the weights of a loaded
 * model, a later format's extra records are skipped, and a checkpoint in
 * format 1 (the positional train.state), as written before the named
 * record, still loads. */
#include "check_main.h"
#include "flowgrad.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/fg-lifecycle-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static const char *file(const char *name)
{
    static char buf[2][512];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void cleanup(void)
{
    static const char *const names[] = {"ckpt.safetensors", "v1.safetensors", "v2.safetensors",
                                         "later.safetensors", "newer.safetensors"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        unlink(file(names[i]));
    rmdir(dir);
}

typedef struct run {
    fg_config *cfg;
    fg_model *model;
    fg_trainer tr;
    fg_dataset train, test;
    fg_batch_iter it;
    fg_model_batches b;
} run;

static void run_open(run *r)
{
    memset(r, 0, sizeof *r);
    char path[512];
    ck_assert_int_eq(fg_config_load_file(fg_test_path("tests/configs/cli-tiny.yaml", path,
                                                      sizeof path), &r->cfg), FG_OK);
    ck_assert_int_eq(fg_config_load_split(r->cfg, 1, -1, &r->train), FG_OK);
    ck_assert_int_eq(fg_config_load_split(r->cfg, 0, -1, &r->test), FG_OK);
    const fg_train_spec *t = &r->cfg->train;
    ck_assert_int_eq(fg_model_build(&r->cfg->model, t->seed, &r->model), FG_OK);
    fg_trainer_options o = fg_config_trainer_options(r->cfg, 0);
    fg_trainer_init(&r->tr, &r->model->state, &o);
    fg_batch_iter_init(&r->it, &r->train, t->batch, 1, 1, t->seed);
    fg_model_batches_init(&r->b, r->model, &r->train, t->batch, t->seed);
}

static void run_close(run *r)
{
    fg_model_batches_free(&r->b);
    fg_batch_iter_free(&r->it);
    fg_trainer_free(&r->tr);
    fg_model_free(r->model);
    fg_dataset_free(&r->train);
    fg_dataset_free(&r->test);
    fg_config_free(r->cfg);
}

static fg_var *loss(void *ctx, fg_graph *g, const fg_batch *b, double *bpd)
{
    return fg_model_batch_loss(&((run *)ctx)->b, g, b, bpd);
}

static void train_to(run *r, long steps)
{
    fg_train_hooks h = {.ctx = r, .loss = loss};
    fg_train_plan p = {.total_steps = steps};
    ck_assert_msg(fg_train_run(&r->tr, &r->it, &p, &h, NULL) == FG_OK, "%s", fg_last_error());
    ck_assert_int_eq(r->tr.step, steps);
}

static fg_train_state state_of(const run *r)
{
    return (fg_train_state){r->tr.step, r->it.epoch, r->it.pos, r->cfg->train.seed, 1.5};
}

static void assert_same_weights(const fg_state_list *a, const fg_state_list *b)
{
    ck_assert_int_eq(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        const fg_tensor *x = &a->items[i].var->t, *y = &b->items[i].var->t;
        ck_assert_str_eq(a->items[i].name, b->items[i].name);
        ck_assert_msg(memcmp(x->data, y->data, fg_numel(x) * sizeof(float)) == 0, "%s differs",
                      a->items[i].name);
    }
}

/* Six steps straight, or three, a checkpoint, and three more in a fresh
 * process's worth of objects: the same weights to the bit. */
START_TEST(resumed_run_matches_an_uninterrupted_one)
{
    setup();
    run a, b, c;
    run_open(&a);
    train_to(&a, 6);
    run_open(&b);
    train_to(&b, 3);
    fg_train_state s = state_of(&b);
    ck_assert_int_eq(fg_checkpoint_save(file("ckpt.safetensors"), b.cfg, b.model, &b.tr, &s), FG_OK);
    run_open(&c);
    fg_train_state got;
    ck_assert_msg(fg_checkpoint_resume(file("ckpt.safetensors"), c.model, &c.tr, c.train.n, &got) == FG_OK, "%s",
                  fg_last_error());
    ck_assert_int_eq(got.step, 3);
    ck_assert_int_eq(got.position, s.position);
    ck_assert(got.elapsed_seconds == 1.5);
    c.tr.step = got.step;
    fg_batch_iter_seek(&c.it, got.epoch, got.position);
    train_to(&c, 6);
    assert_same_weights(&a.model->state, &c.model->state);
    fg_state_list la, lc;
    fg_state_list_init(&la);
    fg_state_list_init(&lc);
    fg_trainer_visit_state(&a.tr, &la);
    fg_trainer_visit_state(&c.tr, &lc);
    assert_same_weights(&la, &lc);
    fg_state_list_free(&la);
    fg_state_list_free(&lc);

    /* A loaded model carries the averages, not the last iterate. */
    fg_checkpoint L;
    ck_assert_int_eq(fg_checkpoint_load(file("ckpt.safetensors"), -1, &L), FG_OK);
    ck_assert(L.has_state && L.state.step == 3);
    fg_trainer_swap_ema(&b.tr);
    assert_same_weights(&L.model->state, &b.model->state);
    fg_trainer_swap_ema(&b.tr);
    fg_checkpoint_free(&L);
    run_close(&a);
    run_close(&b);
    run_close(&c);
    cleanup();
}
END_TEST

/* The writer of format 1, as flowgrad train had it: a positional
 * train.state and no named record. */
static void write_format_1(run *r, const char *path)
{
    fg_safetensors st;
    fg_st_init(&st);
    fg_st_add_state(&st, &r->model->state);
    fg_optim_save(&r->tr.optim, &st);
    fg_state_list el;
    fg_state_list_init(&el);
    fg_ema_visit(&r->tr.ema, fg_state_list_add, &el);
    fg_st_add_state(&st, &el);
    int64_t s[4] = {r->tr.step, r->it.epoch, r->it.pos, (int64_t)r->cfg->train.seed};
    fg_st_add_i64(&st, "train.state", s, 4);
    fg_st_set_meta(&st, "config", r->cfg->text);
    fg_st_set_meta(&st, "elapsed_seconds", "2.250");
    fg_st_set_meta(&st, "format", "flowgrad-checkpoint-1");
    ck_assert_int_eq(fg_st_write(&st, path), FG_OK);
    fg_state_list_free(&el);
    fg_st_free(&st);
}

START_TEST(format_1_checkpoints_still_load)
{
    setup();
    run a, b;
    run_open(&a);
    train_to(&a, 2);
    write_format_1(&a, file("v1.safetensors"));
    fg_train_state s;
    ck_assert_int_eq(fg_checkpoint_read_state(file("v1.safetensors"), &s), FG_OK);
    ck_assert_int_eq(s.step, 2);
    ck_assert_int_eq(s.position, a.it.pos);
    ck_assert_int_eq((long long)s.seed, (long long)a.cfg->train.seed);
    ck_assert(s.elapsed_seconds == 2.25);
    run_open(&b);
    ck_assert_msg(fg_checkpoint_resume(file("v1.safetensors"), b.model, &b.tr,
                                       b.train.n, &s) == FG_OK, "%s", fg_last_error());
    assert_same_weights(&a.model->state, &b.model->state);
    ck_assert_int_eq(b.tr.optim.step, 2);
    run_close(&a);
    run_close(&b);
    cleanup();
}
END_TEST

/* What a later format adds is skipped; a format that changed a meaning is
 * refused with the versions this reader knows. */
START_TEST(later_formats_are_read_forward)
{
    setup();
    run a;
    run_open(&a);
    train_to(&a, 1);
    fg_train_state s = state_of(&a);
    const char *path = file("v2.safetensors");
    ck_assert_int_eq(fg_checkpoint_save(path, a.cfg, a.model, &a.tr, &s),
                     FG_OK);
    fg_safetensors st;
    fg_st_init(&st);
    ck_assert_int_eq(fg_st_read(&st, path), FG_OK);
    int64_t extra = 12;
    fg_st_add_i64(&st, "train.warm_restarts", &extra, 1);
    fg_st_set_meta(&st, "schedule", "cosine");
    ck_assert_int_eq(fg_st_write(&st, file("later.safetensors")), FG_OK);
    fg_st_set_meta(&st, "format", "flowgrad-checkpoint-9");
    ck_assert_int_eq(fg_st_write(&st, file("newer.safetensors")), FG_OK);
    fg_st_free(&st);

    fg_checkpoint L;
    ck_assert_msg(fg_checkpoint_load(file("later.safetensors"), -1, &L) == FG_OK, "%s",
                  fg_last_error());
    ck_assert_int_eq(L.state.step, 1);
    fg_checkpoint_free(&L);
    ck_assert_int_eq(fg_checkpoint_load(file("newer.safetensors"), -1, &L), FG_ERR);
    ck_assert_msg(strstr(fg_last_error(), "format 9 by a newer flowgrad; this one reads "
                                          "formats 1 to 2"), "%s", fg_last_error());
    run_close(&a);
    cleanup();
}
END_TEST

static fg_var *nan_loss(void *ctx, fg_graph *g, double *metric)
{
    int shape[1] = {1};
    fg_var *x = fg_const(g, 1, shape);
    x->t.data[0] = NAN;
    *metric = 0;
    return x;
}

/* A bad batch is skipped while the allowance lasts, then fails the step;
 * neither touches the weights. */
START_TEST(nonfinite_steps_skip_then_fail)
{
    run a;
    run_open(&a);
    a.tr.o.skip_nonfinite = 1;
    fg_step_report r;
    ck_assert_int_eq(fg_trainer_step(&a.tr, nan_loss, NULL, &r), FG_STEP_SKIPPED);
    ck_assert_int_eq(fg_trainer_step(&a.tr, nan_loss, NULL, &r), FG_STEP_FAILED);
    ck_assert_str_eq(fg_last_error(), "step 1: the loss is NaN");
    ck_assert_int_eq(a.tr.step, 0);
    ck_assert_int_eq(a.tr.optim.step, 0);
    run_close(&a);
}
END_TEST

/* Gradients and loss of one step, seen by inspect_gradients. */
typedef struct seen_step {
    run *r;
    float **grads;
} seen_step;

static void keep_gradients(void *ctx, const fg_state_list *l)
{
    seen_step *s = ctx;
    s->grads = calloc((size_t)l->n, sizeof *s->grads);
    for (int i = 0; i < l->n; i++)
        if (l->items[i].var->grad) {
            size_t n = fg_numel(&l->items[i].var->t);
            s->grads[i] = malloc(n * sizeof(float));
            memcpy(s->grads[i], l->items[i].var->grad, n * sizeof(float));
        }
}

static int always_split(void *ctx, fg_trainer *t)
{
    (void)t;
    return fg_model_batches_can_split(&((run *)ctx)->b);
}

/* A class-conditional Glow's batch computed in two parts at once, one
 * thread each, gives the gradients and loss of the whole batch up to float
 * rounding: each part has its own images, noise and labels, and the kept
 * gradients of the second part are added in. The first step, which
 * initializes actnorm from the batch, is taken whole. */
START_TEST(split_batches_match_whole_ones)
{
    run a, b;
    seen_step sa = {&a, NULL}, sb = {&b, NULL};
    run_open(&a);
    run_open(&b);
    a.tr.o.batch_parts = 1;
    b.tr.o.batch_parts = 2;
    fg_train_hooks ha = {.ctx = &a, .loss = loss, .can_split = always_split};
    fg_train_hooks hb = {.ctx = &b, .loss = loss, .can_split = always_split};
    fg_train_plan p1 = {.total_steps = 1}, p2 = {.total_steps = 2};
    ck_assert(fg_model_batches_can_split(&b.b) == 0);
    ck_assert_int_eq(fg_train_run(&a.tr, &a.it, &p1, &ha, NULL), FG_OK);
    ck_assert_int_eq(fg_train_run(&b.tr, &b.it, &p1, &hb, NULL), FG_OK);
    assert_same_weights(&a.model->state, &b.model->state);
    ck_assert(fg_model_batches_can_split(&b.b));
    ck_assert_int_eq(fg_trainer_batch_parts(&b.tr, 16), 2);
    a.tr.o.inspect_gradients = b.tr.o.inspect_gradients = keep_gradients;
    a.tr.o.inspect_ctx = &sa;
    b.tr.o.inspect_ctx = &sb;
    ck_assert_int_eq(fg_train_run(&a.tr, &a.it, &p2, &ha, NULL), FG_OK);
    ck_assert_int_eq(fg_train_run(&b.tr, &b.it, &p2, &hb, NULL), FG_OK);
    const fg_state_list *l = &a.model->state;
    int compared = 0;
    for (int i = 0; i < l->n; i++) {
        if (!sa.grads[i])
            continue;
        size_t n = fg_numel(&l->items[i].var->t);
        double diff = 0, norm = 0;
        for (size_t k = 0; k < n; k++) {
            diff += ((double)sa.grads[i][k] - sb.grads[i][k]) *
                    ((double)sa.grads[i][k] - sb.grads[i][k]);
            norm += (double)sa.grads[i][k] * sa.grads[i][k];
        }
        ck_assert_msg(sqrt(diff) <= 1e-5 * sqrt(norm) + 1e-9, "%s: |split - whole| %g of %g",
                      l->items[i].name, sqrt(diff), sqrt(norm));
        compared++;
        free(sa.grads[i]);
        free(sb.grads[i]);
    }
    ck_assert_int_gt(compared, 10);
    /* The graphs the parts ran on, for sampling between steps; a never split. */
    ck_assert_ptr_eq(fg_trainer_part_graph(&b.tr, 0), b.tr.g);
    ck_assert_ptr_nonnull(fg_trainer_part_graph(&b.tr, 1));
    ck_assert_ptr_ne(fg_trainer_part_graph(&b.tr, 1), b.tr.g);
    ck_assert_ptr_null(fg_trainer_part_graph(&b.tr, 2));
    ck_assert_ptr_null(fg_trainer_part_graph(&b.tr, -1));
    ck_assert_ptr_eq(fg_trainer_part_graph(&a.tr, 0), a.tr.g);
    ck_assert_ptr_null(fg_trainer_part_graph(&a.tr, 1));
    free(sa.grads);
    free(sb.grads);
    run_close(&a);
    run_close(&b);
}
END_TEST

static fg_var *nan_in_second_part(void *ctx, fg_graph *g, int first, int n, double *metric)
{
    (void)ctx;
    int shape[1] = {1};
    fg_var *x = fg_const(g, 1, shape);
    x->t.data[0] = first > 0 ? NAN : (float)n;
    *metric = 0;
    if (first > 0)
        fg_error("layer 3 saw a NaN");
    return x;
}

/* A part whose loss is not finite skips the step, and the message carries
 * what a layer of that part said, though it ran on another thread. */
START_TEST(a_broken_part_skips_the_step)
{
    run a;
    run_open(&a);
    a.tr.o.skip_nonfinite = 1;
    a.tr.o.batch_parts = 2;
    fg_step_report r;
    ck_assert_int_eq(fg_trainer_step_parts(&a.tr, nan_in_second_part, NULL, 16, &r),
                     FG_STEP_SKIPPED);
    ck_assert_str_eq(r.why, "the loss is NaN; layer 3 saw a NaN");
    ck_assert_int_eq(a.tr.step, 0);
    ck_assert_int_eq(a.tr.optim.step, 0);
    run_close(&a);
}
END_TEST

/* A class-conditional Glow's samples computed in two parts at once are
 * those of one call on the whole batch: each part draws its images' share
 * of every draw and takes its images' labels; the stream ends where the
 * whole call leaves it. */
START_TEST(sample_parts_match_whole_sampling)
{
    run a;
    run_open(&a);
    train_to(&a, 2);
    enum { N = 10 };
    int y[N];
    for (int i = 0; i < N; i++)
        y[i] = (3 * i) % 10;
    const size_t D = (size_t)a.model->c * a.model->h * a.model->w;
    fg_rng r1, r2;
    fg_rng_seed_stream(&r1, 5, 9);
    r2 = r1;
    fg_graph *g = fg_graph_create(), *g2 = fg_graph_create();
    fg_var *whole = fg_model_sample(a.model, g, N, y, NULL, 0.8f, &r1);
    float *parts = malloc(N * D * sizeof(float));
    fg_graph *graphs[2] = {a.tr.g, g2};
    fg_model_sample_parts(a.model, graphs, 2, N, y, 0.8f, &r2, parts);
    ck_assert(r1.counter == r2.counter);
    double diff = 0, norm = 0;
    for (size_t k = 0; k < N * D; k++) {
        diff = fmax(diff, fabs((double)parts[k] - whole->t.data[k]));
        norm = fmax(norm, fabs((double)whole->t.data[k]));
    }
    ck_assert_msg(diff <= 1e-5 * norm, "largest difference %g of %g", diff, norm);
    ck_assert(norm > 0);
    free(parts);
    fg_graph_destroy(g);
    fg_graph_destroy(g2);
    run_close(&a);
}
END_TEST

/* With flip, each image of a batch is its unflipped input (noise and all)
 * or that input mirrored left-right, as the step's flip stream says, and
 * a shard of the batch gets exactly its part of the whole batch's input. */
START_TEST(flips_mirror_whole_images)
{
    run a;
    run_open(&a);
    int idx[16];
    for (int i = 0; i < 16; i++)
        idx[i] = 3 * i;
    fg_batch whole = {idx, 16, 0, 16, 5, 0}, shard = {idx + 8, 8, 8, 16, 5, 0};
    fg_var *plain = fg_model_batch_input(&a.b, a.tr.g, &whole);
    a.b.flip = 1;
    fg_var *flipped = fg_model_batch_input(&a.b, a.tr.g, &whole);
    fg_var *part = fg_model_batch_input(&a.b, a.tr.g, &shard);
    const int C = a.train.c, H = a.train.h, W = a.train.w, D = C * H * W;
    int n_flipped = 0;
    for (int s = 0; s < 16; s++) {
        const float *p = plain->t.data + s * D, *f = flipped->t.data + s * D;
        int same = !memcmp(p, f, D * sizeof(float)), mirrored = 1;
        for (int r = 0; r < C * H; r++)
            for (int x = 0; x < W; x++)
                mirrored &= f[r * W + x] == p[r * W + W - 1 - x];
        ck_assert_msg(same != mirrored, "image %d is neither kept nor mirrored exactly", s);
        n_flipped += mirrored;
    }
    /* Deterministic for this seed and step; both kinds occur. */
    ck_assert_int_gt(n_flipped, 0);
    ck_assert_int_lt(n_flipped, 16);
    ck_assert_mem_eq(part->t.data, flipped->t.data + 8 * D, 8 * D * sizeof(float));
    /* Another step, other coins. */
    whole.step = 6;
    fg_var *next = fg_model_batch_input(&a.b, a.tr.g, &whole);
    a.b.flip = 0;
    fg_var *next_plain = fg_model_batch_input(&a.b, a.tr.g, &whole);
    int differ = 0;
    for (int s = 0; s < 16; s++) {
        int was = memcmp(plain->t.data + s * D, flipped->t.data + s * D, D * sizeof(float));
        int now = memcmp(next_plain->t.data + s * D, next->t.data + s * D, D * sizeof(float));
        differ += (was != 0) != (now != 0);
    }
    ck_assert_int_gt(differ, 0);
    run_close(&a);
}
END_TEST

/* Parts evaluated apart add up to the whole. */
START_TEST(bits_per_dim_of_parts_add_up)
{
    run a;
    run_open(&a);
    int n = a.test.n;
    double whole = fg_model_eval_bpd(a.model, a.tr.g, &a.test, 32, 5, 0);
    double parts = fg_model_eval_bpd_sum(a.model, a.tr.g, &a.test, 32, 5, 0, n / 3) +
                   fg_model_eval_bpd_sum(a.model, a.tr.g, &a.test, 7, 5, n / 3, n - n / 3);
    ck_assert(isfinite(whole) && whole > 0);
    ck_assert_double_eq_tol(parts / n, whole, 1e-9 * whole);
    run_close(&a);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("lifecycle");
    TCase *tc = fg_tcase("lifecycle");
    tcase_add_test(tc, resumed_run_matches_an_uninterrupted_one);
    tcase_add_test(tc, format_1_checkpoints_still_load);
    tcase_add_test(tc, later_formats_are_read_forward);
    tcase_add_test(tc, nonfinite_steps_skip_then_fail);
    tcase_add_test(tc, split_batches_match_whole_ones);
    tcase_add_test(tc, a_broken_part_skips_the_step);
    tcase_add_test(tc, sample_parts_match_whole_sampling);
    tcase_add_test(tc, bits_per_dim_of_parts_add_up);
    tcase_add_test(tc, flips_mirror_whole_images);
    suite_add_tcase(s, tc);
    return s;
}
