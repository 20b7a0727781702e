/* classify: a convolutional Fashion-MNIST classifier written against the
 * public API (the zoo's fg_cnn: conv, ReLU, max pooling, linear,
 * log-softmax cross-entropy) and trained by the library trainer with Adam.
 * Prints the training loss, test accuracy, throughput and elapsed time of
 * every epoch. */
#include "flowgrad.h"
#include "models/classifier.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct options {
    int epochs, threads, batch, progress;
    long long seed;
    double lr;
    const char *data;
} options;

static void usage(FILE *f)
{
    fputs("usage: classify [--epochs E] [--threads T] [--seed S] [--batch B] [--lr LR]\n"
          "                [--data DIR] [--progress K]\n\n"
          "Trains conv3x3(1->32) relu maxpool conv3x3(32->64) relu maxpool\n"
          "linear(3136->128) relu linear(128->10) on Fashion-MNIST with Adam.\n\n"
          "  --epochs E   passes over the 60,000 training images (default 3)\n"
          "  --threads T  threads for the kernels (default 2)\n"
          "  --seed S     initialization and shuffling seed (default 1)\n"
          "  --batch B    images per step (default 64)\n"
          "  --lr LR      Adam learning rate (default 1e-3)\n"
          "  --data DIR   folder with the IDX files (default " FG_FASHION_MNIST_DIR ")\n"
          "  --progress K report loss and img/s on stderr every K steps (default 0: off)\n", f);
}

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "classify: %s expects an integer in [%d, %d], got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.epochs = 3, .threads = 2, .batch = 64, .seed = 1, .lr = 1e-3, .data = NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "classify: %s\n\n", strncmp(a, "--", 2) ? "unexpected argument"
                                                                    : "option needs a value");
            usage(stderr);
            return -1;
        }
        const char *v = argv[++i];
        int rc = 0, seed;
        if (!strcmp(a, "--epochs")) rc = parse_int(a, v, 1, 1000, &o->epochs);
        else if (!strcmp(a, "--threads")) rc = parse_int(a, v, 1, 256, &o->threads);
        else if (!strcmp(a, "--batch")) rc = parse_int(a, v, 1, 60000, &o->batch);
        else if (!strcmp(a, "--seed")) { rc = parse_int(a, v, 0, INT_MAX, &seed); o->seed = seed; }
        else if (!strcmp(a, "--progress")) rc = parse_int(a, v, 0, INT_MAX, &o->progress);
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--lr")) {
            char *end;
            o->lr = strtod(v, &end);
            if (end == v || *end || !(o->lr > 0.0 && o->lr < 1.0)) {
                fprintf(stderr, "classify: --lr expects a number in (0, 1), got '%s'\n", v);
                rc = -1;
            }
        } else {
            fprintf(stderr, "classify: unknown option '%s'\n\n", a);
            usage(stderr);
            return -1;
        }
        if (rc) return -1;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double test_accuracy(fg_graph *g, fg_cnn *m, const fg_dataset *test, float mean,
                            float std, float *xbuf, int *idx, int *labels, int batch)
{
    long correct = 0;
    for (int start = 0; start < test->n; start += batch) {
        int n = test->n - start < batch ? test->n - start : batch;
        for (int i = 0; i < n; i++) idx[i] = start + i;
        fg_cnn_images(test, idx, n, mean, std, xbuf);
        fg_dataset_labels(test, idx, n, labels);
        int shape[4] = {n, test->c, test->h, test->w};
        correct += fg_cnn_count_correct(g, m, fg_const_wrap(g, xbuf, 4, shape), labels);
    }
    return (double)correct / (double)test->n;
}

enum { EVAL_BATCH = 500 };

/* What the trainer's hooks need: the network, the data and the running
 * figures of the current epoch. */
typedef struct run {
    const options *o;
    fg_cnn m;
    const fg_dataset *train, *test;
    float mean, std, *xbuf;
    int *idx, *labels;
    double t0, epoch_t0, loss_sum;
    long seen, epoch;          /* epoch: the one under way, from 1 */
    int steps;
} run;

static fg_var *batch_loss(void *ctx, fg_graph *g, const fg_batch *b, double *metric)
{
    run *r = ctx;
    const fg_dataset *d = r->train;
    fg_cnn_images(d, b->idx, b->n, r->mean, r->std, r->xbuf);
    fg_dataset_labels(d, b->idx, b->n, r->labels);
    int shape[4] = {b->n, d->c, d->h, d->w};
    fg_var *loss = fg_cnn_loss(g, &r->m, fg_const_wrap(g, r->xbuf, 4, shape), r->labels);
    *metric = loss->t.data[0];
    return loss;
}

