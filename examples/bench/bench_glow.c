/* Times Glow training and sampling on Fashion-MNIST, the same work as the
 * PyTorch yardstick's torch_glow.py (same options, same JSON fields), so a
 * driver can alternate the two and quote ratios.
 *
 *   bench_glow --K 16 --L 2 --hidden 256 --batch 64 --threads 2 --steps 20 --sample 64
 *
 * One untimed step comes first (it runs actnorm's data-dependent init and
 * touches every buffer once), and a second when the batch is split between
 * threads (the first split step touches the part graphs' buffers), then
 * --steps timed training steps, then one
 * sampling pass of --sample images at --temperature (the yardstick's
 * figure, a first pass), the images split between the threads as the
 * training batch is. With --sample-passes P it makes P passes in all
 * and also reports their median with its GFLOP/s: sampling runs the
 * flow's forward FLOPs backwards, so that rate compares directly with the
 * GEMM's.
 *
 * Besides the yardstick's fields it reports the minor page faults per timed
 * step (a steady state reuses its memory and faults nothing) and, under
 * FLOWGRAD_PROFILE=1, the shares of the timed steps spent in GEMM, in
 * im2col/col2im, in other op work and outside ops. */
#include "flowgrad.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef struct opts {
    int K, L, hidden, batch, threads, steps, sample, sample_passes, lu, learn_top, seed;
    int batch_parts;
    const char *coupling, *permutation, *data, *memory;
    double lr, temperature;
    int warmup;
} opts;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *f)
{
    fputs("usage: bench_glow [options]\n"
          "  --K N --L N --hidden N        architecture (default 8, 2, 128)\n"
          "  --coupling affine|additive    (default affine)\n"
          "  --permutation invconv|shuffle|reverse (default invconv)\n"
          "  --no-lu --no-learn-top\n"
          "  --batch N --threads N          (default 64, 2)\n"
          "  --steps N                      timed training steps (default 20)\n"
          "  --sample N --temperature T     also time sampling N images (default 0, 0.7)\n"
          "  --sample-passes P              P sampling passes: the first is reported as\n"
          "                                 the yardstick's, the median of all with its\n"
          "                                 GFLOP/s (default 1)\n"
          "  --batch-parts P                the batch computed in P parts at once, one\n"
          "                                 thread each, as flowgrad train does; 1: the\n"
          "                                 whole batch, each kernel split between the\n"
          "                                 threads (default 0: one part per thread)\n"
          "  --lr X --warmup N --seed N     (default 1e-3, 200, 0)\n"
          "  --data DIR                     Fashion-MNIST IDX files (default Debian's)\n"
          "  --memory store|invert          training memory mode (default store; see\n"
          "                                 train.memory in models/config.h)\n"
          "Prints one JSON line.\n", f);
}

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){8, 2, 128, 64, 2, 20, 0, 1, 1, 1, 0, 0, "affine", "invconv", NULL, "store", 1e-3,
                0.7, 200};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *iv = !strcmp(a, "--K") ? &o->K : !strcmp(a, "--L") ? &o->L
                : !strcmp(a, "--hidden") ? &o->hidden : !strcmp(a, "--batch") ? &o->batch
                : !strcmp(a, "--threads") ? &o->threads : !strcmp(a, "--steps") ? &o->steps
                : !strcmp(a, "--sample") ? &o->sample : !strcmp(a, "--seed") ? &o->seed
                : !strcmp(a, "--sample-passes") ? &o->sample_passes
                : !strcmp(a, "--warmup") ? &o->warmup
                : !strcmp(a, "--batch-parts") ? &o->batch_parts : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--no-lu")) o->lu = 0;
        else if (!strcmp(a, "--no-learn-top")) o->learn_top = 0;
        else if (!v) { fprintf(stderr, "bench_glow: %s needs a value (see --help)\n", a); return -1; }
        else if (iv) {
            char *end;
            long x = strtol(v, &end, 10);
            if (*end || x < 0 || x > 1000000) {
                fprintf(stderr, "bench_glow: %s expects a non-negative integer, got '%s'\n", a, v);
                return -1;
            }
            *iv = (int)x; i++;
        } else if (!strcmp(a, "--coupling")) { o->coupling = v; i++; }
        else if (!strcmp(a, "--permutation")) { o->permutation = v; i++; }
        else if (!strcmp(a, "--data")) { o->data = v; i++; }
        else if (!strcmp(a, "--memory")) { o->memory = v; i++; }
        else if (!strcmp(a, "--lr")) { o->lr = atof(v); i++; }
        else if (!strcmp(a, "--temperature")) { o->temperature = atof(v); i++; }
        else { fprintf(stderr, "bench_glow: unknown option %s (see --help)\n", a); return -1; }
    }
    if (o->batch < 1 || o->threads < 1 || o->sample_passes < 1) {
        fprintf(stderr, "bench_glow: --batch, --threads and --sample-passes must be at least 1\n");
        return -1;
    }
    return 0;
}

