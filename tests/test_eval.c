/* Evaluation image by image (models/eval.h): one draw is exactly the
 * evaluation training reports, K draws combine into a bound never looser
 * than their mean, the combination agrees with an independent long double
 * reference, and the data sets, transforms and per-image table are what
 * they claim. */
#include "check_main.h"
#include "flowgrad.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* -log2( (1/k) sum_j 2^(-D b_j) ) / D from the definition, in long
 * double, with powers of 2 rather than e and a fixed shift c rather than
 * the best draw: 2^(-D (b_j - c)) stays in range for draws near c. */
static long double reference_bound(const double *b, int k, double dims, double c)
{
    long double s = 0;
    for (int j = 0; j < k; j++)
        s += exp2l(-(long double)dims * ((long double)b[j] - c));
    return c - log2l(s / k) / dims;
}

START_TEST(bound_matches_long_double_reference)
{
    fg_rng rng;
    fg_rng_seed(&rng, 11);
    const double dims[3] = {4, 64, 784};
    for (int t = 0; t < 200; t++) {
        int k = 1 + t % 16;
        double b[16], D = dims[t % 3];
        float u[16];
        fg_rng_uniform(&rng, u, 16);
        /* Draws within a few tenths of a bit of each other, as real ones are. */
        for (int j = 0; j < k; j++)
            b[j] = 3.0 + 0.3 * u[j];
        double got = fg_bpd_importance_weighted(b, k, D);
        long double want = reference_bound(b, k, D, 3.15);
        ck_assert_msg(fabsl((long double)got - want) < 1e-12L, "k %d, D %g: %.15g vs %.15Lg",
                      k, D, got, want);
        /* Between the best draw and the best draw plus log2(k) / D. */
        double best = b[0];
        for (int j = 1; j < k; j++)
            best = fmin(best, b[j]);
        ck_assert(got <= best + log2((double)k) / D + 1e-12 && got >= best - 1e-12);
    }
    /* One draw is returned exactly; 2^(-784 * 3) underflows a double, the
     * combination does not. */
    double one = 3.141592653589793;
    ck_assert(fg_bpd_importance_weighted(&one, 1, 784) == one);
    /* Equal draws average to themselves; one draw far better than the
     * rest is worth a quarter of the mean, log2(4) / D bits/dim. */
    double same[4] = {3, 3, 3, 3}, one_good[4] = {3, 100, 100, 100};
    ck_assert_double_eq_tol(fg_bpd_importance_weighted(same, 4, 784), 3, 1e-14);
    ck_assert_double_eq_tol(fg_bpd_importance_weighted(one_good, 4, 784), 3 + 2.0 / 784, 1e-14);
    /* A NaN draw poisons the image; an infinite one weighs nothing. */
    double nan_draw[2] = {3, NAN}, inf_draw[2] = {3, INFINITY}, all_inf[2] = {INFINITY, INFINITY};
    ck_assert(isnan(fg_bpd_importance_weighted(nan_draw, 2, 64)));
    ck_assert_double_eq_tol(fg_bpd_importance_weighted(inf_draw, 2, 64), 3 + 1.0 / 64, 1e-14);
    ck_assert(isinf(fg_bpd_importance_weighted(all_inf, 2, 64)));
}
END_TEST

/* The tiny class-conditional Glow of the command-line tests, every
 * parameter moved off its identity start so that the flow is not trivial. */
static fg_model *tiny_model(fg_config **cfg)
{
    char path[1024];
    fg_test_path("tests/configs/cli-tiny.yaml", path, sizeof path);
    ck_assert_int_eq(fg_config_load_file(path, cfg), FG_OK);
    fg_model *m;
    ck_assert_int_eq(fg_model_build(&(*cfg)->model, 5, &m), FG_OK);
    fg_rng rng;
    fg_rng_seed(&rng, 99);
    for (int i = 0; i < m->state.n; i++) {
        fg_state_entry *e = &m->state.items[i];
        if (e->kind != FG_PARAM)
            continue;
        size_t n = fg_numel(&e->var->t);
        float *u = malloc(n * sizeof *u);
        fg_rng_uniform(&rng, u, n);
        for (size_t j = 0; j < n; j++)
            e->var->t.data[j] += 0.1f * (u[j] - 0.5f);
        free(u);
    }
    return m;
}