static int after_step(void *ctx, fg_trainer *t, const fg_step_report *rep)
{
    run *r = ctx;
    r->loss_sum += rep->loss;
    r->seen += rep->images;
    r->steps++;
    if (r->o->progress && r->steps % r->o->progress == 0)
        fprintf(stderr, "  epoch %ld step %d: loss %.4f, %.0f img/s\n", r->epoch, r->steps,
                r->loss_sum / r->steps, (double)r->seen / (now_s() - r->epoch_t0));
    return FG_OK;
}

static int end_of_epoch(void *ctx, fg_trainer *t, long ended)
{
    run *r = ctx;
    double train_s = now_s() - r->epoch_t0;
    double acc = test_accuracy(t->g, &r->m, r->test, r->mean, r->std, r->xbuf, r->idx,
                               r->labels, EVAL_BATCH);
    printf("%5ld %10.4f %8.2f%% %8.0f %8.1fs\n", ended, r->steps ? r->loss_sum / r->steps : 0.0,
           100.0 * acc, (double)r->seen / train_s, now_s() - r->t0);
    fflush(stdout);
    r->loss_sum = 0;
    r->seen = 0;
    r->steps = 0;
    r->epoch = ended + 1;
    r->epoch_t0 = now_s();
    return FG_OK;
}

int main(int argc, char **argv)
{
    fg_short_spin_waits(argv);
    options o;
    if (parse_args(argc, argv, &o)) return 2;
    /* Epoch lines should appear as they happen, also when piped to a log. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    fg_set_threads(o.threads);

    fg_dataset train = {0}, test = {0};
    if (fg_dataset_load_mnist_dir(&train, o.data, 1) || fg_dataset_load_mnist_dir(&test, o.data, 0)) {
        fprintf(stderr, "classify: %s\n", fg_last_error());
        fg_dataset_free(&train);
        return 1;
    }
    if (train.n_classes > 10 || test.c != train.c || test.h != train.h || test.w != train.w ||
        train.h % 4 || train.w % 4) {
        fprintf(stderr, "classify: %s: expected 10-class images with sides divisible by 4, "
                "got train %dx%dx%d and test %dx%dx%d\n", o.data ? o.data : FG_FASHION_MNIST_DIR,
                train.c, train.h, train.w, test.c, test.h, test.w);
        fg_dataset_free(&train);
        fg_dataset_free(&test);
        return 1;
    }
    run r = {.o = &o, .train = &train, .test = &test, .epoch = 1};
    /* Standardize with the training set's statistics only. */
    fg_cnn_pixel_stats(&train, &r.mean, &r.std);
    fg_rng rng;
    fg_rng_seed(&rng, (uint64_t)o.seed);
    fg_cnn_init(&r.m, train.c, train.h, train.w, 32, 64, 128, 10, &rng);
    fg_state_list params;
    fg_state_list_init(&params);
    fg_cnn_visit(&r.m, "", fg_state_list_add, &params);
    fg_trainer tr;
    fg_trainer_init(&tr, &params, &(fg_trainer_options){.optimizer = FG_ADAM, .lr = o.lr});
    printf("classify: %d train / %d test images, %zu parameters, batch %d, lr %g, %d threads\n",
           train.n, test.n, fg_state_list_param_count(&params), o.batch, o.lr, o.threads);

    int cap = o.batch > EVAL_BATCH ? o.batch : EVAL_BATCH;
    size_t per = (size_t)train.c * train.h * train.w;
    r.xbuf = malloc((size_t)cap * per * sizeof(float));
    r.idx = malloc((size_t)cap * sizeof(int));
    r.labels = malloc((size_t)cap * sizeof(int));
    if (!r.xbuf || !r.idx || !r.labels) {
        fprintf(stderr, "classify: out of memory for a batch of %d\n", cap);
        return 1;
    }
    fg_batch_iter it;
    fg_batch_iter_init(&it, &train, o.batch, 1, 1, (uint64_t)o.seed);
    printf("%5s %10s %9s %8s %9s\n", "epoch", "train_loss", "test_acc", "img/s", "elapsed");
    r.t0 = r.epoch_t0 = now_s();
    fg_train_plan plan = {(long)(train.n / o.batch) * o.epochs, o.epochs};
    fg_train_hooks h = {.ctx = &r, .loss = batch_loss, .after_step = after_step,
                        .end_of_epoch = end_of_epoch};
    int rc = fg_train_run(&tr, &it, &plan, &h, NULL) == FG_OK ? 0 : 1;
    if (rc)
        fprintf(stderr, "classify: %s\n", fg_last_error());

    fg_batch_iter_free(&it);
    fg_trainer_free(&tr);
    fg_state_list_free(&params);
    fg_cnn_free(&r.m);
    free(r.xbuf);
    free(r.idx);
    free(r.labels);
    fg_dataset_free(&train);
    fg_dataset_free(&test);
    return rc;
}
