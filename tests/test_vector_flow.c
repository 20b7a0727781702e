/* The vector flow model (models/vector_flow.h): built in C from layers
 * that take (N, D), trained by the library trainer on a class-conditional
 * density, its log-density, samples per class, state names, save and
 * reload; bad layers and labels are errors that name them; a flow
 * conditioned on a continuous variable. */
#include "check_main.h"
#include "flowgrad.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { D = 4, CLASSES = 3, N = 192, STEPS = 300, LAYERS = 3 };

/* n points of D entries with labels i % CLASSES: class k is a Gaussian
 * centred at 2 k on every entry, with spreads that differ per entry and
 * entries 0 and 1 correlated. */
static void draw(fg_rng *rng, float *x, int *y, int n)
{
    for (int i = 0; i < n; i++) {
        float e[D];
        fg_rng_normal(rng, e, D);
        y[i] = i % CLASSES;
        for (int k = 0; k < D; k++)
            x[i * D + k] = 2.0f * y[i] + (0.3f + 0.2f * k) * e[k];
        x[i * D + 1] += 0.8f * e[0];
    }
}

/* actnorm, LU invconv, an affine dense coupling, a shuffle and an affine
 * MAF per block. */
static int build(fg_vector_flow *m, uint64_t seed, int classes)
{
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    fg_flow *layers[5 * LAYERS];
    int n = 0;
    for (int i = 0; i < LAYERS; i++) {
        layers[n++] = fg_actnorm_create(&(fg_actnorm_options){.channels = D});
        layers[n++] = fg_invconv_create(&(fg_invconv_options){.channels = D, .lu = 1,
                                                                .rng = &rng});
        layers[n++] = fg_dense_coupling_create(&(fg_dense_coupling_options){
            .dim = D, .hidden = 16, .layers = 1, .transform = FG_TRANSFORM_AFFINE,
            .scale = FG_COUPLING_SCALE_TANH, .rng = &rng});
        layers[n++] = fg_permute_create(&(fg_permute_options){.channels = D, .shuffle = 1,
                                                                .rng = &rng});
        layers[n++] = fg_autoregressive_create(&(fg_autoregressive_options){
            .dim = D, .hidden = 16, .layers = 1, .transform = FG_TRANSFORM_AFFINE,
            .scale = FG_COUPLING_SCALE_TANH, .rng = &rng});
    }
    fg_vector_flow_options o = {.dim = D, .layers = layers, .n_layers = n, .learn_prior = 1,
                                .n_classes = classes,
                                .train = {.optimizer = FG_ADAM, .lr = 1e-2, .warmup = 10}};
    return fg_vector_flow_init(m, &o);
}

static double mean_of(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s / n;
}

START_TEST(test_train_sample_reload)
{
    fg_set_threads(1);
    fg_vector_flow m, again;
    ck_assert_msg(build(&m, 1, CLASSES) == FG_OK, "%s", fg_last_error());
    ck_assert_msg(build(&again, 2, CLASSES) == FG_OK, "%s", fg_last_error());
    ck_assert_ptr_nonnull(fg_state_list_find(&m.state, "flow.0.actnorm.bias"));
    ck_assert_ptr_nonnull(fg_state_list_find(&m.state, "flow.4.maf.out.weight"));
    ck_assert_ptr_nonnull(fg_state_list_find(&m.state, "prior.learn_top.bias"));
    ck_assert_ptr_nonnull(fg_state_list_find(&m.state, "prior.project_y.weight"));

    static float x[N * D], held[N * D];
    static int y[N], held_y[N];
    static double lp[N];
    fg_rng data;
    fg_rng_seed(&data, 3);
    draw(&data, held, held_y, N);
    ck_assert_int_eq(fg_vector_flow_log_prob(&m, held, held_y, N, lp), FG_OK);
    double before = mean_of(lp, N);
    for (int s = 0; s < STEPS; s++) {
        draw(&data, x, y, N);
        fg_step_report r;
        ck_assert_msg(fg_vector_flow_train_step(&m, x, y, N, &r) == FG_OK, "%s",
                      fg_last_error());
        ck_assert(isfinite(r.loss));
    }
    ck_assert_int_eq(fg_vector_flow_log_prob(&m, held, held_y, N, lp), FG_OK);
    double after = mean_of(lp, N);

    /* The class matters: the same points under the wrong labels are less
     * likely. */
    static int wrong[N];
    for (int i = 0; i < N; i++)
        wrong[i] = (held_y[i] + 1) % CLASSES;
    ck_assert_int_eq(fg_vector_flow_log_prob(&m, held, wrong, N, lp), FG_OK);
    double mislabelled = mean_of(lp, N);

    /* Samples of class k sit around 2 k. */
    fg_rng rng;
    fg_rng_seed(&rng, 4);
    double centre[CLASSES];
    for (int c = 0; c < CLASSES; c++) {
        static int labels[N];
        static float s[N * D];
        for (int i = 0; i < N; i++)
            labels[i] = c;
        ck_assert_int_eq(fg_vector_flow_sample(&m, N, labels, 1.0f, &rng, s), FG_OK);
        centre[c] = 0;
        for (int i = 0; i < N * D; i++)
            centre[c] += s[i] / (N * D);
    }
    printf("vector flow: held-out log p %.4f -> %.4f after %d steps, %.4f mislabelled; "
           "sample centres %.3f %.3f %.3f\n", before, after, STEPS, mislabelled, centre[0],
           centre[1], centre[2]);
    fflush(stdout);
    ck_assert_msg(after > before + 1.0, "held-out log p rose only from %g to %g", before,
                  after);
    ck_assert_msg(mislabelled < after - 1.0, "wrong labels give %g, right ones %g",
                  mislabelled, after);
    for (int c = 0; c < CLASSES; c++)
        ck_assert_msg(fabs(centre[c] - 2.0 * c) < 0.5, "class %d samples centre at %g", c,
                      centre[c]);

    /* The state copied into a flow built from another seed gives the same
     * densities, to the bit. */
    static double lp2[N];
    ck_assert_int_eq(fg_state_list_copy_values(&again.state, &m.state), FG_OK);
    ck_assert_int_eq(fg_vector_flow_log_prob(&m, held, held_y, N, lp), FG_OK);
    ck_assert_int_eq(fg_vector_flow_log_prob(&again, held, held_y, N, lp2), FG_OK);
    for (int i = 0; i < N; i++)
        ck_assert_double_eq(lp[i], lp2[i]);
    fg_vector_flow_free(&m);
    fg_vector_flow_free(&again);
    fg_vector_flow_free(&again);   /* a freed model is fine */
}
END_TEST