/* The evaluation as it was before it went image by image: one noise
 * stream continued across batches, each batch's float bits/dim summed by
 * fg_k_sum. */
static double todays_eval_sum(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                              uint64_t seed, int count)
{
    int idx[64], y[64];
    fg_rng rng;
    fg_rng_seed_stream(&rng, seed, FG_STREAM_EVAL);
    double sum = 0;
    for (int start = 0; start < count; start += batch) {
        int n = count - start < batch ? count - start : batch;
        for (int i = 0; i < n; i++)
            idx[i] = start + i;
        fg_dataset_labels(d, idx, n, y);
        fg_graph_reset(g);
        fg_set_grad_enabled(g, 0);
        fg_var *x = fg_model_input(g, d, idx, n, m->n_bits, &rng);
        sum += fg_k_sum((size_t)n, fg_model_bits_per_dim(m, g, x, y)->t.data);
        fg_set_grad_enabled(g, 1);
    }
    fg_graph_reset(g);
    return sum;
}

START_TEST(one_draw_is_todays_evaluation)
{
    fg_config *cfg;
    fg_model *m = tiny_model(&cfg);
    fg_dataset d;
    fg_dataset_synthetic(&d, 45, 1, 8, 8, 3);
    fg_graph *g = fg_graph_create();
    double bpd[45], part[20];
    /* 45 images in batches of 16: two full batches and a short one. */
    double sum = fg_model_eval_images(m, g, &d, 16, 7, 0, 45, 1, bpd, NULL);
    ck_assert(sum == todays_eval_sum(m, g, &d, 16, 7, 45));
    ck_assert(sum / 45 == fg_model_eval_bpd(m, g, &d, 16, 7, 0));
    ck_assert(sum == fg_model_eval_bpd_sum(m, g, &d, 16, 7, 0, 45));
    double mean = 0;
    for (int i = 0; i < 45; i++) {
        ck_assert(isfinite(bpd[i]) && bpd[i] > 0.5 && bpd[i] < 20);
        mean += bpd[i] / 45;
    }
    ck_assert_double_eq_tol(mean, sum / 45, 1e-9);
    /* Training's test pass: the same mean to the bit, and the summary of
     * the same per-image values. */
    fg_bpd_summary got, want;
    ck_assert(fg_model_eval_bpd_ranks_summary(m, g, &d, 16, 7, &got) ==
              fg_model_eval_bpd_ranks(m, g, &d, 16, 7));
    ck_assert(fg_model_eval_bpd_ranks(m, g, &d, 16, 7) == sum / 45);
    fg_bpd_summarize(bpd, 45, &want);
    ck_assert_int_eq(got.n, 45);
    ck_assert_int_eq(got.worst, want.worst);
    ck_assert(got.worst_bpd == want.worst_bpd && got.median == want.median &&
              got.mean_without_worst == want.mean_without_worst);
    /* An image gets the same noise in any range and any batch size. */
    fg_model_eval_images(m, g, &d, 7, 7, 13, 20, 1, part, NULL);
    for (int i = 0; i < 20; i++)
        ck_assert_msg(part[i] == bpd[13 + i], "image %d: %.9g vs %.9g", 13 + i, part[i],
                      bpd[13 + i]);
    fg_graph_destroy(g);
    fg_dataset_free(&d);
    fg_model_free(m);
    fg_config_free(cfg);
}
END_TEST

