/* The `model:` mapping: the keys both forms share (image shape, n_bits,
 * top prior), then the form-specific expansion. */
#include <string.h>

#include "models/config_internal.h"

#define COMMON_KEYS "type", "height", "width", "channels", "n_bits", "learn_top", \
                    "y_condition", "classes", "weight_y", "condition", "condition_channels", \
                    "permutation_seed"

static const char *const type_names[] = { "glow", "flow", NULL };
static const char *const condition_names[] = {
    [FG_CONDITION_NONE] = "none", [FG_CONDITION_CLASS] = "class",
    [FG_CONDITION_TENSOR] = "tensor", NULL
};

const char *fg_condition_kind_name(fg_condition_kind c)
{
    return c >= FG_CONDITION_NONE && c <= FG_CONDITION_TENSOR ? condition_names[c] : "?";
}

static const char *const glow_keys[] = {
    COMMON_KEYS, "levels", "steps", "hidden", "coupling", "permutation", "lu",
    "actnorm_scale", "split_logs_floor", "bins", "bound", NULL
};
static const char *const flow_keys[] = { COMMON_KEYS, "flow", NULL };

/* A sample's value count stays the same through squeezes and only halves
 * at splits, so bounding it at the input bounds every shape in the list
 * (and keeps C*H*W inside an int). */
#define MAX_VALUES (1L << 28)

int fg_model_spec_needs_labels(const fg_model_spec *m)
{
    return m->y_condition || m->condition == FG_CONDITION_CLASS;
}

int fg_model_spec_check_data_condition(const fg_model_spec *m, const char *name,
                                       const char *what)
{
    if (m->condition != FG_CONDITION_TENSOR)
        return FG_OK;
    return fg_error("%s: the model is conditioned on a tensor of %d channels (condition: "
                    "tensor), which only a program using the library can give; %s "
                    "conditions on the data's labels (condition: class) or on nothing",
                    name, m->cond_channels, what);
}

/* condition and condition_channels, after classes and learn_top. */
static int read_condition(const cfg_ctx *ctx, const cfg_node *model, fg_model_spec *m)
{
    const char *where = "model";
    int kind = FG_CONDITION_NONE;
    if (cfg_enum(ctx, model, where, "condition", condition_names, &kind)
        || cfg_int32(ctx, model, where, "condition_channels", 1, 4096, &m->cond_channels))
        return FG_ERR;
    m->condition = (fg_condition_kind)kind;
    const cfg_node *at = cfg_get(model, "condition");
    if (m->condition != FG_CONDITION_TENSOR && m->cond_channels)
        return cfg_fail(ctx, cfg_get(model, "condition_channels"), "'condition_channels' "
                        "applies only to condition: tensor (a class condition has one "
                        "channel per class; remove the key)");
    if (m->condition == FG_CONDITION_CLASS && m->classes == 0)
        return cfg_fail(ctx, at, "condition: class needs 'classes' in 'model' (expected "
                        "classes: the number of classes; the condition is the one-hot "
                        "label)");
    if (m->condition == FG_CONDITION_TENSOR && m->cond_channels == 0)
        return cfg_fail(ctx, at, "condition: tensor needs 'condition_channels' in 'model' "
                        "(expected the channels Cc of the condition the program gives)");
    if (m->condition != FG_CONDITION_NONE && !m->learn_top)
        return cfg_fail(ctx, at, "condition: %s needs learn_top: true (the condition "
                        "reaches the top prior through its learned conv)",
                        condition_names[m->condition]);
    if (m->condition == FG_CONDITION_CLASS)
        m->cond_channels = m->classes;
    return FG_OK;
}

static int read_common(const cfg_ctx *ctx, const cfg_node *model, fg_model_spec *m)
{
    const char *where = "model";
    double weight_y = 0.01;
    m->n_bits = 8;
    m->learn_top = 1;
    m->y_condition = 0;
    m->classes = 0;
    m->permutation_seed = -1;
    if (cfg_require(ctx, model, where, "height", "the image height in pixels, e.g. 28")
        || cfg_require(ctx, model, where, "width", "the image width in pixels, e.g. 28")
        || cfg_require(ctx, model, where, "channels", "the image channels, e.g. 1 or 3")
        || cfg_int32(ctx, model, where, "height", 1, 65536, &m->input.h)
        || cfg_int32(ctx, model, where, "width", 1, 65536, &m->input.w)
        || cfg_int32(ctx, model, where, "channels", 1, 4096, &m->input.c)
        || cfg_int32(ctx, model, where, "n_bits", 1, 8, &m->n_bits)
        || cfg_bool(ctx, model, where, "learn_top", &m->learn_top)
        || cfg_bool(ctx, model, where, "y_condition", &m->y_condition)
        || cfg_int32(ctx, model, where, "classes", 2, 100000, &m->classes)
        || cfg_real(ctx, model, where, "weight_y", 0, 0, 1e6, 0, &weight_y)
        || cfg_int32(ctx, model, where, "permutation_seed", 0, 2147483647, &m->permutation_seed))
        return FG_ERR;
    m->weight_y = (float)weight_y;
    if ((long)m->input.c * m->input.h * m->input.w > MAX_VALUES)
        return cfg_fail(ctx, cfg_get(model, "height"), "a %dx%dx%d image has more than "
                        "%ld values per sample (expected a smaller image)", m->input.h,
                        m->input.w, m->input.c, MAX_VALUES);
    if (m->y_condition && m->classes == 0)
        return cfg_fail(ctx, model, "missing required key 'classes' in 'model' (expected "
                        "classes: the number of classes, needed by y_condition: true)");
    return read_condition(ctx, model, m);
}

int cfg_read_model(const cfg_ctx *ctx, const cfg_node *model, fg_model_spec *m)
{
    memset(m, 0, sizeof *m);
    if (cfg_expect_map(ctx, model, "model")
        || cfg_require(ctx, model, "model", "type", "glow (the preset) or flow (a layer "
                       "list)"))
        return FG_ERR;
    int type = 0;
    if (cfg_enum(ctx, model, "model", "type", type_names, &type))
        return FG_ERR;
    m->type = type == 0 ? FG_MODEL_GLOW : FG_MODEL_FLOW;
    if (cfg_check_keys(ctx, model, "model", type == 0 ? glow_keys : flow_keys))
        return FG_ERR;
    if (read_common(ctx, model, m))
        return FG_ERR;
    int rc = m->type == FG_MODEL_GLOW ? cfg_expand_glow(ctx, model, m)
                                      : cfg_expand_flow(ctx, model, m);
    /* Every layer learns of the model's condition; only the conditional
     * kinds (coupling, split) read it. */
    for (int i = 0; rc == FG_OK && i < m->n_layers; i++)
        m->layers[i].cond_channels = m->cond_channels;
    return rc;
}