START_TEST(test_errors)
{
    fg_rng rng;
    fg_rng_seed(&rng, 5);
    fg_vector_flow m;

    /* A layer that failed to be created: its own message is kept. */
    fg_flow *missing[2] = {fg_actnorm_create(&(fg_actnorm_options){.channels = D}),
                           fg_dense_coupling_create(&(fg_dense_coupling_options){
                               .dim = 3, .hidden = 8, .layers = 1, .rng = &rng})};
    ck_assert_ptr_null(missing[1]);
    fg_vector_flow_options o = {.dim = D, .layers = missing, .n_layers = 2};
    ck_assert_int_eq(fg_vector_flow_init(&m, &o), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "vector_flow: layer 1 was not created: dense_coupling: "
                                      "needs an even dimension of at least 2, got 3");

    /* A layer for images, and one built for another length. */
    fg_flow *conv[2] = {fg_actnorm_create(&(fg_actnorm_options){.channels = D}),
                        fg_coupling_create(&(fg_coupling_options){
                            .channels = D, .hidden = 8, .rng = &rng})};
    o.layers = conv;
    ck_assert_int_eq(fg_vector_flow_init(&m, &o), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "vector_flow: layer 1: coupling: input (1, 4) is a batch "
                                      "of vectors (N, D); the layer works on image batches "
                                      "(N, C, H, W)");
    fg_flow *longer[1] = {fg_scale_diag_create(D + 2)};
    o.layers = longer;
    o.n_layers = 1;
    ck_assert_int_eq(fg_vector_flow_init(&m, &o), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "vector_flow: layer 0: scale_diag: input (1, 4) holds "
                                      "vectors of 4 entries, the layer was built for 6");

    /* Labels must suit the prior. */
    ck_assert_int_eq(build(&m, 1, CLASSES), FG_OK);
    float x[2 * D] = {0};
    int bad[2] = {0, 3};
    double lp[2];
    fg_step_report r;
    ck_assert_int_eq(fg_vector_flow_log_prob(&m, x, NULL, 2, lp), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "vector_flow: the prior depends on the class (3 "
                                      "classes); give a label per point");
    ck_assert_int_eq(fg_vector_flow_train_step(&m, x, bad, 2, &r), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "vector_flow: label 3 of point 1 is outside [0, 3)");
    ck_assert(isnan(r.loss));
    ck_assert_int_eq(r.outcome, FG_STEP_FAILED);
    ck_assert_int_eq(m.tr.step, 0);
    fg_vector_flow_free(&m);
    ck_assert_int_eq(build(&m, 1, 0), FG_OK);
    ck_assert_int_eq(fg_vector_flow_sample(&m, 2, bad, 1.0f, &rng, x), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "vector_flow: labels given to a flow without classes");
    fg_vector_flow_free(&m);
}
END_TEST

/* A 2-D flow conditioned on a continuous t in [-1, 1] (dense couplings and
 * the learned prior take t): x0 = 2t + 0.3 e, x1 = -t + 0.3 e'. Training
 * raises log p(x | t); samples at t = -1 and t = 1 lie at the data's
 * means for those t; and the condition must be given exactly when the
 * flow has one. */