START_TEST(more_draws_never_loosen_the_bound)
{
    fg_config *cfg;
    fg_model *m = tiny_model(&cfg);
    fg_dataset d;
    fg_dataset_synthetic(&d, 24, 1, 8, 8, 4);
    fg_graph *g = fg_graph_create();
    enum { N = 24, K = 6 };
    double one[N], bound[N], draws[N * K], first4[N * 4];
    fg_model_eval_images(m, g, &d, 10, 7, 0, N, 1, one, NULL);
    double sum = fg_model_eval_images(m, g, &d, 10, 7, 0, N, K, bound, draws);
    fg_model_eval_images(m, g, &d, 10, 7, 0, N, 4, NULL, first4);
    double bound_mean = 0, draws_mean = 0;
    for (int i = 0; i < N; i++) {
        const double *v = draws + i * K;
        double mean = 0;
        for (int k = 0; k < K; k++)
            mean += v[k] / K;
        /* Jensen, image by image: log of a mean >= mean of logs. */
        ck_assert_msg(bound[i] <= mean + 1e-12, "image %d: %.9g > %.9g", i, bound[i], mean);
        ck_assert(bound[i] == fg_bpd_importance_weighted(v, K, 64));
        /* Draw 0 is the single-draw evaluation; the others are new noise,
         * and draw k is the same whatever K. */
        ck_assert(v[0] == one[i]);
        for (int k = 1; k < K; k++)
            ck_assert(v[k] != v[0]);
        for (int k = 0; k < 4; k++)
            ck_assert(first4[i * 4 + k] == v[k]);
        bound_mean += bound[i] / N;
        draws_mean += mean / N;
    }
    ck_assert_double_eq_tol(sum / N, bound_mean, 1e-9);
    ck_assert_msg(bound_mean < draws_mean, "%.6f vs %.6f", bound_mean, draws_mean);
    fg_graph_destroy(g);
    fg_dataset_free(&d);
    fg_model_free(m);
    fg_config_free(cfg);
}
END_TEST

START_TEST(transforms_do_what_they_say)
{
    fg_dataset d, t;
    fg_dataset_synthetic(&d, 6, 2, 5, 4, 1);
    fg_dataset_synthetic(&t, 6, 2, 5, 4, 1);
    fg_dataset_transform(&t, FG_TRANSFORM_FLIP_VERTICAL, 0);
    for (int n = 0; n < 6; n++)
        for (int c = 0; c < 2; c++)
            for (int y = 0; y < 5; y++)
                for (int x = 0; x < 4; x++)
                    ck_assert_int_eq(t.images[((n * 2 + c) * 5 + y) * 4 + x],
                                     d.images[((n * 2 + c) * 5 + (4 - y)) * 4 + x]);
    fg_dataset_transform(&t, FG_TRANSFORM_FLIP_VERTICAL, 0);
    ck_assert(!memcmp(t.images, d.images, 6 * 2 * 5 * 4));
    fg_dataset_transform(&t, FG_TRANSFORM_INVERT, 0);
    for (int i = 0; i < 6 * 2 * 5 * 4; i++)
        ck_assert_int_eq(t.images[i], 255 - d.images[i]);
    ck_assert(!memcmp(t.labels, d.labels, 6));
    fg_dataset_free(&t);

    /* Noise: every value, deterministic from the seed, uniform-looking. */
    fg_dataset a, b;
    fg_dataset_synthetic(&a, 200, 1, 8, 8, 1);
    fg_dataset_synthetic(&b, 200, 1, 8, 8, 1);
    fg_dataset_transform(&a, FG_TRANSFORM_NOISE, 42);
    fg_dataset_transform(&b, FG_TRANSFORM_NOISE, 42);
    ck_assert(!memcmp(a.images, b.images, 200 * 64));
    double mean = 0;
    int low = 0, high = 0;
    for (int i = 0; i < 200 * 64; i++) {
        mean += a.images[i] / (200.0 * 64);
        low += a.images[i] < 16;
        high += a.images[i] >= 240;
    }
    /* 12800 values: the mean of U{0..255} is 127.5 +- 0.65 (one sigma). */
    ck_assert_msg(fabs(mean - 127.5) < 4, "mean %.2f", mean);
    ck_assert(low > 600 && low < 1000 && high > 600 && high < 1000);
    fg_dataset_transform(&b, FG_TRANSFORM_NOISE, 43);
    ck_assert(memcmp(a.images, b.images, 200 * 64) != 0);

    fg_image_transform tr;
    ck_assert_int_eq(fg_image_transform_parse("inverted", &tr), FG_OK);
    ck_assert_int_eq(tr, FG_TRANSFORM_INVERT);
    ck_assert_str_eq(fg_image_transform_name(FG_TRANSFORM_NOISE), "noise");
    ck_assert_int_eq(fg_image_transform_parse("upside-down", &tr), FG_ERR);
    ck_assert(strstr(fg_last_error(), "flipped-vertical, inverted or noise") != NULL);
    fg_dataset_free(&a);
    fg_dataset_free(&b);
    fg_dataset_free(&d);
}
END_TEST

