/* Datasets in memory, epoch batching and dequantization for flows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nn/io.h"

void fg_dataset_free(fg_dataset *d)
{
    free(d->images);
    free(d->labels);
    for (int i = 0; d->class_names && i < d->n_classes; i++)
        free(d->class_names[i]);
    free(d->class_names);
    for (int i = 0; d->names && i < d->n; i++)
        free(d->names[i]);
    free(d->names);
    memset(d, 0, sizeof *d);
}

void fg_batch_iter_init(fg_batch_iter *it, const fg_dataset *d, int batch,
                        int shuffle, int drop_last, uint64_t seed)
{
    FG_CHECK(batch > 0 && d->n > 0, "fg_batch_iter_init", "batch %d over %d images",
             batch, d->n);
    it->d = d;
    it->batch = batch;
    it->shuffle = shuffle;
    it->drop_last = drop_last;
    it->seed = seed;
    it->perm = fg_xmalloc((size_t)d->n * sizeof *it->perm, "batch permutation");
    fg_batch_iter_seek(it, 0, 0);
}

/* The permutation of an epoch depends only on (seed, epoch). */
static void make_perm(fg_batch_iter *it)
{
    if (!it->shuffle) {
        for (int i = 0; i < it->d->n; i++)
            it->perm[i] = i;
        return;
    }
    fg_rng r;
    fg_rng_seed_stream(&r, it->seed, (uint64_t)it->epoch);
    fg_rng_permutation(&r, it->perm, it->d->n);
}

void fg_batch_iter_seek(fg_batch_iter *it, long epoch, int pos)
{
    FG_CHECK(epoch >= 0 && pos >= 0 && pos <= it->d->n, "fg_batch_iter_seek",
             "epoch %ld, position %d of %d", epoch, pos, it->d->n);
    it->epoch = epoch;
    it->pos = pos;
    make_perm(it);
}

int fg_batch_iter_next(fg_batch_iter *it, int *idx)
{
    int left = it->d->n - it->pos;
    if (left <= 0 || (it->drop_last && left < it->batch)) {
        fg_batch_iter_seek(it, it->epoch + 1, 0);
        return 0;
    }
    int n = left < it->batch ? left : it->batch;
    memcpy(idx, it->perm + it->pos, (size_t)n * sizeof *idx);
    it->pos += n;
    return n;
}

void fg_batch_iter_free(fg_batch_iter *it)
{
    free(it->perm);
    it->perm = NULL;
}

void fg_dequantize(const fg_dataset *d, const int *idx, int n, int n_bits,
                   fg_rng *rng, float *out)
{
    FG_CHECK(n_bits >= 1 && n_bits <= 8, "fg_dequantize", "n_bits %d", n_bits);
    const size_t D = (size_t)d->c * d->h * d->w;
    const int shift = 8 - n_bits;
    const float bins = (float)(1 << n_bits);
    /* One uniform draw per value, in index order: the noise of a batch is a
     * function of the rng state alone. */
    fg_rng_uniform(rng, out, (size_t)n * D);
    for (int s = 0; s < n; s++) {
        FG_CHECK(idx[s] >= 0 && idx[s] < d->n, "fg_dequantize", "index %d of %d", idx[s], d->n);
        const uint8_t *x = d->images + (size_t)idx[s] * D;
        float *y = out + (size_t)s * D;
        for (size_t i = 0; i < D; i++)
            y[i] = (float)(x[i] >> shift) / bins - 0.5f + y[i] / bins;
    }
}

void fg_flip_random(float *x, int n, int c, int h, int w, fg_rng *rng)
{
    if (n <= 0)
        return;
    float *coin = fg_xmalloc((size_t)n * sizeof *coin, "flip draws");
    fg_rng_uniform(rng, coin, (size_t)n);
    for (int s = 0; s < n; s++) {
        if (coin[s] >= 0.5f)
            continue;
        float *img = x + (size_t)s * c * h * w;
        for (long row = 0; row < (long)c * h; row++) {
            float *r = img + (size_t)row * w;
            for (int i = 0, j = w - 1; i < j; i++, j--) {
                float t = r[i];
                r[i] = r[j];
                r[j] = t;
            }
        }
    }
    free(coin);
}

void fg_dataset_labels(const fg_dataset *d, const int *idx, int n, int *out)
{
    for (int s = 0; s < n; s++) {
        FG_CHECK(idx[s] >= 0 && idx[s] < d->n, "fg_dataset_labels", "index %d of %d",
                 idx[s], d->n);
        out[s] = d->labels[idx[s]];
    }
}
