/* Derived configs: a YAML config with a few values changed, written back as
 * YAML so that what a run stores in its checkpoint is the config it ran.
 * Used by experiment grids (for instance coupling x permutation x seed). */
#ifndef FLOWGRAD_MODELS_CONFIG_EDIT_H
#define FLOWGRAD_MODELS_CONFIG_EDIT_H

#include <stddef.h>
#include "tensor/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Applies edits "PATH=VALUE" or "-PATH" in order to the config text (len bytes,
 * labelled name in messages). PATH is mapping keys joined by dots, e.g.
 * "model.coupling" or "train.seed". A key that is present gets its value
 * replaced where it stands (it must be a single value, not a mapping or a
 * list); an absent key is added as the first entry of its mapping, which
 * must exist. "-PATH" removes a one-line entry of a block mapping (its whole
 * line, comment included) and does nothing when the key is absent.
 * Comments and layout elsewhere are kept byte for byte. VALUE
 * must be a plain word (letters, digits, '_', '.', '+', '-').
 *
 * Both the input and the result must be valid configs. On success *out is
 * a NUL-terminated malloc'ed text for the caller to free; on FG_ERR *out is
 * NULL and fg_last_error() says what was wrong. */
FG_API int fg_config_edit(const char *text, size_t len, const char *name,
                   const char *const *assignments, int n, char **out);

#ifdef __cplusplus
}
#endif
#endif
