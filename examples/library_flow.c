/* A flow built, trained, saved, reloaded and sampled through the installed
 * library alone, as another project's program would:
 *     cc library_flow.c $(pkg-config --cflags --libs flowgrad) -o library_flow
 *     ./library_flow OUT.safetensors
 * 2-D points of two classes (two Gaussian blobs) under a
 * class-conditional flow: spline couplings with a multilayer perceptron
 * conditioner, and a prior whose mean and scale depend on the class. Exit
 * status 0 when training raised both classes' log-density, the reloaded
 * flow gives the same densities, and samples were drawn per class. */
#include <flowgrad.h>

#include <stdio.h>
#include <stdlib.h>

enum { N = 256, STEPS = 300, LAYERS = 4 };

/* n points with labels: even indices class 0, a wide blob at (-2, 0);
 * odd indices class 1, a narrow one at (2, 2). */
static void draw(fg_rng *rng, float *x, int *y, int n)
{
    for (int i = 0; i < n; i++) {
        float e[2];
        fg_rng_normal(rng, e, 2);
        y[i] = i & 1;
        x[2 * i] = y[i] ? 2.0f + 0.3f * e[0] : -2.0f + 1.0f * e[0];
        x[2 * i + 1] = y[i] ? 2.0f + 0.3f * e[1] : 0.5f * e[1];
    }
}

/* The flow of vectors (N, 2): spline couplings, reversed in between, under
 * a learned prior shifted per class, with Adam warming up to 3e-3. */
static int build(uint64_t seed, fg_vector_flow *m)
{
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    fg_flow *layers[2 * LAYERS];
    int n = 0;
    for (int i = 0; i < LAYERS; i++) {
        fg_dense_coupling_options c = {.dim = 2, .hidden = 32, .layers = 2,
                                       .transform = FG_TRANSFORM_SPLINE, .bins = 8,
                                       .bound = 4.0f, .mask = FG_COUPLING_MASK_CHANNEL,
                                       .rng = &rng};
        layers[n++] = fg_dense_coupling_create(&c);
        layers[n++] = fg_permute_create(&(fg_permute_options){.channels = 2});
    }
    fg_vector_flow_options o = {.dim = 2, .layers = layers, .n_layers = n, .learn_prior = 1,
                                .n_classes = 2,
                                .train = {.optimizer = FG_ADAM, .lr = 3e-3, .warmup = 20}};
    return fg_vector_flow_init(m, &o);
}

/* Mean log-density of each class's points. */
static void class_means(fg_vector_flow *m, const float *x, const int *y, double mean[2])
{
    double lp[N];
    fg_vector_flow_log_prob(m, x, y, N, lp);
    mean[0] = mean[1] = 0;
    for (int i = 0; i < N; i++)
        mean[y[i]] += lp[i] / (N / 2);
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
    float x[2 * N];
    int y[N];
    fg_rng data;
    fg_rng_seed(&data, 7);
    double before[2], after[2], reloaded[2];
    draw(&data, x, y, N);
    class_means(&flow, x, y, before);
    for (int s = 0; s < STEPS; s++) {
        draw(&data, x, y, N);
        if (fg_vector_flow_train_step(&flow, x, y, N, NULL) != FG_OK)
            return fprintf(stderr, "library_flow: %s\n", fg_last_error()), 1;
    }
    class_means(&flow, x, y, after);
    printf("mean log-density: class 0 %.3f -> %.3f, class 1 %.3f -> %.3f\n", before[0], after[0],
           before[1], after[1]);

    /* Save, and load into the flow built from another seed. */
    fg_safetensors st, in;
    fg_st_init(&st);
    fg_st_init(&in);
    fg_st_add_state(&st, &flow.state);
    if (fg_st_write(&st, argv[1]) != FG_OK || fg_st_read(&in, argv[1]) != FG_OK ||
        fg_st_load_state(&in, &again.state, NULL) != FG_OK)
        return fprintf(stderr, "library_flow: %s\n", fg_last_error()), 1;
    class_means(&again, x, y, reloaded);
    printf("reloaded: class 0 %.3f, class 1 %.3f\n", reloaded[0], reloaded[1]);

    fg_rng rng;
    fg_rng_seed(&rng, 3);
    for (int c = 0; c < 2; c++) {
        int labels[64];
        float s[2 * 64];
        for (int i = 0; i < 64; i++)
            labels[i] = c;
        fg_vector_flow_sample(&again, 64, labels, 1.0f, &rng, s);
        double mx = 0, my = 0;
        for (int i = 0; i < 64; i++)
            mx += s[2 * i] / 64, my += s[2 * i + 1] / 64;
        printf("class %d samples: mean (%.2f, %.2f)\n", c, mx, my);
    }
    int learned = after[0] > before[0] + 1 && after[1] > before[1] + 1;
    int same = reloaded[0] == after[0] && reloaded[1] == after[1];
    fg_st_free(&st), fg_st_free(&in);
    fg_vector_flow_free(&flow), fg_vector_flow_free(&again);
    return learned && same ? 0 : 1;
}
