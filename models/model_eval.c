/* Bits/dim of a flow model over a dataset, image by image or summed, and
 * the dequantized batches it is computed on (see models/train.h and
 * models/eval.h). */
#include "models/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fg_var *fg_model_input(fg_graph *g, const fg_dataset *d, const int *idx, int n, int n_bits,
                       fg_rng *rng)
{
    int shape[4] = {n, d->c, d->h, d->w};
    fg_var *x = fg_const(g, 4, shape);
    fg_dequantize(d, idx, n, n_bits, rng, x->t.data);
    return x;
}

double fg_bpd_importance_weighted(const double *draws, int k, double dims)
{
    double best = INFINITY;
    for (int j = 0; j < k; j++) {
        if (isnan(draws[j]))
            return NAN;
        best = draws[j] < best ? draws[j] : best;
    }
    if (!isfinite(best))
        return best;
    /* (1/k) sum_j 2^(-D b_j) = 2^(-D best) (1/k) sum_j e^(-D ln2 (b_j - best)): every
     * term is at most 1 and the best one exactly 1, so the sum neither
     * overflows nor underflows to 0. */
    double scale = dims * M_LN2, sum = 0;
    for (int j = 0; j < k; j++)
        sum += exp(-(draws[j] - best) * scale);
    return best - (log(sum) - log((double)k)) / scale;
}

double fg_model_eval_images(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                            uint64_t seed, int first, int count, int samples, double *bpd,
                            double *draws)
{
    FG_CHECK(samples >= 1 && samples <= FG_EVAL_MAX_SAMPLES, "fg_model_eval_images",
             "%d draws per image", samples);
    /* A batch may ask for far more than there is to evaluate. */
    if (batch > count)
        batch = count > 0 ? count : 1;
    const size_t D = (size_t)d->c * d->h * d->w;
    int *idx = fg_xmalloc((size_t)batch * sizeof *idx, "eval indices");
    int *y = fg_xmalloc((size_t)batch * sizeof *y, "eval labels");
    double *v = fg_xmalloc((size_t)batch * samples * sizeof *v, "eval draws");
    double sum = 0;
    for (int start = first; start < first + count; start += batch) {
        int n = first + count - start < batch ? first + count - start : batch;
        for (int i = 0; i < n; i++)
            idx[i] = start + i;
        fg_dataset_labels(d, idx, n, y);
        for (int k = 0; k < samples; k++) {
            fg_rng rng;
            fg_rng_seed_stream(&rng, seed, k ? FG_STREAM_EVAL_DRAWS + (uint64_t)k
                                             : FG_STREAM_EVAL);
            /* Image i's noise is the same whichever range it is evaluated in. */
            rng.counter = (uint64_t)start * D;
            fg_graph_reset(g);
            int was = fg_set_grad_enabled(g, 0);
            fg_var *x = fg_model_input(g, d, idx, n, m->n_bits, &rng);
            fg_var *b = fg_model_bits_per_dim(m, g, x, y);
            /* One draw sums as training's evaluations always have, so that
             * eval and metrics.csv agree to the last digit. */
            if (samples == 1)
                sum += fg_k_sum((size_t)n, b->t.data);
            for (int i = 0; i < n; i++)
                v[(size_t)i * samples + k] = b->t.data[i];
            fg_set_grad_enabled(g, was);
        }
        for (int i = 0; i < n; i++) {
            const double *vi = v + (size_t)i * samples;
            double bound = fg_bpd_importance_weighted(vi, samples, (double)D);
            if (samples > 1)
                sum += bound;
            if (bpd)
                bpd[start - first + i] = bound;
            if (draws)
                memcpy(draws + (size_t)(start - first + i) * samples, vi,
                       (size_t)samples * sizeof *vi);
        }
    }
    fg_graph_reset(g);
    free(idx);
    free(y);
    free(v);
    return sum;
}

double fg_model_eval_bpd_sum(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                             uint64_t seed, int first, int count)
{
    return fg_model_eval_images(m, g, d, batch, seed, first, count, 1, NULL, NULL);
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
    return fg_model_eval_bpd_ranks_summary(m, g, d, batch, seed, NULL);
}

double fg_model_eval_bpd_ranks_summary(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                                       uint64_t seed, fg_bpd_summary *summary)
{
    int size = fg_dist_size(), rank = fg_dist_rank();
    /* Contiguous parts whose sizes differ by at most one image. */
    int first = (int)((long long)d->n * rank / size);
    int last = (int)((long long)d->n * (rank + 1) / size);
    /* Every image's value in its place, zeros elsewhere, so that one sum
     * over ranks gathers them all on every rank. */
    double *all = summary ? fg_xcalloc((size_t)d->n, sizeof *all, "per-image bits/dim") : NULL;
    double sum = fg_model_eval_images(m, g, d, batch, seed, first, last - first, 1,
                                      all ? all + first : NULL, NULL);
    if (size > 1) {
        fg_dist_sum(&sum, 1, NULL);
        if (all)
            fg_dist_sum(all, d->n, NULL);
    }
    if (summary) {
        fg_bpd_summarize(all, d->n, summary);
        free(all);
    }
    return sum / d->n;
}
