/* Bits/dim of a flow model over a dataset, and the dequantized batches it
 * is computed on (see models/train.h). */
#include "models/train.h"

#include <stdlib.h>

fg_var *fg_model_input(fg_graph *g, const fg_dataset *d, const int *idx, int n, int n_bits,
                       fg_rng *rng)
{
    int shape[4] = {n, d->c, d->h, d->w};
    fg_var *x = fg_const(g, 4, shape);
    fg_dequantize(d, idx, n, n_bits, rng, x->t.data);
    return x;
}

double fg_model_eval_bpd_sum(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                             uint64_t seed, int first, int count)
{
    /* A batch may ask for far more than there is to evaluate. */
    if (batch > count)
        batch = count > 0 ? count : 1;
    int *idx = fg_xmalloc((size_t)batch * sizeof *idx, "eval indices");
    int *y = fg_xmalloc((size_t)batch * sizeof *y, "eval labels");
    fg_rng rng;
    fg_rng_seed_stream(&rng, seed, FG_STREAM_EVAL);
    /* Image i's noise is the same whichever range it is evaluated in. */
    rng.counter = (uint64_t)first * d->c * d->h * d->w;
    double sum = 0;
    for (int start = first; start < first + count; start += batch) {
        int n = first + count - start < batch ? first + count - start : batch;
        for (int i = 0; i < n; i++)
            idx[i] = start + i;
        fg_dataset_labels(d, idx, n, y);
        fg_graph_reset(g);
        int was = fg_set_grad_enabled(g, 0);
        fg_var *x = fg_model_input(g, d, idx, n, m->n_bits, &rng);
        fg_var *bpd = fg_model_bits_per_dim(m, g, x, y);
        sum += fg_k_sum((size_t)n, bpd->t.data);
        fg_set_grad_enabled(g, was);
    }
    fg_graph_reset(g);
    free(idx);
    free(y);
    return sum;
}

double fg_model_eval_bpd(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                         uint64_t seed, int max_images)
{
    int total = d->n;
    if (max_images > 0 && max_images < total)
        total = max_images;
    return fg_model_eval_bpd_sum(m, g, d, batch, seed, 0, total) / total;
}

double fg_model_eval_bpd_ranks(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                               uint64_t seed)
{
    int size = fg_dist_size(), rank = fg_dist_rank();
    if (size == 1)
        return fg_model_eval_bpd(m, g, d, batch, seed, 0);
    /* Contiguous parts whose sizes differ by at most one image. */
    int first = (int)((long long)d->n * rank / size);
    int last = (int)((long long)d->n * (rank + 1) / size);
    double sum = fg_model_eval_bpd_sum(m, g, d, batch, seed, first, last - first);
    fg_dist_sum(&sum, 1, NULL);
    return sum / d->n;
}
