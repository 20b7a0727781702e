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

static fg_multiscale *build(uint64_t seed)
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
    fg_multiscale *m = NULL;
    fg_multiscale_options o = {layers, n, fg_flow_shape4(1, 2, 1, 1), 1, 2};
    return fg_multiscale_create(&o, &m) == FG_OK ? m : NULL;
}

typedef struct batch { fg_multiscale *flow; float *x; int *y; } batch;

static fg_var *points(fg_graph *g, float *x)
{
    int shape[4] = {N, 2, 1, 1};
    return fg_const_wrap(g, x, 4, shape);
}

static fg_var *nll(void *ctx, fg_graph *g, double *metric)
{
    batch *b = ctx;
    fg_var *loss = fg_neg(g, fg_mean(g, fg_multiscale_log_prob(b->flow, g, points(g, b->x),
                                                                 b->y)));
    *metric = loss->t.data[0];
    return loss;
}

/* Mean log-density of each class's points in b, without a tape. */
static void class_means(batch *b, fg_graph *g, double mean[2])
{
    int was = fg_set_grad_enabled(g, 0);
    fg_var *lp = fg_multiscale_log_prob(b->flow, g, points(g, b->x), b->y);
    mean[0] = mean[1] = 0;
    for (int i = 0; i < N; i++)
        mean[b->y[i]] += lp->t.data[i] / (N / 2);
    fg_graph_reset(g);
    fg_set_grad_enabled(g, was);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT.safetensors\n", argv[0]);
        return 2;
    }
    fg_set_threads(1);
    fg_multiscale *flow = build(1), *again = build(2);
    if (!flow || !again)
        return fprintf(stderr, "library_flow: %s\n", fg_last_error()), 1;
    fg_state_list state, state2; /* parameters of the trained flow and of its copy */
    fg_state_list_init(&state);
    fg_state_list_init(&state2);
    fg_multiscale_visit(flow, NULL, fg_state_list_add, &state);
    fg_multiscale_visit(again, NULL, fg_state_list_add, &state2);
    fg_trainer tr;
    fg_trainer_init(&tr, &state, &(fg_trainer_options){.optimizer = FG_ADAM, .lr = 3e-3,
                                                       .warmup = 20});
    float x[2 * N];
    int y[N];
    fg_rng data;
    fg_rng_seed(&data, 7);
    batch b = {flow, x, y};
    double before[2], after[2], reloaded[2];
    draw(&data, x, y, N);
    class_means(&b, tr.g, before);
    for (int s = 0; s < STEPS; s++) {
        draw(&data, x, y, N);
        fg_step_report r;
        if (fg_trainer_step(&tr, nll, &b, &r) == FG_STEP_FAILED)
            return fprintf(stderr, "library_flow: %s\n", fg_last_error()), 1;
    }
    class_means(&b, tr.g, after);
    printf("mean log-density: class 0 %.3f -> %.3f, class 1 %.3f -> %.3f\n", before[0], after[0],
           before[1], after[1]);

    /* Save, and load into a flow built from another seed. */
    fg_safetensors st, in;
    fg_st_init(&st);
    fg_st_init(&in);
    fg_st_add_state(&st, &state);
    if (fg_st_write(&st, argv[1]) != FG_OK || fg_st_read(&in, argv[1]) != FG_OK ||
        fg_st_load_state(&in, &state2, NULL) != FG_OK)
        return fprintf(stderr, "library_flow: %s\n", fg_last_error()), 1;
    b.flow = again;
    class_means(&b, tr.g, reloaded);
    printf("reloaded: class 0 %.3f, class 1 %.3f\n", reloaded[0], reloaded[1]);

    fg_rng rng;
    fg_rng_seed(&rng, 3);
    for (int c = 0; c < 2; c++) {
        int labels[64];
        for (int i = 0; i < 64; i++)
            labels[i] = c;
        fg_var *s = fg_multiscale_sample(again, tr.g, 64, labels, 1.0f, &rng);
        double mx = 0, my = 0;
        for (int i = 0; i < 64; i++)
            mx += s->t.data[2 * i] / 64, my += s->t.data[2 * i + 1] / 64;
        printf("class %d samples: mean (%.2f, %.2f)\n", c, mx, my);
        fg_graph_reset(tr.g);
    }
    int learned = after[0] > before[0] + 1 && after[1] > before[1] + 1;
    int same = reloaded[0] == after[0] && reloaded[1] == after[1];
    fg_st_free(&st), fg_st_free(&in), fg_trainer_free(&tr);
    fg_state_list_free(&state), fg_state_list_free(&state2);
    fg_multiscale_destroy(flow), fg_multiscale_destroy(again);
    return learned && same ? 0 : 1;
}
