/* A small convolutional classifier built from public modules and ops:
 *   conv3x3(c_in -> c1) relu maxpool conv3x3(c1 -> c2) relu maxpool
 *   linear(c2 * h/4 * w/4 -> hidden) relu linear(hidden -> classes).
 * A model of the zoo that is not a flow: what examples/classify trains on
 * Fashion-MNIST, through the library trainer (nn/trainer.h). */
#ifndef FLOWGRAD_MODELS_CLASSIFIER_H
#define FLOWGRAD_MODELS_CLASSIFIER_H

#include "nn/io.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fg_cnn {
    fg_conv conv1, conv2;
    fg_linear fc1, fc2;
    int c_in, h, w;
} fg_cnn;

/* h and w must be multiples of 4 (two 2x2 poolings). */
FG_API void fg_cnn_init(fg_cnn *m, int c_in, int h, int w, int c1, int c2, int hidden,
              int classes, fg_rng *rng);
FG_API void fg_cnn_free(fg_cnn *m);
FG_API void fg_cnn_visit(fg_cnn *m, const char *prefix, fg_visit_fn fn, void *ctx);
/* x (N, c_in, h, w) -> logits (N, classes). */
FG_API fg_var *fg_cnn_logits(fg_graph *g, fg_cnn *m, fg_var *x);

/* Images idx[0..n) of d scaled to [0, 1] and standardized with the given
 * mean and std, into out (n, c, h, w). */
FG_API void fg_cnn_images(const fg_dataset *d, const int *idx, int n, float mean,
                float std, float *out);
/* Mean and standard deviation of all pixels of d scaled to [0, 1]. */
FG_API void fg_cnn_pixel_stats(const fg_dataset *d, float *mean, float *std);

/* The mean cross-entropy of a batch: the loss to train on. */
FG_API fg_var *fg_cnn_loss(fg_graph *g, fg_cnn *m, fg_var *x, const int *labels);
/* Number of correct argmax predictions on a batch (no gradients). */
FG_API int fg_cnn_count_correct(fg_graph *g, fg_cnn *m, fg_var *x, const int *labels);

#ifdef __cplusplus
}
#endif
#endif
