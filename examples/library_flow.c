/* A flow built, trained, saved, reloaded and sampled through the installed
 * library alone, as another project's program would:
 *     cc library_flow.c $(pkg-config --cflags --libs flowgrad) -o library_flow
 *     ./library_flow OUT.safetensors
 * 2-D points whose distribution moves with a continuous variable t in
 * [-1, 1], under a conditional flow p(x | t): t is the condition of every
 * spline coupling's residual conditioner (a module list) and of the prior's
 * mean and scale. Exit status 0 when training raised the log-density of
 * both halves of the range of t, the reloaded flow gives the same
 * densities, and samples drawn at t = -1 and t = 1 lie where the data do
 * (their means within 0.75 of the data's, which lie 4.5 apart). */
#include <flowgrad.h>

#include <stdio.h>
#include <stdlib.h>

enum { N = 256, STEPS = 300, LAYERS = 4 };

/* n points and their conditions: t uniform in [-1, 1], x0 = 2t with a
 * spread from 0.2 (t = -1) to 1 (t = 1), x1 = -t + 0.5 noise. */
static void draw(fg_rng *rng, float *x, float *t, int n)
{
    for (int i = 0; i < n; i++) {
        float e[2], u;
        fg_rng_normal(rng, e, 2);
        fg_rng_uniform(rng, &u, 1);
        t[i] = 2.0f * u - 1.0f;
        x[2 * i] = 2.0f * t[i] + (0.6f + 0.4f * t[i]) * e[0];
        x[2 * i + 1] = -t[i] + 0.5f * e[1];
    }
}

/* The conditioner of every coupling, not Glow's: a dense layer, a residual
 * block with tanh inside, and a zero-initialised output layer. */
static const fg_net_layer conditioner[] = {
    {.kind = FG_NET_DENSE, .width = 32, .bias = 1},
    {.kind = FG_NET_RELU},
    {.kind = FG_NET_RESIDUAL, .activation = FG_NET_TANH},
    {.kind = FG_NET_ZERO_DENSE},
};

/* The flow of vectors (N, 2) given t (N, 1): spline couplings, reversed in
 * between, under a learned prior, all conditioned on t; Adam warming up to
 * 3e-3. */
static int build(uint64_t seed, fg_vector_flow *m)
{
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    fg_flow *layers[2 * LAYERS];
    int n = 0;
    for (int i = 0; i < LAYERS; i++) {
        fg_dense_coupling_options c = {.dim = 2, .transform = FG_TRANSFORM_SPLINE, .bins = 8,
                                       .bound = 4.0f, .mask = FG_COUPLING_MASK_CHANNEL,
                                       .rng = &rng, .net = conditioner, .net_layers = 4,
                                       .cond_channels = 1};
        layers[n++] = fg_dense_coupling_create(&c);
        layers[n++] = fg_permute_create(&(fg_permute_options){.channels = 2});
    }
    fg_vector_flow_options o = {.dim = 2, .layers = layers, .n_layers = n, .learn_prior = 1,
                                .cond_channels = 1,
                                .train = {.optimizer = FG_ADAM, .lr = 3e-3, .warmup = 20}};
    return fg_vector_flow_init(m, &o);
}

/* Mean log-density of the points with t < 0 and of those with t >= 0. */
static void half_means(fg_vector_flow *m, const float *x, const float *t, double mean[2])
{
    double lp[N];
    int count[2] = {0, 0};
    fg_vector_flow_log_prob_cond(m, x, NULL, t, N, lp);
    mean[0] = mean[1] = 0;
    for (int i = 0; i < N; i++)
        mean[t[i] >= 0] += lp[i], count[t[i] >= 0]++;
    for (int h = 0; h < 2; h++)
        mean[h] /= count[h] ? count[h] : 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT.safetensors\n", argv[0]);
        return 2;
    }
    fg_set_threads(1);
    fg_vector_flow flow, again;   /* the trained flow and its copy from the file */
    if (build(1, &flow) != FG_OK || build(2, &again) != FG_OK)
        return fprintf(stderr, "library_flow: %s\n", fg_last_error()), 1;
    float x[2 * N], t[N];
    fg_rng data;
    fg_rng_seed(&data, 7);
    double before[2], after[2], reloaded[2];
    draw(&data, x, t, N);
    half_means(&flow, x, t, before);
    for (int s = 0; s < STEPS; s++) {
        draw(&data, x, t, N);
        if (fg_vector_flow_train_step_cond(&flow, x, NULL, t, N, NULL) != FG_OK)
            return fprintf(stderr, "library_flow: %s\n", fg_last_error()), 1;
    }
    half_means(&flow, x, t, after);
    printf("mean log-density: t < 0 %.3f -> %.3f, t >= 0 %.3f -> %.3f\n", before[0], after[0],
           before[1], after[1]);

    /* Save, and load into the flow built from another seed. */
    fg_safetensors st, in;
    fg_st_init(&st);
    fg_st_init(&in);
    fg_st_add_state(&st, &flow.state);
    if (fg_st_write(&st, argv[1]) != FG_OK || fg_st_read(&in, argv[1]) != FG_OK ||
        fg_st_load_state(&in, &again.state, NULL) != FG_OK)
        return fprintf(stderr, "library_flow: %s\n", fg_last_error()), 1;
    half_means(&again, x, t, reloaded);
    printf("reloaded: t < 0 %.3f, t >= 0 %.3f\n", reloaded[0], reloaded[1]);

    fg_rng rng;
    fg_rng_seed(&rng, 3);
    int placed = 1;
    for (int end = -1; end <= 1; end += 2) {
        float cond[64], s[2 * 64];
        for (int i = 0; i < 64; i++)
            cond[i] = (float)end;
        fg_vector_flow_sample_cond(&again, 64, NULL, cond, 1.0f, &rng, s);
        double mx = 0, my = 0;
        for (int i = 0; i < 64; i++)
            mx += s[2 * i] / 64, my += s[2 * i + 1] / 64;
        printf("samples at t = %d: mean (%.2f, %.2f), data (%d, %d)\n", end, mx, my, 2 * end,
               -end);
        placed = placed && (mx - 2 * end) * (mx - 2 * end) + (my + end) * (my + end) < 0.75 * 0.75;
    }
    int learned = after[0] > before[0] + 0.5 && after[1] > before[1] + 0.5;
    int same = reloaded[0] == after[0] && reloaded[1] == after[1];
    fg_st_free(&st), fg_st_free(&in);
    fg_vector_flow_free(&flow), fg_vector_flow_free(&again);
    return learned && same && placed ? 0 : 1;
}