START_TEST(evaluation_sets)
{
    char path[1024];
    fg_test_path("tests/configs/cli-tiny.yaml", path, sizeof path);
    fg_config *cfg;
    ck_assert_int_eq(fg_config_load_file(path, &cfg), FG_OK);
    fg_eval_set own, inv, train;
    ck_assert_int_eq(fg_eval_set_load(cfg, NULL, 0, -1, &own), FG_OK);
    ck_assert_str_eq(own.title, "synthetic test");
    ck_assert_int_eq(own.data.n, 256);
    ck_assert_int_eq(fg_eval_set_load(cfg, "inverted", 0, -1, &inv), FG_OK);
    ck_assert_str_eq(inv.title, "inverted synthetic test");
    for (int i = 0; i < 256 * 64; i++)
        ck_assert_int_eq(inv.data.images[i], 255 - own.data.images[i]);
    ck_assert_int_eq(fg_eval_set_load(cfg, "synthetic", 1, -1, &train), FG_OK);
    ck_assert_str_eq(train.title, "synthetic train");
    ck_assert_int_eq(train.data.n, 1024);

    fg_eval_set bad;
    ck_assert_int_eq(fg_eval_set_load(cfg, "fashion-mnist", 0, -1, &bad), FG_ERR);
    ck_assert(strstr(fg_last_error(), "28x28x1") && strstr(fg_last_error(), "8x8x1"));
    ck_assert_ptr_null(bad.data.images);
    ck_assert_int_eq(fg_eval_set_load(cfg, "svhn", 0, -1, &bad), FG_ERR);
    ck_assert(strstr(fg_last_error(), "unknown data set 'svhn'") != NULL);
    ck_assert_int_eq(fg_eval_set_load(cfg, "mnist", 0, -1, &bad), FG_ERR);
    ck_assert(strstr(fg_last_error(), "no default folder") != NULL);
    /* A class-conditional model refuses labels beyond its classes. */
    cfg->model.classes = 3;
    ck_assert_int_eq(fg_eval_set_load(cfg, NULL, 0, -1, &bad), FG_ERR);
    ck_assert(strstr(fg_last_error(), "has 3 classes") != NULL);
    fg_eval_set_free(&own);
    fg_eval_set_free(&inv);
    fg_eval_set_free(&train);
    fg_config_free(cfg);
}
END_TEST

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

