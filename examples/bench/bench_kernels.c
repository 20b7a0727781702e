/* Memory-bound kernels of a Glow step against the machine's bandwidth.
 *
 *   bench_kernels [--threads T] [--batch N] [--hidden C] [--reps R]
 *
 * First a STREAM-like copy (memcpy split between the threads) of a buffer
 * the size of the kernels' tensor gives the bandwidth the machine sustains.
 * Then each elementwise kernel of a coupling network runs on a tensor of
 * Glow's first level in channel-major layout, (1, C, N*14, 14), and reports
 * the bytes it must move (each input read once, each output written once)
 * per second, and that rate as a share of the copy's. Best of R runs each.
 * The default batch, 512, makes the tensor (51 MB) larger than the last-
 * level cache, as the activations of a training step are when its backward
 * reads them; at Glow's batch of 64 it would stay in cache.
 * Prints one JSON line. */
#include "flowgrad.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int threads, batch, hidden, reps;
} opts;

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){2, 512, 128, 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: bench_kernels [--threads T] [--batch N] [--hidden C] [--reps R]\n"
                 "Bandwidth of a memcpy and of Glow's elementwise kernels; one JSON line.");
            exit(0);
        }
        int *v = !strcmp(a, "--threads") ? &o->threads : !strcmp(a, "--batch") ? &o->batch
                 : !strcmp(a, "--hidden") ? &o->hidden : !strcmp(a, "--reps") ? &o->reps : NULL;
        if (!v || i + 1 >= argc || atoi(argv[i + 1]) < 1) {
            fprintf(stderr, "bench_kernels: bad option %s (see --help)\n", a);
            return -1;
        }
        *v = atoi(argv[++i]);
    }
    return 0;
}

/* Best time of reps calls of fn. */
typedef void (*kernel_fn)(void *ctx);
static double best_of(int reps, kernel_fn fn, void *ctx)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = fg_profile_now();
        fn(ctx);
        t = fg_profile_now() - t;
        if (t < best)
            best = t;
    }
    return best;
}

typedef struct {
    size_t n;
    float *a, *b;
} copy_ctx;

static void copy_kernel(void *p)
{
    copy_ctx *c = p;
    #pragma omp parallel
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const size_t i0 = c->n * t / nt, i1 = c->n * (t + 1) / nt;
        memcpy(c->b + i0, c->a + i0, (i1 - i0) * sizeof(float));
    }
}

typedef struct {
    fg_graph *g;
    fg_var *x, *bias, *logs, *y;
    int batch;
    float *seed;
} op_ctx;

static void affine_relu_forward(void *p)
{
    op_ctx *c = p;
    fg_graph_reset(c->g);
    int was = fg_set_grad_enabled(c->g, 0);
    fg_channel_affine_relu(c->g, c->x, c->bias, c->logs);
    fg_set_grad_enabled(c->g, was);
}

/* Backward only: the forward is recorded first, outside the timing. */
static void affine_relu_record(op_ctx *c)
{
    fg_graph_reset(c->g);
    c->y = fg_channel_affine_relu(c->g, fg_scale(c->g, c->x, 1.0f), c->bias, c->logs);
}

static void to_channel_major(void *p)
{
    op_ctx *c = p;
    fg_graph_reset(c->g);
    int was = fg_set_grad_enabled(c->g, 0);
    fg_to_channel_major(c->g, c->x);
    fg_set_grad_enabled(c->g, was);
}

int main(int argc, char **argv)
{
    opts o;
    if (parse(argc, argv, &o))
        return 2;
    fg_set_threads(o.threads);
    omp_set_num_threads(o.threads);

    const int C = o.hidden, H = 14, W = 14;
    copy_ctx cc = {(size_t)C * o.batch * H * W, NULL, NULL};
    cc.a = fg_aligned_alloc(cc.n * sizeof(float), "copy source");
    cc.b = fg_aligned_alloc(cc.n * sizeof(float), "copy target");
    memset(cc.a, 1, cc.n * sizeof(float));
    memset(cc.b, 0, cc.n * sizeof(float));
    double copy_gbs = 2.0 * cc.n * sizeof(float) / best_of(o.reps, copy_kernel, &cc) / 1e9;
    fg_aligned_free(cc.a);
    fg_aligned_free(cc.b);

    int cm[4] = {1, C, o.batch * H, W}, vec[1] = {C};
    op_ctx c = {fg_graph_create(), fg_leaf_new(4, cm, 1), fg_leaf_new(1, vec, 1),
                fg_leaf_new(1, vec, 1), NULL, o.batch, NULL};
    const size_t n = fg_numel(&c.x->t), bytes = n * sizeof(float);
    fg_rng rng;
    fg_rng_seed(&rng, 1);
    fg_rng_normal(&rng, c.x->t.data, n);
    c.seed = fg_xmalloc(bytes, "output gradient");
    fg_rng_normal(&rng, c.seed, n);

    double t_fwd = best_of(o.reps, affine_relu_forward, &c);
    double t_bwd = 1e30;
    for (int r = 0; r < o.reps; r++) {
        affine_relu_record(&c);
        double t = fg_profile_now();
        fg_backward_with(c.g, c.y, c.seed);
        t = fg_profile_now() - t;
        if (t < t_bwd)
            t_bwd = t;
    }
    /* The backward above also runs scale's backward (one read, one
     * write of gx into x's gradient): time that alone and subtract it. */
    double t_scale = 1e30;
    for (int r = 0; r < o.reps; r++) {
        fg_graph_reset(c.g);
        fg_var *s = fg_scale(c.g, c.x, 1.0f);
        double t = fg_profile_now();
        fg_backward_with(c.g, s, c.seed);
        t = fg_profile_now() - t;
        if (t < t_scale)
            t_scale = t;
    }
    t_bwd -= t_scale;
    int nchw[4] = {o.batch, C, H, W};
    fg_var *x4 = fg_leaf_new(4, nchw, 0);
    memcpy(x4->t.data, c.x->t.data, bytes);
    op_ctx tc = c;
    tc.x = x4;
    double t_tr = best_of(o.reps, to_channel_major, &tc);

    /* bytes moved: forward reads x, writes y; backward (gradient stored,
     * not added) reads dy and y, writes dx; a transpose reads and writes. */
    double fwd = 2.0 * bytes / t_fwd / 1e9, bwd = 3.0 * bytes / t_bwd / 1e9;
    double tr = 2.0 * bytes / t_tr / 1e9;
    printf("{\"threads\": %d, \"tensor\": [1, %d, %d, %d], \"copy_gb_per_s\": %.2f, "
           "\"affine_relu_forward_gb_per_s\": %.2f, \"affine_relu_forward_of_copy\": %.2f, "
           "\"affine_relu_backward_gb_per_s\": %.2f, \"affine_relu_backward_of_copy\": %.2f, "
           "\"to_channel_major_gb_per_s\": %.2f, \"to_channel_major_of_copy\": %.2f}\n",
           o.threads, C, o.batch * H, W, copy_gbs, fwd, fwd / copy_gbs, bwd, bwd / copy_gbs,
           tr, tr / copy_gbs);
    fg_leaf_free(x4);
    fg_leaf_free(c.x);
    fg_leaf_free(c.bias);
    fg_leaf_free(c.logs);
    free(c.seed);
    fg_graph_destroy(c.g);
    return 0;
}
