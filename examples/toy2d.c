/* toy2d: fits a flow of dense couplings or MAF layers, affine or spline,
 * to a 2-D toy density drawn
 * fresh every step, reports the held-out log-likelihood (and the target's
 * own where it has a closed form), and draws the learned density next to
 * samples of the model. */
#include "examples/toy2d_png.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct options {
    fg_toy2d_density density;
    int have_density;
    int steps, batch, layers, hidden, threads, seed, maf, spline, bins;
    double lr;
    const char *out;
} options;

enum { HELDOUT = 20000, GRID = 200, PANEL = 400, SCATTER = 5000, REPORTS = 10 };
#define VIEW_LO (-4.0)
#define VIEW_HI 4.0

static void usage(FILE *f)
{
    fputs("usage: toy2d --density moons|8gaussians|checkerboard [--steps N] [--batch B]\n"
          "             [--layers L] [--hidden H] [--block coupling|maf]\n"
          "             [--transform affine|spline] [--bins K] [--lr LR] [--seed S]\n"
          "             [--out FILE.png] [--threads T] [--help]\n\n"
          "Trains L blocks of (actnorm, dense coupling or MAF, reverse permutation) with a\n"
          "standard Gaussian prior by Adam on fresh samples of the density, prints the\n"
          "average log-likelihood of a held-out sample of 20000 points as it goes, and\n"
          "writes a PNG: the learned density over [-4, 4]^2 beside 5000 model samples.\n\n"
          "  --density D  target: moons, 8gaussians or checkerboard (required)\n"
          "  --steps N    Adam steps (default 3000)\n"
          "  --batch B    points per step (default 256)\n"
          "  --layers L   coupling blocks (default 8)\n"
          "  --hidden H   width of the two hidden layers of each coupling (default 64)\n"
          "  --block B    coupling (default; one coordinate conditions the other) or\n"
          "               maf (masked autoregressive: density in one pass)\n"
          "  --transform T  affine (default; tanh-bounded scale) or spline (rational-\n"
          "               quadratic, K bins on [-4, 4], identity outside)\n"
          "  --bins K     spline bins, 2..64 (default 8)\n"
          "  --lr LR      Adam learning rate (default 2e-3), decayed linearly to 0\n"
          "               over the second half of the steps\n"
          "  --seed S     seed of the weights, the data and the samples (default 1)\n"
          "  --out FILE   PNG to write (default toy2d-<density>.png)\n"
          "  --threads T  threads for the kernels (default 1)\n", f);
}

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "toy2d: %s expects an integer in [%d, %d], got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.steps = 3000, .batch = 256, .layers = 8, .hidden = 64, .threads = 1,
                   .seed = 1, .lr = 2e-3, .bins = 8};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "toy2d: %s\n\n", strncmp(a, "--", 2) ? "unexpected argument"
                                                                 : "option needs a value");
            usage(stderr);
            return -1;
        }
        const char *v = argv[++i];
        int rc = 0;
        if (!strcmp(a, "--density")) {
            rc = fg_toy2d_density_parse(v, &o->density);
            if (rc)
                fprintf(stderr, "toy2d: --density: %s\n", fg_last_error());
            o->have_density = 1;
        } else if (!strcmp(a, "--steps")) rc = parse_int(a, v, 0, INT_MAX, &o->steps);
        else if (!strcmp(a, "--batch")) rc = parse_int(a, v, 1, 1 << 20, &o->batch);
        else if (!strcmp(a, "--layers")) rc = parse_int(a, v, 1, 256, &o->layers);
        else if (!strcmp(a, "--hidden")) rc = parse_int(a, v, 1, 1 << 14, &o->hidden);
        else if (!strcmp(a, "--threads")) rc = parse_int(a, v, 1, 256, &o->threads);
        else if (!strcmp(a, "--bins")) rc = parse_int(a, v, 2, FG_RQ_MAX_BINS, &o->bins);
        else if (!strcmp(a, "--block") || !strcmp(a, "--transform")) {
            int block = !strcmp(a, "--block");
            const char *first = block ? "coupling" : "affine", *second = block ? "maf" : "spline";
            int *flag = block ? &o->maf : &o->spline;
            if (!strcmp(v, first) || !strcmp(v, second)) {
                *flag = !strcmp(v, second);
            } else {
                fprintf(stderr, "toy2d: %s expects %s or %s, got '%s'\n", a, first, second, v);
                rc = -1;
            }
        }
        else if (!strcmp(a, "--seed")) rc = parse_int(a, v, 0, INT_MAX, &o->seed);
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--lr")) {
            char *end;
            o->lr = strtod(v, &end);
            if (end == v || *end || !(o->lr > 0.0 && o->lr < 1.0)) {
                fprintf(stderr, "toy2d: --lr expects a number in (0, 1), got '%s'\n", v);
                rc = -1;
            }
        } else {
            fprintf(stderr, "toy2d: unknown option '%s'\n\n", a);
            usage(stderr);
            return -1;
        }
        if (rc)
            return -1;
    }
    if (!o->have_density) {
        fprintf(stderr, "toy2d: --density is required\n\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    fg_short_spin_waits(argv);
    options o;
    if (parse_args(argc, argv, &o))
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    fg_set_threads(o.threads);
    const char *name = fg_toy2d_density_name(o.density);
    char default_out[64];
    snprintf(default_out, sizeof default_out, "toy2d-%s.png", name);
    const char *out = o.out ? o.out : default_out;

    /* Separate streams, so the held-out set does not depend on the batch
     * size or the number of steps. */
    fg_rng init_rng, data_rng, held_rng, sample_rng;
    fg_rng_seed_stream(&init_rng, (uint64_t)o.seed, 0);
    fg_rng_seed_stream(&data_rng, (uint64_t)o.seed, 1);
    fg_rng_seed_stream(&held_rng, (uint64_t)o.seed, 2);
    fg_rng_seed_stream(&sample_rng, (uint64_t)o.seed, 3);

    fg_toy2d_model m;
    fg_toy2d_options mo = {.layers = o.layers, .hidden = o.hidden, .depth = 2, .actnorm = 1,
                           .maf = o.maf, .spline = o.spline, .bins = o.bins};
    if (fg_toy2d_model_init(&m, &mo, &init_rng) != FG_OK) {
        fprintf(stderr, "toy2d: %s\n", fg_last_error());
        return 1;
    }
    float *held = malloc(2 * (size_t)HELDOUT * sizeof *held);
    float *batch = malloc(2 * (size_t)o.batch * sizeof *batch);
    float *samples = malloc(2 * (size_t)SCATTER * sizeof *samples);
    double *lp = malloc((size_t)(HELDOUT > GRID * GRID ? HELDOUT : GRID * GRID) * sizeof *lp);
    if (!held || !batch || !samples || !lp) {
        fprintf(stderr, "toy2d: out of memory for a batch of %d\n", o.batch);
        return 1;
    }
    fg_toy2d_sample(o.density, &held_rng, HELDOUT, held);
    printf("toy2d: %s, %d %s %s blocks of width %d, %zu parameters, batch %d, lr %g, %d "
           "steps\n", name, o.layers, o.spline ? "spline" : "affine",
           o.maf ? "MAF" : "coupling", o.hidden, fg_state_list_param_count(&m.flow.state),
           o.batch, o.lr, o.steps);
    if (fg_toy2d_true_log_prob(o.density, held, HELDOUT, lp)) {
        double s = 0.0;
        for (int i = 0; i < HELDOUT; i++)
            s += lp[i];
        printf("true density: held-out average log-likelihood %.4f\n", s / HELDOUT);
    }
    printf("%6s %10s %12s %8s\n", "step", "train_nll", "heldout_ll", "elapsed");
    double t0 = now_s(), loss_sum = 0.0;
    int every = o.steps / REPORTS > 0 ? o.steps / REPORTS : 1, since = 0;
    for (int step = 1; step <= o.steps; step++) {
        fg_toy2d_sample(o.density, &data_rng, o.batch, batch);
        /* Constant, then down to zero linearly over the second half: fresh
         * batches keep the gradient noisy, and the decay lets the final
         * model settle instead of hopping between nearby fits. */
        double decay = 2.0 * (1.0 - (step - 1.0) / o.steps);
        loss_sum += fg_toy2d_train_step(&m, batch, o.batch, o.lr * (decay < 1.0 ? decay : 1.0));
        since++;
        if (step % every == 0 || step == o.steps) {
            double ll = fg_toy2d_mean_log_prob(&m, held, HELDOUT);
            printf("%6d %10.4f %12.4f %7.1fs\n", step, loss_sum / since, ll, now_s() - t0);
            loss_sum = 0.0;
            since = 0;
        }
    }
    double final_ll = fg_toy2d_mean_log_prob(&m, held, HELDOUT);
    fg_toy2d_grid_log_prob(&m, GRID, VIEW_LO, VIEW_HI, lp);
    double mass = fg_toy2d_grid_mass(lp, GRID, VIEW_LO, VIEW_HI);
    fg_toy2d_model_sample(&m, SCATTER, &sample_rng, samples);
    printf("final: held-out average log-likelihood %.4f; model mass in [-4, 4]^2 %.4f; "
           "%.1f s\n", final_ll, mass, now_s() - t0);
    int rc = 0;
    if (toy2d_write_png(out, lp, GRID, samples, SCATTER, VIEW_LO, VIEW_HI, PANEL) != FG_OK) {
        fprintf(stderr, "toy2d: %s\n", fg_last_error());
        rc = 1;
    } else {
        printf("wrote %s (left: density, right: %d samples)\n", out, SCATTER);
    }
    fg_toy2d_model_free(&m);
    free(held);
    free(batch);
    free(samples);
    free(lp);
    return rc;
}
