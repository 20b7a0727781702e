/* The glow preset (Kingma & Dhariwal 2018), expanded into the generic
 * layer list: per level, squeeze, K steps of [actnorm, invconv | permute,
 * coupling], then a split except after the last level. */
#include <string.h>

#include "models/config_internal.h"
#include "models/layer_internal.h"

static const char *const permutation_names[] = { "invconv", "shuffle", "reverse", NULL };

/* Largest L with h and w divisible by 2^L. */
static int max_levels(int h, int w)
{
    int l = 0;
    while (h % 2 == 0 && w % 2 == 0 && h > 0 && w > 0) {
        h /= 2;
        w /= 2;
        l++;
    }
    return l;
}

/* key of the preset, read by option of kind k's schema, from its default. */
static int read_as(const cfg_ctx *ctx, const cfg_node *model, const char *key,
                   const fg_layer_kind *k, const char *option, double *v)
{
    const fg_layer_option *o = &k->options[fg_layer_option_index(k, option)];
    *v = o->def;
    return cfg_option(ctx, model, "model", key, o, v);
}

/* bins and bound of a spline coupling, by the coupling's own schema; else
 * they must be absent, and both are 0. */
static int read_spline(const cfg_ctx *ctx, const cfg_node *model, fg_model_spec *m)
{
    const fg_layer_kind *k = &fg_layer_coupling;
    static const char *const keys[2] = { "bins", "bound" };
    double v[2] = { 0, 0 };
    for (int j = 0; j < 2; j++) {
        if (m->coupling == FG_TRANSFORM_SPLINE) {
            if (read_as(ctx, model, keys[j], k, keys[j], &v[j]))
                return FG_ERR;
        } else if (cfg_get(model, keys[j])) {
            return cfg_option_misplaced(ctx, model, k, fg_layer_option_index(k, keys[j]),
                                        "coupling");
        }
    }
    m->bins = (int)v[0];
    m->bound = (float)v[1];
    return FG_OK;
}

static int read_preset(const cfg_ctx *ctx, const cfg_node *model, fg_model_spec *m)
{
    const char *where = "model";
    int permutation = FG_PERMUTATION_INVCONV;
    double actnorm_scale, hidden, coupling, lu, logs_floor;
    if (cfg_require(ctx, model, where, "levels", "the number of levels L, e.g. 2")
        || cfg_require(ctx, model, where, "steps", "the flow steps per level K, e.g. 8")
        || cfg_int32(ctx, model, where, "levels", 1, 16, &m->levels)
        || cfg_int32(ctx, model, where, "steps", 1, 4096, &m->steps)
        || read_as(ctx, model, "hidden", &fg_layer_coupling, "hidden", &hidden)
        || read_as(ctx, model, "coupling", &fg_layer_coupling, "type", &coupling)
        || cfg_enum(ctx, model, where, "permutation", permutation_names, &permutation)
        || read_as(ctx, model, "lu", &fg_layer_invconv, "lu", &lu)
        || read_as(ctx, model, "actnorm_scale", &fg_layer_actnorm, "scale", &actnorm_scale)
        || read_as(ctx, model, "split_logs_floor", &fg_layer_split, "logs_floor", &logs_floor))
        return FG_ERR;
    m->hidden = (int)hidden;
    m->lu = (int)lu;
    m->coupling = (fg_transform_kind)coupling;
    if (read_spline(ctx, model, m))
        return FG_ERR;
    m->permutation = (fg_permutation)permutation;
    m->actnorm_scale = (float)actnorm_scale;
    m->split_logs_floor = (float)logs_floor;
    if (m->permutation != FG_PERMUTATION_INVCONV && cfg_get(model, "lu"))
        return cfg_fail(ctx, cfg_get_key(model, "lu"), "'lu' only applies to "
                        "permutation: invconv (expected no 'lu' with permutation: %s)",
                        permutation_names[permutation]);

    int fit = max_levels(m->input.h, m->input.w);
    if (m->levels > fit) {
        const cfg_node *at = cfg_get(model, "levels");
        if (fit == 0)
            return cfg_fail(ctx, at, "a %dx%d image cannot be squeezed even once: each "
                            "level squeezes by 2, so height and width must be even",
                            m->input.h, m->input.w);
        return cfg_fail(ctx, at, "a %dx%d image cannot be squeezed %d times: each level "
                        "squeezes by 2, so height and width must be divisible by "
                        "2^levels = %d (expected levels <= %d)", m->input.h, m->input.w,
                        m->levels, 1 << m->levels, fit);
    }
    return FG_OK;
}

int cfg_expand_glow(const cfg_ctx *ctx, const cfg_node *model, fg_model_spec *m)
{
    if (read_preset(ctx, model, m))
        return FG_ERR;

    /* Each by its kind's defaults, then what the preset sets. */
    fg_layer_spec squeeze, actnorm, mix, coupling, split;
    fg_layer_spec_init(&squeeze, &fg_layer_squeeze);
    fg_layer_spec_init(&actnorm, &fg_layer_actnorm);
    fg_layer_spec_set(&actnorm, "scale", m->actnorm_scale);
    if (m->permutation == FG_PERMUTATION_INVCONV) {
        fg_layer_spec_init(&mix, &fg_layer_invconv);
        fg_layer_spec_set(&mix, "lu", m->lu);
    } else {
        fg_layer_spec_init(&mix, &fg_layer_permute);
        /* shuffle and reverse name the permute's types too. */
        layer_set_choice(&mix, "type", permutation_names[m->permutation]);
    }
    fg_layer_spec_init(&coupling, &fg_layer_coupling);
    fg_layer_spec_set(&coupling, "type", m->coupling);
    fg_layer_spec_set(&coupling, "hidden", m->hidden);
    fg_layer_spec_set(&coupling, "bins", m->bins);
    fg_layer_spec_set(&coupling, "bound", m->bound);
    fg_layer_spec_init(&split, &fg_layer_split);
    fg_layer_spec_set(&split, "logs_floor", m->split_logs_floor);

    /* Every generated layer points at the 'type: glow' line: that is the
     * declaration the user would edit. */
    const cfg_node *at = cfg_get(model, "type");
    cfg_track t;
    memset(&t, 0, sizeof t);
    t.shape = m->input;
    int rc = FG_OK;
    for (int l = 0; l < m->levels && rc == FG_OK; l++) {
        rc = cfg_track_add(ctx, &t, &squeeze, at, "");
        for (int k = 0; k < m->steps && rc == FG_OK; k++) {
            rc = cfg_track_add(ctx, &t, &actnorm, at, "");
            if (rc == FG_OK)
                rc = cfg_track_add(ctx, &t, &mix, at, "");
            if (rc == FG_OK)
                rc = cfg_track_add(ctx, &t, &coupling, at, "");
        }
        if (rc == FG_OK && l + 1 < m->levels)
            rc = cfg_track_add(ctx, &t, &split, at, "");
    }
    if (rc == FG_OK)
        rc = cfg_track_finish(ctx, &t, at, m);
    cfg_track_free(&t);
    return rc;
}
