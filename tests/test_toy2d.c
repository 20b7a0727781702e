/* The 2-D toys of examples/toy2d: the targets' closed-form densities are
 * normalized and match their samplers; a narrow flow trained for a few
 * hundred steps on eight Gaussians climbs from the standard Gaussian's
 * held-out log-likelihood to near the target's own, and its density still
 * integrates to one over the plane, which only holds when every coupling's
 * log-determinant is right. */
#include "check_main.h"
#include "models/toy2d.h"
#include <math.h>
#include <string.h>
#include <stdlib.h>

enum { HELD = 4000, STEPS = 300, BATCH = 256 };

/* Riemann sum of the closed-form density over [lo, hi]^2 at res x res. */
static double true_mass(fg_toy2d_density d, int res, double lo, double hi)
{
    double h = (hi - lo) / res, s = 0.0;
    float p[2];
    for (int r = 0; r < res; r++)
        for (int c = 0; c < res; c++) {
            double lp;
            p[0] = (float)(lo + (c + 0.5) * h);
            p[1] = (float)(lo + (r + 0.5) * h);
            ck_assert(fg_toy2d_true_log_prob(d, p, 1, &lp));
            s += exp(lp);
        }
    return s * h * h;
}

START_TEST(test_targets)
{
    /* Eight Gaussians of std 0.354 on a circle of radius 2.83: all mass lies
     * well inside [-6, 6]^2; the checkerboard fills half of [-4, 4]^2. */
    double m8 = true_mass(FG_TOY2D_8GAUSSIANS, 300, -6.0, 6.0);
    ck_assert_msg(fabs(m8 - 1.0) < 1e-3, "eight Gaussians integrate to %g", m8);
    double mc = true_mass(FG_TOY2D_CHECKERBOARD, 64, -4.0, 4.0);
    ck_assert_msg(fabs(mc - 1.0) < 1e-9, "checkerboard integrates to %g", mc);

    enum { N = 20000 };
    static float x[2 * N];
    static double lp[N];
    fg_rng r;
    fg_rng_seed(&r, 5);
    fg_toy2d_sample(FG_TOY2D_CHECKERBOARD, &r, N, x);
    ck_assert(fg_toy2d_true_log_prob(FG_TOY2D_CHECKERBOARD, x, N, lp));
    int left = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_msg(isfinite(lp[i]), "checkerboard sample (%g, %g) off the support",
                      x[2 * i], x[2 * i + 1]);
        left += x[2 * i] < 0.0f;
    }
    ck_assert_int_lt(abs(2 * left - N), 600);

    /* Radius 2 sqrt 2 on average, and every centre about equally used. */
    fg_toy2d_sample(FG_TOY2D_8GAUSSIANS, &r, N, x);
    double rad = 0.0;
    int octant[8] = {0};
    for (int i = 0; i < N; i++) {
        rad += hypot(x[2 * i], x[2 * i + 1]);
        double a = atan2(x[2 * i + 1], x[2 * i]) + M_PI / 8.0;
        octant[(int)floor(a / (M_PI / 4.0) + 8.0) % 8]++;
    }
    ck_assert_msg(fabs(rad / N - 2.0 * M_SQRT2) < 0.03, "mean radius %g", rad / N);
    for (int k = 0; k < 8; k++)
        ck_assert_msg(abs(octant[k] - N / 8) < 300, "centre %d drew %d of %d", k, octant[k], N);

    ck_assert(!fg_toy2d_true_log_prob(FG_TOY2D_MOONS, x, N, lp));
    fg_toy2d_density d;
    ck_assert_int_eq(fg_toy2d_density_parse("moons", &d), FG_OK);
    ck_assert_int_eq(d, FG_TOY2D_MOONS);
    ck_assert_int_eq(fg_toy2d_density_parse("spiral", &d), FG_ERR);
}
END_TEST