/* The batch of a step as the trainer's loss hooks see it. */
typedef struct bench_batch {
    fg_model *m;
    const float *x;            /* the whole dequantized batch */
    fg_memory_mode memory;
    int batch;
} bench_batch;

static fg_var *part_loss(void *ctx, fg_graph *g, int first, int n, double *bpd)
{
    bench_batch *b = ctx;
    const int shape[4] = {n, 1, 28, 28};
    return fg_model_loss_ex(b->m, g, fg_const_wrap(g, (float *)b->x + (size_t)first * 784, 4,
                                                   shape),
                            NULL, bpd, b->memory, NULL);
}

static fg_var *whole_loss(void *ctx, fg_graph *g, double *bpd)
{
    return part_loss(ctx, g, 0, ((bench_batch *)ctx)->batch, bpd);
}

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv)
{
    fg_short_spin_waits(argv);
    opts o;
    if (parse(argc, argv, &o)) return 2;
    fg_set_threads(o.threads);

    /* The glow preset of the yardstick's configuration, validated like any
     * user config. */
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "model:\n  type: glow\n  height: 28\n  width: 28\n  channels: 1\n"
             "  levels: %d\n  steps: %d\n  hidden: %d\n  coupling: %s\n  permutation: %s\n"
             "  lu: %s\n  learn_top: %s\n  n_bits: 8\n",
             o.L, o.K, o.hidden, o.coupling, o.permutation, o.lu ? "true" : "false",
             o.learn_top ? "true" : "false");
    fg_config *cfg;
    fg_model *m;
    fg_dataset train;
    fg_memory_mode memory;
    if (fg_memory_mode_parse(o.memory, &memory) != FG_OK) {
        fprintf(stderr, "bench_glow: --memory: %s\n", fg_last_error());
        return 2;
    }
    if (fg_config_load_string(yaml, strlen(yaml), "bench_glow options", &cfg) != FG_OK ||
        fg_model_build(&cfg->model, (uint64_t)o.seed, &m) != FG_OK ||
        fg_dataset_load_mnist_dir(&train, o.data, 1) != FG_OK) {
        fprintf(stderr, "bench_glow: %s\n", fg_last_error());
        return 1;
    }
    /* The library trainer's step, as flowgrad train takes it (Adam, the
     * warmup, no clipping or guard): on more than one thread the batch is
     * computed in parts once actnorm is initialized. */
    fg_trainer_options to = {.optimizer = FG_ADAM, .lr = o.lr, .warmup = o.warmup,
                             .schedule = FG_SCHEDULE_CONSTANT, .batch_parts = o.batch_parts};
    fg_trainer tr;
    fg_trainer_init(&tr, &m->state, &to);
    fg_batch_iter it;
    fg_batch_iter_init(&it, &train, o.batch, 1, 1, (uint64_t)o.seed);
    fg_rng rng;
    fg_rng_seed(&rng, (uint64_t)o.seed);
    int *idx = fg_xmalloc((size_t)o.batch * sizeof(int), "batch indices");
    float *x = fg_xmalloc((size_t)o.batch * 784 * sizeof(float), "batch");
    bench_batch bb = {m, x, memory, o.batch};
    double loss_first = 0, loss_last = 0, t_start = 0;
    long faults_start = 0;
    fg_profile_totals prof_start = {0}, prof_end = {0};
    int parts = 1;
    /* Untimed: the first step (actnorm's init, taken whole) and, when the
     * batch is split, the first split step, which touches the part
     * graphs' memory for the first time. */
    int untimed = memory == FG_MEMORY_STORE && fg_trainer_batch_parts(&tr, o.batch) > 1 ? 2 : 1;
    for (int step = 0; step < o.steps + untimed; step++) {
        if (step == untimed) {
            t_start = fg_profile_now();
            faults_start = minor_faults();
            fg_profile_get_totals(&prof_start);
        }
        if (fg_batch_iter_next(&it, idx) < o.batch) fg_batch_iter_next(&it, idx);
        fg_dequantize(&train, idx, o.batch, 8, &rng, x);
        fg_step_report r;
        int split = fg_model_can_split(m, memory);
        if (split)
            parts = fg_trainer_batch_parts(&tr, o.batch);
        fg_step_outcome out = split ? fg_trainer_step_parts(&tr, part_loss, &bb, o.batch, &r)
                                    : fg_trainer_step(&tr, whole_loss, &bb, &r);
        if (out == FG_STEP_FAILED) {
            fprintf(stderr, "bench_glow: %s\n", fg_last_error());
            return 1;
        }
        loss_last = r.loss;
        if (step == 0) loss_first = loss_last;
    }
    double train_s = (fg_profile_now() - t_start) / (o.steps > 0 ? o.steps : 1);
    double faults_per_step = o.steps > 0 ? (double)(minor_faults() - faults_start) / o.steps : 0.0;
    fg_profile_get_totals(&prof_end);
    double flops = fg_model_spec_flops(&cfg->model);

    printf("{\"peer\": \"flowgrad\", \"K\": %d, \"L\": %d, \"hidden\": %d, \"coupling\": \"%s\", "
           "\"permutation\": \"%s\", \"lu\": %s, \"memory\": \"%s\", \"batch\": %d, \"threads\": %d, \"steps\": %d",
           o.K, o.L, o.hidden, o.coupling, o.permutation, o.lu ? "true" : "false",
           fg_memory_mode_name(memory), o.batch, o.threads, o.steps + untimed);
    if (o.steps > 0)
        printf(", \"train_step_s\": %.6f, \"train_img_per_s\": %.3f, \"train_gflop_per_s\": %.2f",
               train_s, o.batch / train_s,
               /* a training step is a forward and a backward of about
                * twice its cost, as in the yardstick's flops.py */
               3.0 * flops * o.batch / train_s / 1e9);
    else /* --steps 0 (sampling alone): no step was timed */
        printf(", \"train_step_s\": null, \"train_img_per_s\": null, \"train_gflop_per_s\": null");
    printf(", \"forward_gflop_per_image\": %.5f, \"loss_first\": %.6f, \"loss_last\": %.6f",
           flops / 1e9, loss_first, loss_last);
    printf(", \"batch_parts\": %d, \"page_faults_per_step\": %.1f", parts, faults_per_step);
    if (fg_profile_enabled() && o.steps > 0) {
        double wall = train_s * o.steps;
        double gemm = prof_end.gemm - prof_start.gemm;
        double cols = prof_end.columns - prof_start.columns;
        double other = prof_end.other_ops - prof_start.other_ops;
        double in_ops = prof_end.ops - prof_start.ops + prof_end.optimizer - prof_start.optimizer;
        printf(", \"profile_gemm_share\": %.3f, \"profile_columns_share\": %.3f, "
               "\"profile_other_ops_share\": %.3f, \"profile_outside_ops_share\": %.3f",
               gemm / wall, cols / wall, other / wall, (wall - in_ops) / wall);
    }
    if (o.sample > 0) {
        double *dt = malloc((size_t)o.sample_passes * sizeof *dt);
        int finite = 1;
        if (!dt) {
            fprintf(stderr, "bench_glow: out of memory\n");
            return 1;
        }
        /* As many parts as training uses, each on a graph of its own: the
         * trainer's, as flowgrad train samples on them, whose arenas hold
         * the pages training touched (as the yardstick's allocator keeps
         * training's blocks); a new graph only where training had none. */
        int sparts = o.batch_parts > 0 ? o.batch_parts : fg_get_threads();
        fg_graph **sg = fg_xcalloc((size_t)sparts, sizeof *sg, "sampling graphs");
        int *own = fg_xcalloc((size_t)sparts, sizeof *own, "sampling graph owners");
        for (int p = 0; p < sparts; p++)
            if (!(sg[p] = fg_trainer_part_graph(&tr, p))) {
                sg[p] = fg_graph_create();
                own[p] = 1;
            }
        float *images = fg_xmalloc((size_t)o.sample * 784 * sizeof(float), "samples");
        memset(images, 0, (size_t)o.sample * 784 * sizeof(float)); /* its pages, untimed */
        for (int p = 0; p < o.sample_passes; p++) {
            double t = fg_profile_now();
            fg_model_sample_parts(m, sg, sparts, o.sample, NULL, (float)o.temperature, &rng,
                                  images);
            dt[p] = fg_profile_now() - t;
            finite &= fg_k_all_finite((size_t)o.sample * 784, images);
        }
        free(images);
        for (int p = 0; p < sparts; p++)
            if (own[p])
                fg_graph_destroy(sg[p]);
        free(own);
        free(sg);
        printf(", \"sample_img_per_s\": %.3f, \"sample_finite\": %s", o.sample / dt[0],
               finite ? "true" : "false");
        if (o.sample_passes > 1) {
            qsort(dt, (size_t)o.sample_passes, sizeof *dt, cmp_double);
            double med = o.sample_passes % 2 ? dt[o.sample_passes / 2]
                                              : 0.5 * (dt[o.sample_passes / 2 - 1] +
                                                       dt[o.sample_passes / 2]);
            printf(", \"sample_passes\": %d, \"sample_median_img_per_s\": %.3f, "
                   "\"sample_gflop_per_s\": %.2f",
                   o.sample_passes, o.sample / med, flops * o.sample / med / 1e9);
        }
        free(dt);
    }
    printf(", \"peak_rss_mb\": %.1f}\n", peak_rss_mb());
    free(x);
    free(idx);
    fg_batch_iter_free(&it);
    fg_trainer_free(&tr);
    fg_dataset_free(&train);
    fg_model_free(m);
    fg_config_free(cfg);
    return 0;
}
