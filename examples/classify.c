/* classify: a convolutional Fashion-MNIST classifier written against the
 * public API (conv, ReLU, max pooling, linear, log-softmax cross-entropy,
 * Adam). Prints the training loss, test accuracy, throughput and elapsed
 * time of every epoch. */
#include "examples/cnn.h"

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

static double test_accuracy(fg_graph *g, cnn *m, const fg_dataset *test, float mean, float std,
                            float *xbuf, int *idx, int *labels, int batch)
{
    long correct = 0;
    for (int start = 0; start < test->n; start += batch) {
        int n = test->n - start < batch ? test->n - start : batch;
        for (int i = 0; i < n; i++) idx[i] = start + i;
        cnn_images(test, idx, n, mean, std, xbuf);
        fg_dataset_labels(test, idx, n, labels);
        int shape[4] = {n, test->c, test->h, test->w};
        correct += cnn_count_correct(g, m, fg_const_wrap(g, xbuf, 4, shape), labels);
    }
    return (double)correct / (double)test->n;
}

int main(int argc, char **argv)
{
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
    /* Standardize with the training set's statistics only. */
    float mean, std;
    cnn_pixel_stats(&train, &mean, &std);

    fg_rng rng;
    fg_rng_seed(&rng, (uint64_t)o.seed);
    cnn m;
    cnn_init(&m, train.c, train.h, train.w, 32, 64, 128, 10, &rng);
    fg_state_list params;
    fg_state_list_init(&params);
    cnn_visit(&m, "", fg_state_list_add, &params);
    fg_optim opt;
    fg_optim_init(&opt, FG_ADAM, &params, 0.9, 0.999, 1e-8);
    printf("classify: %d train / %d test images, %zu parameters, batch %d, lr %g, %d threads\n",
           train.n, test.n, fg_state_list_param_count(&params), o.batch, o.lr, o.threads);

    enum { EVAL_BATCH = 500 };
    int cap = o.batch > EVAL_BATCH ? o.batch : EVAL_BATCH;
    size_t per = (size_t)train.c * train.h * train.w;
    float *xbuf = malloc((size_t)cap * per * sizeof(float));
    int *idx = malloc((size_t)cap * sizeof(int)), *labels = malloc((size_t)cap * sizeof(int));
    if (!xbuf || !idx || !labels) {
        fprintf(stderr, "classify: out of memory for a batch of %d\n", cap);
        return 1;
    }
    fg_graph *g = fg_graph_create();
    fg_batch_iter it;
    fg_batch_iter_init(&it, &train, o.batch, 1, 1, (uint64_t)o.seed);
    double t0 = now_s();
    printf("%5s %10s %9s %8s %9s\n", "epoch", "train_loss", "test_acc", "img/s", "elapsed");
    for (int e = 1; e <= o.epochs; e++) {
        double te = now_s(), loss_sum = 0.0;
        long seen = 0;
        int n, steps = 0;
        while ((n = fg_batch_iter_next(&it, idx)) > 0) {
            cnn_images(&train, idx, n, mean, std, xbuf);
            fg_dataset_labels(&train, idx, n, labels);
            int shape[4] = {n, train.c, train.h, train.w};
            loss_sum += cnn_train_step(g, &m, &params, &opt, o.lr,
                                       fg_const_wrap(g, xbuf, 4, shape), labels);
            seen += n;
            steps++;
            if (o.progress && steps % o.progress == 0)
                fprintf(stderr, "  epoch %d step %d: loss %.4f, %.0f img/s\n", e, steps,
                        loss_sum / steps, (double)seen / (now_s() - te));
        }
        double train_s = now_s() - te;
        double acc = test_accuracy(g, &m, &test, mean, std, xbuf, idx, labels, EVAL_BATCH);
        printf("%5d %10.4f %8.2f%% %8.0f %8.1fs\n", e, steps ? loss_sum / steps : 0.0, 100.0 * acc,
               (double)seen / train_s, now_s() - t0);
        fflush(stdout);
    }

    fg_graph_destroy(g);
    fg_batch_iter_free(&it);
    fg_optim_free(&opt);
    fg_state_list_free(&params);
    cnn_free(&m);
    free(xbuf);
    free(idx);
    free(labels);
    fg_dataset_free(&train);
    fg_dataset_free(&test);
    return 0;
}