START_TEST(per_image_table)
{
    char dir[256], path[512];
    fg_test_scratch_dir("eval", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/per-image.csv", dir);
    fg_dataset d;
    fg_dataset_synthetic(&d, 5, 1, 4, 4, 2);
    double bpd[3] = {3.25, 4.5, NAN};
    ck_assert_int_eq(fg_eval_write_csv(path, &d, 1, 3, bpd, NULL), FG_OK);
    char want[256];
    snprintf(want, sizeof want, "index,label,bits_per_dim\n1,%d,3.250000\n2,%d,4.500000\n"
             "3,%d,nan\n", d.labels[1], d.labels[2], d.labels[3]);
    ck_assert_str_eq(slurp(path), want);
    const char *names[5] = {"a.png", "b,c.png", "say \"hi\".png", "d.png", "e.png"};
    ck_assert_int_eq(fg_eval_write_csv(path, &d, 0, 3, bpd, names), FG_OK);
    snprintf(want, sizeof want, "file,label,bits_per_dim\na.png,%d,3.250000\n"
             "\"b,c.png\",%d,4.500000\n\"say \"\"hi\"\".png\",%d,nan\n", d.labels[0],
             d.labels[1], d.labels[2]);
    ck_assert_str_eq(slurp(path), want);
    /* A folder that is not there: an error naming the path, nothing made. */
    char missing[512];
    snprintf(missing, sizeof missing, "%s/no/such/folder/t.csv", dir);
    ck_assert_int_eq(fg_eval_write_csv(missing, &d, 0, 3, bpd, NULL), FG_ERR);
    ck_assert(strstr(fg_last_error(), missing) != NULL);
    fg_dataset_free(&d);
    remove(path);
    rmdir(dir);
}
END_TEST

/* The median and the worst image: one image in the millions carries the
 * mean, and the mean without it keeps every digit of the others. */
START_TEST(summary_names_the_image_that_moves_the_mean)
{
    enum { N = 1001 };
    static double bpd[N];
    double rest = 0.0;
    for (int i = 0; i < N; i++) {
        bpd[i] = 3.0 + (double)((i * 37) % 101) / 100.0;   /* 3.00 .. 4.00 */
        if (i != 417)
            rest += bpd[i];
    }
    bpd[417] = 3.27e12;   /* beyond the 3.3 million seen, to test the digits kept */
    fg_bpd_summary s;
    fg_bpd_summarize(bpd, N, &s);
    ck_assert_int_eq(s.n, N);
    ck_assert_int_eq(s.worst, 417);
    ck_assert(s.worst_bpd == 3.27e12);
    ck_assert_double_eq_tol(s.mean, (rest + 3.27e12) / N, 1e-3);
    ck_assert_double_eq_tol(s.mean_without_worst, rest / (N - 1), 1e-12);
    /* The sorted values' middle one, found by counting instead of sorting:
     * the median m has at most N/2 values below it and at most N/2 above. */
    int below = 0, above = 0;
    for (int i = 0; i < N; i++) {
        below += bpd[i] < s.median;
        above += bpd[i] > s.median;
    }
    ck_assert_int_le(below, N / 2);
    ck_assert_int_le(above, N / 2);
    ck_assert(fg_bpd_summary_dominated(&s, 0.01));

    /* Without the outlier nothing is flagged, and an even count takes the
     * mean of the middle two. */
    double calm[4] = {3.5, 3.1, 3.9, 3.3};
    fg_bpd_summarize(calm, 4, &s);
    ck_assert_double_eq_tol(s.median, 3.4, 1e-15);
    ck_assert_int_eq(s.worst, 2);
    ck_assert_double_eq_tol(s.mean_without_worst, (3.5 + 3.1 + 3.3) / 3, 1e-15);
    ck_assert(fg_bpd_summary_dominated(&s, 0.14));      /* 3.45 -> 3.30 */
    ck_assert(!fg_bpd_summary_dominated(&s, 0.16));

    /* A NaN image is the worst, is left out of the median, and always flags. */
    double bad[3] = {3.0, NAN, 4.0};
    fg_bpd_summarize(bad, 3, &s);
    ck_assert_int_eq(s.worst, 1);
    ck_assert(isnan(s.mean));
    ck_assert_double_eq_tol(s.median, 3.5, 1e-15);
    ck_assert_double_eq_tol(s.mean_without_worst, 3.5, 1e-15);
    ck_assert(fg_bpd_summary_dominated(&s, 1e9));

    /* One image and none. */
    fg_bpd_summarize(bad, 1, &s);
    ck_assert(s.median == 3.0 && s.mean_without_worst == 3.0 && s.worst == 0);
    ck_assert(!fg_bpd_summary_dominated(&s, 0.0));
    fg_bpd_summarize(bad, 0, &s);
    ck_assert_int_eq(s.worst, -1);
    ck_assert(isnan(s.mean) && isnan(s.median));
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("eval");
    TCase *tc = fg_tcase("eval");
    tcase_add_test(tc, bound_matches_long_double_reference);
    tcase_add_test(tc, one_draw_is_todays_evaluation);
    tcase_add_test(tc, more_draws_never_loosen_the_bound);
    tcase_add_test(tc, transforms_do_what_they_say);
    tcase_add_test(tc, evaluation_sets);
    tcase_add_test(tc, per_image_table);
    tcase_add_test(tc, summary_names_the_image_that_moves_the_mean);
    suite_add_tcase(s, tc);
    return s;
}
