/* flowgrad model lifecycle: a flow model of a config trained by the
 * library trainer (nn/trainer.h) on its dataset, and evaluated in bits/dim.
 *
 * Determinism: the batch order is a function of (seed, epoch, position) and
 * each step's dequantization noise comes from the stream (seed,
 * FG_STREAM_NOISE + step), and its random flips (train: dataset: flip) from
 * (seed, FG_STREAM_FLIP + step), both indexed by an image's place in the
 * global batch, so a resumed run, or one on N ranks, sees exactly the data
 * an uninterrupted single process would. */
#ifndef FLOWGRAD_MODELS_TRAIN_H
#define FLOWGRAD_MODELS_TRAIN_H

#include "nn/trainer.h"
#include "models/checkpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Distinct stream numbers keep the noise of different purposes apart. */
#define FG_STREAM_NOISE 0x100000000ULL
#define FG_STREAM_SAMPLE 0x200000000ULL
#define FG_STREAM_EVAL 0x6576616cULL
/* Far above FG_STREAM_NOISE + any step count (FG_CONFIG_MAX_STEPS). */
#define FG_STREAM_FLIP 0x0300000000000000ULL

/* The train or test split named by the config's dataset. Synthetic data is
 * generated from the config's seed, and refused before it is when it would
 * not fit in max_bytes (negative: no limit). */
FG_API int fg_config_load_split(const fg_config *cfg, int train, double max_bytes, fg_dataset *d);
/* The trainer settings of a config's train: section. A run counted in
 * epochs leaves total_steps 0 (the schedule's horizon): the caller sets it
 * from the dataset's size, as it sets fg_train_plan's. */
FG_API fg_trainer_options fg_config_trainer_options(const fg_config *cfg, long skip_nonfinite);

/* Dequantized images idx (n) into a graph constant (n, C, H, W). */
FG_API fg_var *fg_model_input(fg_graph *g, const fg_dataset *d, const int *idx, int n,
                       int n_bits, fg_rng *rng);

/* Steps between the inversion drift figures (fg_invert_stats) that
 * flowgrad train writes to metrics.csv in train.memory: invert. */
#define FG_INVERT_DRIFT_EVERY 100
/* Drift above which flowgrad train warns. Measured drift is float rounding,
 * about 1e-6 on inputs in [-0.5, 0.5] (BENCHMARKS.md, "Memory by
 * inversion"); 1e-3 is a quarter of an 8-bit data bin, a thousand times
 * that: reached only when a layer's inverse amplifies errors (an
 * ill-conditioned 1x1 convolution, a vanishing scale). The run is not
 * switched to store on its own, since store may not fit where invert
 * does; the warning says to. */
#define FG_INVERT_DRIFT_WARN 1e-3

/* The loss hook of fg_train_run for a flow model on a dataset. */
typedef struct fg_model_batches {
    fg_model *model;
    const fg_dataset *data;
    uint64_t seed;
    int flip;                  /* random horizontal flips; 0 after init */
    int *labels;               /* room for a batch; owned */
    fg_memory_mode memory;     /* FG_MEMORY_STORE unless set after init */
    fg_invert_stats invert;    /* FG_MEMORY_INVERT: the last backward's drift */
} fg_model_batches;
FG_API void fg_model_batches_init(fg_model_batches *b, fg_model *m, const fg_dataset *d, int batch,
                           uint64_t seed);
FG_API void fg_model_batches_free(fg_model_batches *b);
/* The input the loss of batch b sees: its images dequantized with the
 * step's noise and, with flip, mirrored as the step's flip stream says;
 * their labels land in mb->labels. */
FG_API fg_var *fg_model_batch_input(fg_model_batches *mb, fg_graph *g, const fg_batch *b);
/* Where the labels of b's images go (the part of mb->labels of b's place
 * in the rank's batch, so that parts of a batch computed at once do not
 * share it). */
FG_API int *fg_model_batch_labels(fg_model_batches *mb, const fg_batch *b);
/* Whether m's next batch may be computed in parts at once
 * (fg_trainer_step_parts): in store mode, once every actnorm is
 * initialized. */
FG_API int fg_model_can_split(fg_model *m, fg_memory_mode memory);
/* The same for the batches' model and memory mode, in the form of
 * fg_train_hooks.can_split's test. */
FG_API int fg_model_batches_can_split(const fg_model_batches *mb);
/* ctx is an fg_model_batches; *bpd receives the batch's bits/dim. */
FG_API fg_var *fg_model_batch_loss(void *ctx, fg_graph *g, const fg_batch *b, double *bpd);

/* Sum of bits/dim over images [first, first + count) of d (no-grad, in
 * batches of batch); image i gets the same noise from (seed,
 * FG_STREAM_EVAL) whichever range it is evaluated in, so ranges can be
 * evaluated apart and added up. */
FG_API double fg_model_eval_bpd_sum(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                             uint64_t seed, int first, int count);
/* Mean bits/dim over the first max_images of d (0: all). */
FG_API double fg_model_eval_bpd(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                         uint64_t seed, int max_images);
/* The same over all of d with every rank evaluating its contiguous part
 * (collective: every rank calls it). */
FG_API double fg_model_eval_bpd_ranks(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                               uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
