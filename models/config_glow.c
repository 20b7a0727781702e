/* The glow preset (Kingma & Dhariwal 2018), expanded into the generic
 * layer list: per level, squeeze, K steps of [actnorm, invconv | permute,
 * coupling], then a split except after the last level. */
#include <string.h>

#include "models/config_internal.h"

static const char *const coupling_names[] = { "additive", "affine", "spline", NULL };
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

static int read_preset(const cfg_ctx *ctx, const cfg_node *model, fg_model_spec *m)
{
    const char *where = "model";
    int coupling = FG_COUPLING_AFFINE, permutation = FG_PERMUTATION_INVCONV;
    double actnorm_scale = 1.0;
    m->hidden = 512;
    m->lu = 1;
    if (cfg_require(ctx, model, where, "levels", "the number of levels L, e.g. 2")
        || cfg_require(ctx, model, where, "steps", "the flow steps per level K, e.g. 8")
        || cfg_int32(ctx, model, where, "levels", 1, 16, &m->levels)
        || cfg_int32(ctx, model, where, "steps", 1, 4096, &m->steps)
        || cfg_int32(ctx, model, where, "hidden", 1, 65536, &m->hidden)
        || cfg_enum(ctx, model, where, "coupling", coupling_names, &coupling)
        || cfg_enum(ctx, model, where, "permutation", permutation_names, &permutation)
        || cfg_bool(ctx, model, where, "lu", &m->lu)
        || cfg_real(ctx, model, where, "actnorm_scale", 0, 1, 1e6, 0, &actnorm_scale))
        return FG_ERR;
    m->coupling = (fg_coupling_kind)coupling;
    if (cfg_spline_options(ctx, model, where, "coupling", coupling == FG_COUPLING_SPLINE,
                           &m->bins, &m->bound))
        return FG_ERR;
    m->permutation = (fg_permutation)permutation;
    m->actnorm_scale = (float)actnorm_scale;
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

    /* Zeroed whole, padding included, so specs compare byte for byte with
     * the ones the generic list produces. */
    fg_layer_spec squeeze, actnorm, mix, coupling, split;
    memset(&squeeze, 0, sizeof squeeze);
    memset(&actnorm, 0, sizeof actnorm);
    memset(&mix, 0, sizeof mix);
    memset(&coupling, 0, sizeof coupling);
    memset(&split, 0, sizeof split);
    squeeze.kind = FG_LAYER_SQUEEZE;
    actnorm.kind = FG_LAYER_ACTNORM;
    actnorm.u.actnorm.scale = m->actnorm_scale;
    if (m->permutation == FG_PERMUTATION_INVCONV) {
        mix.kind = FG_LAYER_INVCONV;
        mix.u.invconv.lu = m->lu;
    } else {
        mix.kind = FG_LAYER_PERMUTE;
        mix.u.permute.type = m->permutation == FG_PERMUTATION_SHUFFLE
                           ? FG_PERMUTE_SHUFFLE : FG_PERMUTE_REVERSE;
    }
    coupling.kind = FG_LAYER_COUPLING;
    coupling.u.coupling.type = m->coupling;
    coupling.u.coupling.hidden = m->hidden;
    coupling.u.coupling.mask = FG_MASK_CHANNEL;
    coupling.u.coupling.scale = FG_SCALE_SIGMOID;
    coupling.u.coupling.bins = m->bins;
    coupling.u.coupling.bound = m->bound;
    split.kind = FG_LAYER_SPLIT;
    split.u.split.prior = FG_SPLIT_LEARNED;

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
