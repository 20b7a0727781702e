/* The convolutional classifier of the zoo (see models/classifier.h). */
#include "models/classifier.h"

#include <math.h>

void fg_cnn_init(fg_cnn *m, int c_in, int h, int w, int c1, int c2, int hidden,
              int classes, fg_rng *rng)
{
    FG_CHECK(h % 4 == 0 && w % 4 == 0, "fg_cnn_init", "image %dx%d: two 2x2 poolings need "
             "multiples of 4", h, w);
    m->c_in = c_in;
    m->h = h;
    m->w = w;
    /* He initialization: std sqrt(2 / fan_in) keeps the activations' scale
     * through each ReLU. Biases start at zero. */
    fg_conv_init(&m->conv1, c_in, c1, 3, 1, sqrtf(2.0f / (float)(c_in * 9)), rng);
    fg_conv_init(&m->conv2, c1, c2, 3, 1, sqrtf(2.0f / (float)(c1 * 9)), rng);
    int flat = c2 * (h / 4) * (w / 4);
    fg_linear_init(&m->fc1, flat, hidden, 1, sqrtf(2.0f / (float)flat), rng);
    /* The last layer has no ReLU after it: fan-in scaling without the 2. */
    fg_linear_init(&m->fc2, hidden, classes, 1, sqrtf(1.0f / (float)hidden), rng);
}

void fg_cnn_free(fg_cnn *m)
{
    fg_conv_free(&m->conv1);
    fg_conv_free(&m->conv2);
    fg_linear_free(&m->fc1);
    fg_linear_free(&m->fc2);
}

void fg_cnn_visit(fg_cnn *m, const char *prefix, fg_visit_fn fn, void *ctx)
{
    char buf[FG_NAME_LEN];
    fg_conv_visit(&m->conv1, fg_name_join(buf, sizeof buf, prefix, "conv1"), fn, ctx);
    fg_conv_visit(&m->conv2, fg_name_join(buf, sizeof buf, prefix, "conv2"), fn, ctx);
    fg_linear_visit(&m->fc1, fg_name_join(buf, sizeof buf, prefix, "fc1"), fn, ctx);
    fg_linear_visit(&m->fc2, fg_name_join(buf, sizeof buf, prefix, "fc2"), fn, ctx);
}

fg_var *fg_cnn_logits(fg_graph *g, fg_cnn *m, fg_var *x)
{
    fg_var *h = fg_max_pool2x2(g, fg_relu(g, fg_conv_apply(g, &m->conv1, x)));
    h = fg_max_pool2x2(g, fg_relu(g, fg_conv_apply(g, &m->conv2, h)));
    int flat[2] = {h->t.shape[0], m->fc1.in};
    h = fg_relu(g, fg_linear_apply(g, &m->fc1, fg_reshape(g, h, 2, flat)));
    return fg_linear_apply(g, &m->fc2, h);
}

void fg_cnn_images(const fg_dataset *d, const int *idx, int n, float mean,
                float std, float *out)
{
    size_t per = (size_t)d->c * d->h * d->w;
    float scale = 1.0f / (255.0f * std), shift = mean / std;
    for (int i = 0; i < n; i++) {
        const uint8_t *src = d->images + (size_t)idx[i] * per;
        for (size_t k = 0; k < per; k++) out[(size_t)i * per + k] = (float)src[k] * scale - shift;
    }
}

void fg_cnn_pixel_stats(const fg_dataset *d, float *mean, float *std)
{
    size_t n = (size_t)d->n * d->c * d->h * d->w;
    double s = 0.0, s2 = 0.0;
    for (size_t k = 0; k < n; k++) {
        double v = d->images[k] / 255.0;
        s += v;
        s2 += v * v;
    }
    double mu = n ? s / (double)n : 0.0;
    double var = n ? s2 / (double)n - mu * mu : 0.0;
    *mean = (float)mu;
    /* A constant data set would divide by zero. */
    *std = var > 1e-12 ? (float)sqrt(var) : 1.0f;
}

fg_var *fg_cnn_loss(fg_graph *g, fg_cnn *m, fg_var *x, const int *labels)
{
    return fg_mean(g, fg_log_softmax_cross_entropy(g, fg_cnn_logits(g, m, x), labels));
}

int fg_cnn_count_correct(fg_graph *g, fg_cnn *m, fg_var *x, const int *labels)
{
    int was = fg_set_grad_enabled(g, 0);
    fg_var *logits = fg_cnn_logits(g, m, x);
    int N = logits->t.shape[0], K = logits->t.shape[1], correct = 0;
    for (int n = 0; n < N; n++) {
        const float *row = logits->t.data + (size_t)n * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (row[k] > row[best]) best = k;
        correct += best == labels[n];
    }
    fg_set_grad_enabled(g, was);
    fg_graph_reset(g);
    return correct;
}
