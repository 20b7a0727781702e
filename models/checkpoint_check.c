/* What a checkpoint's tensors mean, checked by name before any of them is
 * used (see models/checkpoint.h). The names are the stable ones of
 * flows/flow.h and the optimizer, EMA and run state of flowgrad train. */
#include "models/train_memory.h"
#include "models/checkpoint.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static int has_suffix(const char *s, const char *p)
{
    size_t a = strlen(s), b = strlen(p);
    return a >= b && strcmp(s + a - b, p) == 0;
}

/* The reader bounds a product of non-zero sizes by the file's bytes, but
 * any size may sit next to a zero: look for that first. */
static int64_t numel(const fg_st_tensor *t)
{
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] == 0)
            return 0;
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

static double value(const fg_st_tensor *t, int64_t i)
{
    return t->dtype == FG_DT_F64 ? ((const double *)t->data)[i] : ((const float *)t->data)[i];
}

static int all_finite(const char *what, const fg_st_tensor *t)
{
    char a[32];
    int64_t n = numel(t);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(value(t, i)))
            return fg_error("%s holds %s at index %lld of %lld; expected finite values", what,
                            fg_value_text(value(t, i), a, sizeof a), (long long)i,
                            (long long)n);
    return FG_OK;
}

/* Every entry in [lo, hi]. */
static int within(const char *what, const fg_st_tensor *t, double lo, double hi,
                  const char *expected)
{
    char a[32];
    int64_t n = numel(t);
    for (int64_t i = 0; i < n; i++) {
        double v = value(t, i);
        if (!(v >= lo && v <= hi))
            return fg_error("%s holds %s at index %lld of %lld; expected %s", what,
                            fg_value_text(v, a, sizeof a), (long long)i, (long long)n,
                            expected);
    }
    return FG_OK;
}

static int flag(const char *what, const fg_st_tensor *t)
{
    char a[32];
    int64_t n = numel(t);
    for (int64_t i = 0; i < n; i++)
        if (value(t, i) != 0 && value(t, i) != 1)
            return fg_error("%s holds %s at index %lld; expected 0 or 1 (a flag)", what,
                            fg_value_text(value(t, i), a, sizeof a), (long long)i);
    return FG_OK;
}

/* Bounds of the named counters: run lengths, an iterator position (an
 * image index) and a seed. Other "train." counters are a later format's,
 * which this reader skips. */
static const struct { const char *name; long long max; } counter_max[] = {
    {"optim.step", FG_CONFIG_MAX_STEPS}, {"train.step", FG_CONFIG_MAX_STEPS},
    {"train.epoch", FG_CONFIG_MAX_STEPS}, {"train.position", INT_MAX},
    {"train.seed", INT64_MAX},
};

/* The I64 counters; a wrong dtype or shape is left to the loader's own
 * message (fg_st_get_i64). */
static int counters(const char *what, const fg_st_tensor *t)
{
    if (t->dtype != FG_DT_I64 || t->ndim != 1)
        return FG_OK;
    const int64_t *v = t->data;
    /* Format 1's positional record. */
    static const char *const state[] = {"step", "epoch", "position", "seed"};
    static const long long state_max[] = {FG_CONFIG_MAX_STEPS, FG_CONFIG_MAX_STEPS, INT_MAX,
                                          INT64_MAX};
    if (strcmp(t->name, "train.state") == 0) {
        for (int i = 0; i < 4 && i < t->shape[0]; i++)
            if (v[i] < 0 || v[i] > state_max[i])
                return fg_error("%s holds %s %lld; expected a count in [0, %lld]", what,
                                state[i], (long long)v[i], state_max[i]);
        return FG_OK;
    }
    if (t->shape[0] != 1)
        return FG_OK;
    for (size_t i = 0; i < sizeof counter_max / sizeof *counter_max; i++)
        if (strcmp(t->name, counter_max[i].name) == 0 && (v[0] < 0 || v[0] > counter_max[i].max))
            return fg_error("%s holds %lld; expected a count in [0, %lld]", what,
                            (long long)v[0], counter_max[i].max);
    return FG_OK;
}

static int check_one(const char *what, const fg_st_tensor *t)
{
    const char *n = t->name;
    if (t->dtype == FG_DT_I64 && (strcmp(n, "optim.step") == 0 || has_prefix(n, "train.")))
        return counters(what, t);
    if (t->dtype != FG_DT_F32 && t->dtype != FG_DT_F64)
        return FG_OK;
    if (all_finite(what, t) != FG_OK)
        return FG_ERR;
    if (t->dtype != FG_DT_F32)
        return FG_OK;
    if (has_suffix(n, ".invconv.p") || has_suffix(n, ".permute.perm"))
        return fg_flow_check_permutation(what, t->data, numel(t));
    if (has_suffix(n, ".invconv.sign"))
        return fg_flow_check_signs(what, t->data, numel(t));
    if (has_suffix(n, ".initialized"))
        return flag(what, t);
    /* Adam's second moment, Adamax's norm: the update divides by its root. */
    if (has_prefix(n, "optim.v."))
        return within(what, t, 0, INFINITY, "a non-negative second moment");
    return FG_OK;
}

int fg_checkpoint_check_values(const fg_safetensors *st)
{
    const char *path = st->path ? st->path : "safetensors";
    for (int i = 0; i < st->n; i++) {
        char what[FG_NAME_LEN + 4096];
        snprintf(what, sizeof what, "%s: tensor '%s'", path, st->t[i].name);
        if (check_one(what, &st->t[i]) != FG_OK)
            return FG_ERR;
    }
    return FG_OK;
}

int fg_checkpoint_check_size(const fg_safetensors *st, const fg_model_spec *spec,
                             double max_bytes)
{
    const char *path = st->path ? st->path : "safetensors";
    double held = 0;
    for (int i = 0; i < st->n; i++) {
        const char *n = st->t[i].name;
        if (!has_prefix(n, "optim.") && !has_prefix(n, "ema.") && !has_prefix(n, "train."))
            held += (double)numel(&st->t[i]);
    }
    fg_model_size s;
    fg_model_spec_size(spec, &s);
    char a[32], b[32];
    if (s.params + s.buffers != held)
        return fg_error("%s: the config in its metadata declares a model of %.0f values "
                        "(%.0f parameters, %.0f buffers), but its model tensors hold %.0f; "
                        "expected the config the weights were trained with", path,
                        s.params + s.buffers, s.params, s.buffers, held);
    if (max_bytes >= 0 && s.build_bytes > max_bytes)
        return fg_error("%s: the model its config declares needs about %s to build, more "
                        "than the %s available; expected a model that fits (or more free "
                        "memory)", path, fg_train_memory_human(s.build_bytes, a, sizeof a),
                        fg_train_memory_human(max_bytes, b, sizeof b));
    return FG_OK;
}