START_TEST(test_training_eight_gaussians)
{
    fg_set_threads(1);
    fg_rng init, data, held_rng;
    fg_rng_seed_stream(&init, 7, 0);
    fg_rng_seed_stream(&data, 7, 1);
    fg_rng_seed_stream(&held_rng, 7, 2);
    static float held[2 * HELD], batch[2 * BATCH];
    fg_toy2d_sample(FG_TOY2D_8GAUSSIANS, &held_rng, HELD, held);

    fg_toy2d_model m;
    fg_toy2d_options o = {.layers = 4, .hidden = 32, .depth = 2, .actnorm = 1};
    ck_assert_int_eq(fg_toy2d_model_init(&m, &o, &init), FG_OK);

    /* Untrained, every layer is the identity (actnorm not yet initialized,
     * zero last layers), so the model is N(0, I) exactly. */
    double before = fg_toy2d_mean_log_prob(&m, held, HELD), gauss = 0.0;
    for (int i = 0; i < HELD; i++)
        gauss += -log(2.0 * M_PI) -
                 0.5 * ((double)held[2 * i] * held[2 * i] + (double)held[2 * i + 1] * held[2 * i + 1]);
    gauss /= HELD;
    ck_assert_msg(fabs(before - gauss) < 1e-4, "untrained %g, N(0, I) %g", before, gauss);

    for (int s = 0; s < STEPS; s++) {
        fg_toy2d_sample(FG_TOY2D_8GAUSSIANS, &data, BATCH, batch);
        double loss = fg_toy2d_train_step(&m, batch, BATCH, 3e-3);
        ck_assert(isfinite(loss));
    }
    double after = fg_toy2d_mean_log_prob(&m, held, HELD);
    static double lp[HELD];
    ck_assert(fg_toy2d_true_log_prob(FG_TOY2D_8GAUSSIANS, held, HELD, lp));
    double truth = 0.0;
    for (int i = 0; i < HELD; i++)
        truth += lp[i];
    truth /= HELD;
    fprintf(stderr, "toy2d test: held-out ll before %.4f, after %d steps %.4f, target %.4f\n",
            before, STEPS, after, truth);
    ck_assert_msg(after > before + 2.0, "held-out ll rose only from %g to %g", before, after);
    ck_assert_msg(after > -3.6, "held-out ll %g after %d steps (target's own %g)", after, STEPS,
                  truth);
    ck_assert_msg(after < truth + 0.05, "held-out ll %g above the target's own %g", after, truth);

    /* A wrong log-det would scale the density away from one. The box holds
     * all but a sliver of the model's tails. */
    enum { RES = 240 };
    static double grid[RES * RES];
    fg_toy2d_grid_log_prob(&m, RES, -6.0, 6.0, grid);
    double mass = fg_toy2d_grid_mass(grid, RES, -6.0, 6.0);
    fprintf(stderr, "toy2d test: model mass in [-6, 6]^2 %.4f\n", mass);
    ck_assert_msg(fabs(mass - 1.0) < 0.03, "model density integrates to %g", mass);

    /* Sampling runs the flow backwards: its points must sit on the ring. */
    enum { NS = 2000 };
    static float smp[2 * NS];
    fg_rng srng;
    fg_rng_seed_stream(&srng, 7, 3);
    fg_toy2d_model_sample(&m, NS, &srng, smp);
    double rad = 0.0;
    for (int i = 0; i < NS; i++)
        rad += hypot(smp[2 * i], smp[2 * i + 1]);
    rad /= NS;
    fprintf(stderr, "toy2d test: mean radius of model samples %.4f\n", rad);
    ck_assert_msg(fabs(rad - 2.0 * M_SQRT2) < 0.3, "model samples' mean radius %g", rad);
    fg_toy2d_model_free(&m);
}
END_TEST

/* Spline couplings, affine MAF and spline MAF: untrained they are N(0, I)
 * exactly; a short run must raise the held-out likelihood, and the learned
 * density must still integrate to one (a wrong log-det, or a MAF whose
 * network saw the entry it transforms, would not). */