static void draw_conditioned(fg_rng *rng, float *x, float *t, int n)
{
    for (int i = 0; i < n; i++) {
        float e[2], u;
        fg_rng_normal(rng, e, 2);
        fg_rng_uniform(rng, &u, 1);
        t[i] = 2.0f * u - 1.0f;
        x[2 * i] = 2.0f * t[i] + 0.3f * e[0];
        x[2 * i + 1] = -t[i] + 0.3f * e[1];
    }
}

START_TEST(test_continuous_condition)
{
    fg_rng rng;
    fg_rng_seed(&rng, 41);
    fg_flow *layers[6];
    int n = 0;
    for (int i = 0; i < 3; i++) {
        layers[n++] = fg_dense_coupling_create(&(fg_dense_coupling_options){
            .dim = 2, .hidden = 16, .layers = 1, .transform = FG_TRANSFORM_AFFINE,
            .scale = FG_COUPLING_SCALE_TANH, .rng = &rng, .cond_channels = 1});
        layers[n++] = fg_permute_create(&(fg_permute_options){.channels = 2});
    }
    fg_vector_flow m;
    fg_vector_flow_options o = {.dim = 2, .layers = layers, .n_layers = n, .learn_prior = 1,
                                .cond_channels = 1,
                                .train = {.optimizer = FG_ADAM, .lr = 1e-2, .warmup = 10}};
    ck_assert_int_eq(fg_vector_flow_init(&m, &o), FG_OK);
    enum { P = 256 };
    float x[2 * P], t[P];
    double before[P], after[P];
    draw_conditioned(&rng, x, t, P);
    ck_assert_int_eq(fg_vector_flow_log_prob_cond(&m, x, NULL, t, P, before), FG_OK);
    for (int s = 0; s < 600; s++) {
        draw_conditioned(&rng, x, t, P);
        ck_assert_int_eq(fg_vector_flow_train_step_cond(&m, x, NULL, t, P, NULL), FG_OK);
    }
    draw_conditioned(&rng, x, t, P);
    ck_assert_int_eq(fg_vector_flow_log_prob_cond(&m, x, NULL, t, P, after), FG_OK);
    draw_conditioned(&rng, x, t, P);
    ck_assert_int_eq(fg_vector_flow_log_prob_cond(&m, x, NULL, t, P, before), FG_OK);
    /* Given t, the data's entropy is 2 log(0.3 sqrt(2 pi e)) = 0.43 nats,
     * so log p(x | t) is -0.43 at best; a flow blind to t sees x spread
     * along a segment of length 2 sqrt(5) and reaches about -1.7 at best. */
    printf("vector_flow: conditioned on t, mean log p(x | t) = %.3f\n", mean_of(after, P));
    ck_assert_msg(mean_of(after, P) > -1.2, "mean log p(x | t) = %g", mean_of(after, P));
    for (int end = -1; end <= 1; end += 2) {
        float c[P], sx[2 * P];
        for (int i = 0; i < P; i++)
            c[i] = (float)end;
        ck_assert_int_eq(fg_vector_flow_sample_cond(&m, P, NULL, c, 1.0f, &rng, sx), FG_OK);
        double mx = 0, my = 0;
        for (int i = 0; i < P; i++)
            mx += sx[2 * i] / P, my += sx[2 * i + 1] / P;
        printf("vector_flow: samples at t = %d: mean (%.3f, %.3f)\n", end, mx, my);
        /* The two ends lie 4.5 apart; their samples must each be near
         * their own. */
        ck_assert_msg(fabs(mx - 2 * end) < 0.4 && fabs(my + end) < 0.4,
                      "samples at t = %d: mean (%g, %g)", end, mx, my);
    }
    ck_assert_int_eq(fg_vector_flow_log_prob(&m, x, NULL, P, before), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "vector_flow: the flow is conditional (1 condition "
                                      "channels); give a condition per point");
    fg_vector_flow_free(&m);
    /* The condition reaches the prior through its learned conv. */
    fg_flow *one[1] = {fg_scale_diag_create(2)};
    fg_vector_flow_options plain = {.dim = 2, .layers = one, .n_layers = 1, .learn_prior = 0,
                                    .cond_channels = 1};
    ck_assert_int_eq(fg_vector_flow_init(&m, &plain), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "vector_flow: prior: a condition of 1 channels needs "
                                      "learn_top (the condition reaches the prior through the "
                                      "learned conv), and the channels must not be negative");
    float c1[1] = {0}, x1[2] = {0};
    double l1[1];
    fg_flow *two[1] = {fg_scale_diag_create(2)};
    fg_vector_flow_options none = {.dim = 2, .layers = two, .n_layers = 1};
    ck_assert_int_eq(fg_vector_flow_init(&m, &none), FG_OK);
    ck_assert_int_eq(fg_vector_flow_log_prob_cond(&m, x1, NULL, c1, 1, l1), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "vector_flow: a condition given to a flow without one");
    fg_vector_flow_free(&m);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("vector_flow");
    TCase *tc = fg_tcase("vector_flow");
    tcase_add_test(tc, test_train_sample_reload);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_continuous_condition);
    suite_add_tcase(s, tc);
    return s;
}
