/* The zoo's classifier (models/classifier.h) that examples/classify trains,
 * narrowed (8 and 16 channels, 32
 * hidden units), on the synthetic shape data set: its whole-model gradient
 * agrees with finite differences, and 60 Adam steps cut the loss and give
 * held-out accuracy far above chance, taken by the library trainer. */
#include "check_main.h"
#include "flowgrad.h"
#include "models/classifier.h"
#include <math.h>
#include <string.h>

enum { SIDE = 16, BATCH = 32, STEPS = 60 };

typedef struct batch_loss {
    fg_cnn *m;
    float *x;
    int *labels;
    int n;
} batch_loss;

static fg_var *mean_xent(fg_graph *g, void *p)
{
    batch_loss *b = p;
    int shape[4] = {b->n, 1, SIDE, SIDE};
    fg_var *x = fg_const_wrap(g, b->x, 4, shape);
    return fg_cnn_loss(g, b->m, x, b->labels);
}

/* The trainer's view of mean_xent: the loss, and the same as the figure. */
static fg_var *step_loss(void *ctx, fg_graph *g, double *metric)
{
    fg_var *loss = mean_xent(g, ctx);
    *metric = loss->t.data[0];
    return loss;
}

static void load_batch(const fg_dataset *d, int start, int n, float mean, float std, float *x,
                       int *labels)
{
    int idx[BATCH * 4];
    for (int i = 0; i < n; i++) idx[i] = start + i;
    fg_cnn_images(d, idx, n, mean, std, x);
    fg_dataset_labels(d, idx, n, labels);
}

/* Max pooling and ReLU have kinks, but a random direction meets one with
 * probability near zero at this step. */
START_TEST(test_model_gradient)
{
    fg_dataset d;
    fg_dataset_synthetic(&d, 8, 1, SIDE, SIDE, 3);
    float mean, std, x[8 * SIDE * SIDE];
    int labels[8];
    fg_cnn_pixel_stats(&d, &mean, &std);
    load_batch(&d, 0, 8, mean, std, x, labels);
    fg_rng r;
    fg_rng_seed(&r, 11);
    fg_cnn m;
    fg_cnn_init(&m, 1, SIDE, SIDE, 4, 6, 12, d.n_classes, &r);
    fg_var *leaves[8] = {m.conv1.weight, m.conv1.bias, m.conv2.weight, m.conv2.bias,
                         m.fc1.weight, m.fc1.bias, m.fc2.weight, m.fc2.bias};
    batch_loss b = {&m, x, labels, 8};
    fg_graph *g = fg_graph_create();
    for (int k = 0; k < 3; k++) {
        double an, num;
        double rel = fg_gradcheck_direction(g, mean_xent, &b, leaves, 8, 1e-2, &r, &an, &num);
        ck_assert_msg(rel < 1e-2, "direction %d: analytic %g numeric %g", k, an, num);
        ck_assert(fabs(an) > 1e-4);
    }
    fg_graph_destroy(g);
    fg_cnn_free(&m);
    fg_dataset_free(&d);
}
END_TEST

START_TEST(test_training_lowers_loss)
{
    fg_dataset train, held;
    fg_dataset_synthetic(&train, STEPS * BATCH, 1, SIDE, SIDE, 1);
    fg_dataset_synthetic(&held, 4 * BATCH, 1, SIDE, SIDE, 2);
    float mean, std;
    fg_cnn_pixel_stats(&train, &mean, &std);
    fg_rng r;
    fg_rng_seed(&r, 7);
    fg_cnn m;
    fg_cnn_init(&m, 1, SIDE, SIDE, 8, 16, 32, train.n_classes, &r);
    fg_state_list params;
    fg_state_list_init(&params);
    fg_cnn_visit(&m, "", fg_state_list_add, &params);
    ck_assert_int_eq(params.n, 8);
    fg_trainer tr;
    fg_trainer_init(&tr, &params, &(fg_trainer_options){.optimizer = FG_ADAM, .lr = 2e-3});
    static float x[4 * BATCH * SIDE * SIDE];
    int labels[4 * BATCH];
    batch_loss b = {&m, x, labels, BATCH};
    double first = 0.0, last = 0.0;
    for (int s = 0; s < STEPS; s++) {
        load_batch(&train, s * BATCH, BATCH, mean, std, x, labels);
        fg_step_report rep;
        ck_assert_int_eq(fg_trainer_step(&tr, step_loss, &b, &rep), FG_STEP_TAKEN);
        double loss = rep.loss;
        ck_assert(isfinite(loss));
        if (s < 5) first += loss / 5;
        if (s >= STEPS - 5) last += loss / 5;
    }
    /* He-initialized logits start near uniform: the first loss is close to
     * log(classes). */
    double chance = log((double)train.n_classes);
    printf("loss: first 5 steps %.4f (log K = %.4f), last 5 steps %.4f\n", first, chance, last);
    ck_assert_msg(first > 0.5 * chance, "first loss %g far below log K %g", first, chance);
    ck_assert_msg(last < 0.3 * first, "loss fell only from %g to %g", first, last);
    load_batch(&held, 0, 4 * BATCH, mean, std, x, labels);
    int hshape[4] = {4 * BATCH, 1, SIDE, SIDE};
    int correct = fg_cnn_count_correct(tr.g, &m, fg_const_wrap(tr.g, x, 4, hshape), labels);
    printf("held-out accuracy %d / %d\n", correct, 4 * BATCH);
    ck_assert_msg(correct > 4 * BATCH * 3 / 4, "held-out accuracy %d of %d", correct, 4 * BATCH);
    ck_assert_uint_eq(fg_graph_nodes(tr.g), 0);
    fg_trainer_free(&tr);
    fg_state_list_free(&params);
    fg_cnn_free(&m);
    fg_dataset_free(&train);
    fg_dataset_free(&held);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("classify");
    TCase *tc = fg_tcase("cnn");
    tcase_add_test(tc, test_model_gradient);
    tcase_add_test(tc, test_training_lowers_loss);
    suite_add_tcase(s, tc);
    return s;
}
