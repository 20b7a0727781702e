/* flowgrad evaluation of a trained flow, image by image: the bits/dim of
 * each image, a tighter bound from several dequantization draws, the data
 * sets to compare a model on (its own, another built-in one, or its own
 * transformed to look out of distribution), and a per-image table.
 *
 * A flow models the density of x + u, the 2^n_bits-level image x plus
 * uniform noise u in one bin. One draw gives the usual bound on the
 * probability of the discrete image, log P(x) >= log p(x + u) - D log 2^n
 * in expectation; K draws give the importance-weighted bound
 *     log P(x) >= E log( (1/K) sum_k p(x + u_k) 2^-nD ),
 * which is never looser (Jensen) and tightens as K grows. In bits/dim:
 *     bpd_K = -log2( (1/K) sum_k 2^(-D bpd_k) ) / D. */
#ifndef FLOWGRAD_MODELS_EVAL_H
#define FLOWGRAD_MODELS_EVAL_H

#include "models/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Draws after the first come from streams of their own; the first is
 * (seed, FG_STREAM_EVAL), the one training's evaluations use. */
#define FG_STREAM_EVAL_DRAWS 0x300000000ULL
/* The most draws per image an evaluation takes. */
#define FG_EVAL_MAX_SAMPLES 4096

/* The bound of k draws (bits/dim of one image under each draw, draws[k])
 * of an image of dims values, combined by log-sum-exp in double relative
 * to the best draw, so that nothing underflows and one draw returns
 * draws[0] exactly. NaN when a draw is NaN; +inf draws weigh nothing. */
FG_API double fg_bpd_importance_weighted(const double *draws, int k, double dims);

/* Bits/dim of images [first, first + count) of d (no-grad, in batches of
 * batch) under `samples` >= 1 draws each: draw k of image i is the noise
 * of stream (seed, k ? FG_STREAM_EVAL_DRAWS + k : FG_STREAM_EVAL) at
 * counter i * C*H*W, so an image gets the same draws whatever range or
 * batch it is evaluated in. bpd (count values, may be NULL) receives each
 * image's importance-weighted bound, draws (count * samples, may be NULL)
 * every single draw, image-major. Returns the sum of the bounds; with one
 * draw it is exactly fg_model_eval_bpd_sum's. */
FG_API double fg_model_eval_images(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                                   uint64_t seed, int first, int count, int samples,
                                   double *bpd, double *draws);

/* A data set to evaluate a model on, with the title plots and tables give
 * it ("fashion-mnist test", "inverted fashion-mnist test"). */
typedef struct fg_eval_set {
    fg_dataset data;
    char title[128];
} fg_eval_set;

/* The split (train or test) of the data set called name, for the model of
 * cfg (a checkpoint's config):
 *   NULL               the config's own data set (fg_config_load_split);
 *   fashion-mnist      from FG_FASHION_MNIST_DIR;
 *   mnist, cifar10     from the config's path when it trains on that set
 *                      (neither has a default folder);
 *   synthetic          generated at the model's image shape;
 *   flipped-vertical, inverted, noise
 *                      the config's own split, transformed
 *                      (fg_dataset_transform; noise drawn from the seed).
 * FG_ERR naming the set and the fix for an unknown name, a set whose images
 * are not the model's shape or whose labels are not its classes. */
FG_API int fg_eval_set_load(const fg_config *cfg, const char *name, int train, double max_bytes,
                            fg_eval_set *out);
/* Every image of the folder dir (fg_dataset_open_folder: PNG and JPEG,
 * cropped and resized to the model's image shape, labels from class
 * subfolders, bad files refused), with the same checks as above; a
 * class-conditional model needs class subfolders. The set's names are
 * the files' paths relative to dir. */
FG_API int fg_eval_set_load_folder(const fg_config *cfg, const char *dir, double max_bytes,
                                   fg_eval_set *out);
FG_API void fg_eval_set_free(fg_eval_set *s);

/* Writes a per-image table atomically (fg_atomic_open): a header, then one
 * row per image i of [first, first + count) of d: its index (or, with names
 * not NULL, names[i], quoted where it needs it), its label and bpd[i -
 * first] with six decimals. FG_ERR with the path on any failure, and no
 * file left behind. */
FG_API int fg_eval_write_csv(const char *path, const fg_dataset *d, int first, int count,
                             const double *bpd, const char *const *names);

/* What a mean over many images hides. A single image far outside what a
 * model has learned can carry nearly all of the mean: after 2,600 steps of
 * the quick Glow at batch 16 with an unbounded split prior (no
 * split_logs_floor), one finely striped pullover of Fashion-MNIST's test set
 * scored 3.3 million bits/dim (its level-0 split prior predicted some
 * values with a standard deviation of 2e-5) and lifted the mean of 10,000
 * images from 3.52 to 330.5. The median, and the mean without the worst
 * image, show when that is the case. NaN images count as the worst. */
typedef struct fg_bpd_summary {
    int n;
    double mean, median;
    int worst;                  /* index of the highest bits/dim (-1 when n is 0) */
    double worst_bpd;
    double mean_without_worst;  /* the mean of the other n - 1 (the mean when n is 1) */
} fg_bpd_summary;

FG_API void fg_bpd_summarize(const double *bpd, int n, fg_bpd_summary *out);
/* Whether removing the worst image moves the mean by more than limit
 * bits/dim (a NaN or infinite worst image always does). */
FG_API int fg_bpd_summary_dominated(const fg_bpd_summary *s, double limit);
/* fg_model_eval_bpd_ranks's mean, to the last digit, and with summary not
 * NULL the summary of every image's bits/dim, gathered from all ranks onto
 * each (collective: every rank calls it). */
FG_API double fg_model_eval_bpd_ranks_summary(fg_model *m, fg_graph *g, const fg_dataset *d,
                                              int batch, uint64_t seed,
                                              fg_bpd_summary *summary);

#ifdef __cplusplus
}
#endif
#endif
