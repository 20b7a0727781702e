/* flowgrad checkpoints from outside: a file that is well-formed safetensors
 * can still mean something impossible (a permutation with a repeat, LU signs
 * of 0, NaN moments, a counter at 2^63, a config declaring a model far
 * larger than its weights). Checkpoints travel between people the way model
 * files do, so loading one checks what every tensor means, and the size of
 * the model its config declares, before anything is built; a bad one is an
 * error naming the tensor, what it holds and what was expected, never a stop.
 *
 * The format (FG_CHECKPOINT_FORMAT in the metadata key "format") holds the
 * model's state under its visit names (flows/flow.h), "optim.m.<param>" and
 * "optim.v.<param>" with "optim.step" (I64 [1]), "ema.<param>" when the run
 * kept averages, the train state as one I64 [1] tensor per field
 * ("train.step", "train.epoch", "train.position", "train.seed"), the step
 * guard's window as "train.guard" (I64, fg_step_guard_save) when the run
 * keeps one, the seconds
 * trained under the metadata key "elapsed_seconds" and the run's YAML under
 * "config".
 *
 * Reading is forward-compatible: a later format may add tensors under
 * "train." and metadata keys, which this reader skips; it never changes what
 * an existing name means (that would be a new format name, which the reader
 * refuses). Format 1, with the positional "train.state" (I64 [step, epoch,
 * position, seed]), is still read. */
#ifndef FLOWGRAD_MODELS_CHECKPOINT_H
#define FLOWGRAD_MODELS_CHECKPOINT_H

#include "nn/io.h"
#include "nn/trainer.h"
#include "models/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What each tensor of st means, by name, with no model needed: every float
 * value finite; permutations ("*.invconv.p", "*.permute.perm") are
 * permutations; LU signs ("*.invconv.sign") are +-1; "*.initialized" flags
 * are 0 or 1; second moments ("optim.v.*") are >= 0; "optim.step" and the
 * train state's counters are within their ranges (steps and epochs
 * FG_CONFIG_MAX_STEPS, a position INT_MAX), format 1's "train.state" alike;
 * "train." counters of later formats are skipped. Optimizer and
 * EMA state get the same checks as the model's. Messages read
 * "PATH: tensor 'NAME' holds VALUE at index I of N; expected ...". */
FG_API int fg_checkpoint_check_values(const fg_safetensors *st);

/* The model spec declares (fg_model_spec_size) against the file: its
 * values must be as many as the file's model tensors hold (names outside
 * "optim.", "ema.", "train."), and building it must fit in max_bytes
 * (negative: no limit). Nothing is allocated. */
FG_API int fg_checkpoint_check_size(const fg_safetensors *st, const fg_model_spec *spec,
                             double max_bytes);

/* After a model's state was loaded: every invconv can be inverted
 * (fg_flow_check_invertible), as the ops will need. */
FG_API int fg_model_check_state(fg_model *m);

#define FG_CHECKPOINT_FORMAT "flowgrad-checkpoint-2"

/* Where a run stands: what resuming it needs besides weights and moments. */
typedef struct fg_train_state {
    long step;                 /* updates taken */
    long epoch;                /* the batch iterator's epoch and position */
    int position;
    uint64_t seed;
    double elapsed_seconds;    /* training time, carried across resumes */
} fg_train_state;

/* A model loaded from a checkpoint: the config it was trained with (from
 * the metadata) and its weights, the EMA averages where the file has them.
 * has_state: the file holds a train state (one written by training). */
typedef struct fg_checkpoint {
    fg_config *cfg;
    fg_model *model;
    fg_safetensors st;
    int has_state;
    fg_train_state state;
} fg_checkpoint;

/* The train state of a checked file: the named fields, or format 1's
 * "train.state". FG_ERR naming the file when there is none or a field is
 * malformed. */
FG_API int fg_checkpoint_get_state(const fg_safetensors *st, fg_train_state *s);
/* Reads path, checks its values and returns its train state: what a
 * scheduler needs to know of a run without building its model. */
FG_API int fg_checkpoint_read_state(const char *path, fg_train_state *s);

/* Writes a checkpoint atomically (fg_st_write): the model's state, the
 * trainer's optimizer moments and step, its averages and step guard when
 * it keeps them ("train.guard"), the train state and the config text.
 * Refuses, naming the tensor, weights that are not finite: a checkpoint is
 * the state to come back to. */
FG_API int fg_checkpoint_save(const char *path, const fg_config *cfg, const fg_model *model,
                       fg_trainer *tr, const fg_train_state *s);
/* Continues a run: loads into a built model (of the same layer list) its
 * weights, and into a trainer made for it the optimizer's moments, the
 * averages and the step guard's window (a file without one leaves the
 * window empty), and returns the train state, after every check of fg_checkpoint_check_values; the model
 * is checked again as its layers will use it. dataset_n bounds the
 * iterator position. On FG_ERR nothing the caller uses is half-loaded in a
 * way that matters: the caller stops. */
FG_API int fg_checkpoint_resume(const char *path, fg_model *model, fg_trainer *tr,
                         int dataset_n, fg_train_state *s);

/* Reads path and runs every check above, in that order, before building
 * the model; then loads its state by name and shape, and checks it again as
 * the layers will use it. max_bytes: the memory building may take (see
 * fg_checkpoint_check_size). On FG_ERR *out is empty and the message starts
 * with path. */
FG_API int fg_checkpoint_load(const char *path, double max_bytes, fg_checkpoint *out);
FG_API void fg_checkpoint_free(fg_checkpoint *c);

#ifdef __cplusplus
}
#endif
#endif
