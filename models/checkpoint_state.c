/* The train state of a checkpoint and the format it is written in (see
 * models/checkpoint.h): named fields since format 2, format 1's positional
 * record still read. */
#include "models/checkpoint.h"
#include "models/checkpoint_format.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_PREFIX "flowgrad-checkpoint-"

static const char *st_path(const fg_safetensors *st)
{
    return st->path ? st->path : "safetensors";
}

int fg_checkpoint_format_version(const fg_safetensors *st, int *version)
{
    const char *f = fg_st_get_meta(st, "format");
    /* Files older than the key are format 1. */
    *version = 1;
    if (!f)
        return FG_OK;
    size_t k = strlen(FORMAT_PREFIX);
    char *end = NULL;
    long v = strncmp(f, FORMAT_PREFIX, k) == 0 ? strtol(f + k, &end, 10) : 0;
    if (v < 1 || !end || *end)
        return fg_error("%s: __metadata__ format is '%.64s'; expected '" FORMAT_PREFIX "N'",
                        st_path(st), f);
    if (v > FG_CHECKPOINT_VERSION)
        return fg_error("%s: written in format %ld by a newer flowgrad; this one reads formats "
                        "1 to %d", st_path(st), v, FG_CHECKPOINT_VERSION);
    *version = (int)v;
    return FG_OK;
}

static int get_field(const fg_safetensors *st, const char *name, int64_t *v)
{
    return fg_st_get_i64(st, name, v, 1);
}

int fg_checkpoint_get_state(const fg_safetensors *st, fg_train_state *s)
{
    memset(s, 0, sizeof *s);
    int version;
    if (fg_checkpoint_format_version(st, &version) != FG_OK)
        return FG_ERR;
    int64_t v[4];
    if (fg_st_find(st, "train.step")) {
        if (get_field(st, "train.step", &v[0]) != FG_OK ||
            get_field(st, "train.epoch", &v[1]) != FG_OK ||
            get_field(st, "train.position", &v[2]) != FG_OK ||
            get_field(st, "train.seed", &v[3]) != FG_OK)
            return FG_ERR;
    } else if (fg_st_find(st, "train.state")) {
        if (fg_st_get_i64(st, "train.state", v, 4) != FG_OK)
            return FG_ERR;
    } else {
        return fg_error("%s: no train state (train.step); expected a checkpoint written by "
                        "training", st_path(st));
    }
    s->step = (long)v[0];
    s->epoch = (long)v[1];
    s->position = (int)v[2];
    s->seed = (uint64_t)v[3];
    const char *el = fg_st_get_meta(st, "elapsed_seconds");
    char *end = NULL;
    s->elapsed_seconds = el ? strtod(el, &end) : 0;
    if (el && (end == el || *end || !isfinite(s->elapsed_seconds) || s->elapsed_seconds < 0))
        return fg_error("%s: __metadata__ elapsed_seconds is '%.64s'; expected a number of "
                        "seconds >= 0", st_path(st), el);
    return FG_OK;
}

int fg_checkpoint_read_state(const char *path, fg_train_state *s)
{
    fg_safetensors st;
    fg_st_init(&st);
    int rc = FG_ERR;
    if (fg_st_read(&st, path) == FG_OK && fg_checkpoint_check_values(&st) == FG_OK)
        rc = fg_checkpoint_get_state(&st, s);
    fg_st_free(&st);
    return rc;
}

void fg_checkpoint_add_state(fg_safetensors *st, const fg_train_state *s)
{
    int64_t v[4] = {s->step, s->epoch, s->position, (int64_t)s->seed};
    static const char *const names[4] = {"train.step", "train.epoch", "train.position",
                                         "train.seed"};
    for (int i = 0; i < 4; i++)
        fg_st_add_i64(st, names[i], &v[i], 1);
    char buf[64];
    snprintf(buf, sizeof buf, "%.3f", s->elapsed_seconds);
    fg_st_set_meta(st, "elapsed_seconds", buf);
    fg_st_set_meta(st, "format", FG_CHECKPOINT_FORMAT);
}