START_TEST(test_spline_and_maf_models)
{
    fg_set_threads(1);
    static const struct { int maf, spline; const char *name; } kinds[] = {
        {0, 1, "spline coupling"}, {1, 0, "affine MAF"}, {1, 1, "spline MAF"}};
    enum { RES = 160, SHORT = 200 };
    static float held[2 * HELD], batch[2 * BATCH];
    static double grid[RES * RES];
    for (int k = 0; k < 3; k++) {
        fg_rng init, data, held_rng;
        fg_rng_seed_stream(&init, 8, 0);
        fg_rng_seed_stream(&data, 8, 1);
        fg_rng_seed_stream(&held_rng, 8, 2);
        fg_toy2d_sample(FG_TOY2D_8GAUSSIANS, &held_rng, HELD, held);
        fg_toy2d_model m;
        fg_toy2d_options o = {.layers = 3, .hidden = 24, .depth = 2, .actnorm = 1,
                              .maf = kinds[k].maf, .spline = kinds[k].spline};
        ck_assert_int_eq(fg_toy2d_model_init(&m, &o, &init), FG_OK);
        double before = fg_toy2d_mean_log_prob(&m, held, HELD), gauss = 0.0;
        for (int i = 0; i < HELD; i++)
            gauss += -log(2.0 * M_PI) - 0.5 * ((double)held[2 * i] * held[2 * i] +
                                               (double)held[2 * i + 1] * held[2 * i + 1]);
        gauss /= HELD;
        ck_assert_msg(fabs(before - gauss) < 1e-4, "%s: untrained %g, N(0, I) %g",
                      kinds[k].name, before, gauss);
        for (int s = 0; s < SHORT; s++) {
            fg_toy2d_sample(FG_TOY2D_8GAUSSIANS, &data, BATCH, batch);
            ck_assert(isfinite(fg_toy2d_train_step(&m, batch, BATCH, 3e-3)));
        }
        double after = fg_toy2d_mean_log_prob(&m, held, HELD);
        fg_toy2d_grid_log_prob(&m, RES, -6.0, 6.0, grid);
        double mass = fg_toy2d_grid_mass(grid, RES, -6.0, 6.0);
        fprintf(stderr, "toy2d test: %-15s held-out ll before %.4f, after %d steps %.4f, "
                "mass in [-6, 6]^2 %.4f\n", kinds[k].name, before, SHORT, after, mass);
        ck_assert_msg(after > before + 1.0, "%s: held-out ll rose only from %g to %g",
                      kinds[k].name, before, after);
        ck_assert_msg(fabs(mass - 1.0) < 0.03, "%s: model density integrates to %g",
                      kinds[k].name, mass);
        if (kinds[k].spline) {
            /* A NaN in the data: the step fails naming the first spline
             * layer that met it, and the program goes on. */
            batch[2 * 7 + 1] = NAN;
            double loss = fg_toy2d_train_step(&m, batch, BATCH, 3e-3);
            const char *want = kinds[k].maf ? "maf (spline): the input holds NaN at sample 7"
                                            : "dense_coupling (spline): the input holds NaN "
                                              "at sample 7";
            fprintf(stderr, "toy2d test: %-15s NaN batch: %s\n", kinds[k].name, fg_last_error());
            ck_assert(isnan(loss));
            ck_assert_msg(strstr(fg_last_error(), "the loss is NaN") &&
                          strstr(fg_last_error(), want), "%s: '%s'", kinds[k].name,
                          fg_last_error());
        }
        fg_toy2d_model_free(&m);
    }
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("toy2d");
    TCase *tc = fg_tcase("toy2d");
    tcase_add_test(tc, test_targets);
    tcase_add_test(tc, test_training_eight_gaussians);
    tcase_add_test(tc, test_spline_and_maf_models);
    suite_add_tcase(s, tc);
    return s;
}
