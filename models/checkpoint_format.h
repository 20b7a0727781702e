/* The checkpoint format's pieces shared by the files that read and write
 * it; not installed. */
#ifndef FLOWGRAD_MODELS_CHECKPOINT_FORMAT_H
#define FLOWGRAD_MODELS_CHECKPOINT_FORMAT_H

#include "models/checkpoint.h"

/* The format this code writes; it reads 1 to this. */
#define FG_CHECKPOINT_VERSION 2

/* The version of st's "format" metadata (1 when absent). FG_ERR for a name
 * that is not a flowgrad checkpoint format, or a version this code does not
 * know: a later one changed what some name means. */
int fg_checkpoint_format_version(const fg_safetensors *st, int *version);
/* Adds the named train state, elapsed_seconds and the format. */
void fg_checkpoint_add_state(fg_safetensors *st, const fg_train_state *s);

#endif
