/* flowgrad checkpoints from outside: a file that is well-formed safetensors
 * can still mean something impossible (a permutation with a repeat, LU signs
 * of 0, NaN moments, a counter at 2^63, a config declaring a model far
 * larger than its weights). Checkpoints travel between people the way model
 * files do, so loading one checks what every tensor means, and the size of
 * the model its config declares, before anything is built; a bad one is an
 * error naming the tensor, what it holds and what was expected, never a stop.
 *
 * A checkpoint written by flowgrad train holds the model's state under its
 * visit names (flows/flow.h), "optim.m.<param>" and "optim.v.<param>" with
 * "optim.step" (I64 [1]), "ema.<param>" when the run kept averages,
 * "train.state" (I64 [step, epoch, position, seed]) and the run's YAML under
 * the metadata key "config". */
#ifndef FLOWGRAD_MODELS_CHECKPOINT_H
#define FLOWGRAD_MODELS_CHECKPOINT_H

#include "models/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What each tensor of st means, by name, with no model needed: every float
 * value finite; permutations ("*.invconv.p", "*.permute.perm") are
 * permutations; LU signs ("*.invconv.sign") are +-1; "*.initialized" flags
 * are 0 or 1; second moments ("optim.v.*") are >= 0; "optim.step" and the
 * counters of "train.state" are within FG_CONFIG_MAX_STEPS. Optimizer and
 * EMA state get the same checks as the model's. Messages read
 * "PATH: tensor 'NAME' holds VALUE at index I of N; expected ...". */
int fg_checkpoint_check_values(const fg_safetensors *st);

/* The model spec declares (fg_model_spec_size) against the file: its
 * values must be as many as the file's model tensors hold (names outside
 * "optim.", "ema.", "train."), and building it must fit in max_bytes
 * (negative: no limit). Nothing is allocated. */
int fg_checkpoint_check_size(const fg_safetensors *st, const fg_model_spec *spec,
                             double max_bytes);

/* After a model's state was loaded: every invconv can be inverted
 * (fg_flow_check_invertible), as the ops will need. */
int fg_model_check_state(fg_model *m);

/* A model loaded from a checkpoint: the config it was trained with (from
 * the metadata) and its weights, the EMA averages where the file has them. */
typedef struct fg_checkpoint {
    fg_config *cfg;
    fg_model *model;
    fg_safetensors st;
} fg_checkpoint;

/* Reads path and runs every check above, in that order, before building
 * the model; then loads its state by name and shape, and checks it again as
 * the layers will use it. max_bytes: the memory building may take (see
 * fg_checkpoint_check_size). On FG_ERR *out is empty and the message starts
 * with path. */
int fg_checkpoint_load(const char *path, double max_bytes, fg_checkpoint *out);
void fg_checkpoint_free(fg_checkpoint *c);

#ifdef __cplusplus
}
#endif
#endif
