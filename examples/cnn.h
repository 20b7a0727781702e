/* A small convolutional classifier built from public modules and ops:
 *   conv3x3(c_in -> c1) relu maxpool conv3x3(c1 -> c2) relu maxpool
 *   linear(c2 * h/4 * w/4 -> hidden) relu linear(hidden -> classes).
 * Shared by the classify example and its training test. */
#ifndef FLOWGRAD_EXAMPLES_CNN_H
#define FLOWGRAD_EXAMPLES_CNN_H

#include "flowgrad.h"

typedef struct cnn {
    fg_conv conv1, conv2;
    fg_linear fc1, fc2;
    int c_in, h, w;
} cnn;

/* h and w must be multiples of 4 (two 2x2 poolings). */
void cnn_init(cnn *m, int c_in, int h, int w, int c1, int c2, int hidden,
              int classes, fg_rng *rng);
void cnn_free(cnn *m);
void cnn_visit(cnn *m, const char *prefix, fg_visit_fn fn, void *ctx);
/* x (N, c_in, h, w) -> logits (N, classes). */
fg_var *cnn_logits(fg_graph *g, cnn *m, fg_var *x);

/* Images idx[0..n) of d scaled to [0, 1] and standardized with the given
 * mean and std, into out (n, c, h, w). */
void cnn_images(const fg_dataset *d, const int *idx, int n, float mean,
                float std, float *out);
/* Mean and standard deviation of all pixels of d scaled to [0, 1]. */
void cnn_pixel_stats(const fg_dataset *d, float *mean, float *std);

/* One Adam step on a batch: returns the mean cross-entropy before the
 * update. x lives on g for this step only (e.g. fg_const_wrap): g is reset
 * afterwards, as it is after counting. */
double cnn_train_step(fg_graph *g, cnn *m, const fg_state_list *params,
                      fg_optim *opt, double lr, fg_var *x, const int *labels);
/* Number of correct argmax predictions on a batch (no gradients). */
int cnn_count_correct(fg_graph *g, cnn *m, fg_var *x, const int *labels);

#endif
