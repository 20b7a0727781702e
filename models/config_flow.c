/* The generic layer list: `flow:` entries and `repeat` blocks, read into
 * layer specs and expanded in order. */
#include <string.h>

#include "models/config_internal.h"

#define MAX_REPEAT 100000

static const char *const layer_names[] = {
    "squeeze", "actnorm", "invconv", "permute", "coupling", "split", "flatten",
    "scale_diag", "maf", "iaf", "repeat", NULL
};
/* Indexed by fg_layer_kind. */
static const fg_layer_kind layer_kinds[] = {
    FG_LAYER_SQUEEZE, FG_LAYER_ACTNORM, FG_LAYER_INVCONV,
    FG_LAYER_PERMUTE, FG_LAYER_COUPLING, FG_LAYER_SPLIT, FG_LAYER_FLATTEN,
    FG_LAYER_SCALE_DIAG, FG_LAYER_MAF, FG_LAYER_IAF
};

static const char *const no_keys[] = { NULL };
static const char *const actnorm_keys[] = { "scale", NULL };
static const char *const invconv_keys[] = { "lu", NULL };
static const char *const permute_keys[] = { "type", NULL };
static const char *const coupling_keys[] = { "type", "hidden", "mask", "scale", "net", "layers",
                                               "bins", "bound", NULL };
static const char *const autoregressive_keys[] = { "type", "hidden", "layers", "scale", "bins",
                                                     "bound", NULL };
static const char *const split_keys[] = { "prior", NULL };
static const char *const repeat_keys[] = { "repeat", "flow", NULL };

/* Indexed by the flow layers' enums, so a name's position is its value. */
static const char *const permute_names[] = { "reverse", "shuffle", NULL };
static const char *const coupling_names[] = { "additive", "affine", "spline", NULL };
_Static_assert(FG_PERMUTE_REVERSE == 0 && FG_PERMUTE_SHUFFLE == 1, "permute_names order");
_Static_assert(FG_COUPLING_ADDITIVE == 0 && FG_COUPLING_AFFINE == 1 &&
               FG_COUPLING_SPLINE == 2, "coupling_names order");
static const char *const mask_names[] = {
    "channel", "channel_flip", "checkerboard", "checkerboard_flip", NULL
};
static const char *const scale_names[] = { "sigmoid", "tanh", NULL };
static const char *const net_names[] = { "conv", "dense", NULL };
static const char *const prior_names[] = { "learned", "standard", NULL };

typedef struct walk {
    const cfg_ctx *ctx;
    cfg_track track;
    char note[128];     /* which repeat pass is being expanded, for messages */
} walk;

static int expand_list(walk *w, const cfg_node *seq, const char *where);

int cfg_spline_options(const cfg_ctx *ctx, const cfg_node *map, const char *where,
                       const char *type_key, int spline, int *bins, float *bound)
{
    double b = 3.0;
    *bins = 8;
    if (!spline) {
        *bins = 0;
        *bound = 0.0f;
        for (int k = 0; k < 2; k++) {
            const char *key = k ? "bound" : "bins";
            if (cfg_get(map, key))
                return cfg_fail(ctx, cfg_get_key(map, key), "'%s' only applies to spline "
                                "transforms (expected %s: spline with it)", key, type_key);
        }
        return FG_OK;
    }
    if (cfg_int32(ctx, map, where, "bins", 2, FG_RQ_MAX_BINS, bins)
        || cfg_real(ctx, map, where, "bound", 0, 1, 1e4, 0, &b))
        return FG_ERR;
    *bound = (float)b;
    return FG_OK;
}

/* The transform of a coupling, maf or iaf: type, scale (affine only), bins
 * and bound (spline only). */
static int read_transform(const cfg_ctx *ctx, const cfg_node *opts, const char *name,
                          int *type, int *scale, int *bins, float *bound)
{
    if (cfg_enum(ctx, opts, name, "type", coupling_names, type)
        || cfg_enum(ctx, opts, name, "scale", scale_names, scale))
        return FG_ERR;
    if (*type != FG_COUPLING_AFFINE && cfg_get(opts, "scale"))
        return cfg_fail(ctx, cfg_get_key(opts, "scale"), "'scale' only applies to "
                        "affine %s (expected no 'scale' with type: %s)",
                        strcmp(name, "coupling") ? "transforms" : "couplings",
                        coupling_names[*type]);
    return cfg_spline_options(ctx, opts, name, "type", *type == FG_COUPLING_SPLINE, bins,
                              bound);
}

/* Options of one layer; opts is a mapping or NULL for all defaults. */
static int read_layer(walk *w, fg_layer_kind kind, const char *name,
                      const cfg_node *opts, const cfg_node *at)
{
    const cfg_ctx *ctx = w->ctx;
    fg_layer_spec l;
    memset(&l, 0, sizeof l);
    l.kind = kind;
    static const char *const *const keys[] = {
        no_keys, actnorm_keys, invconv_keys, permute_keys, coupling_keys, split_keys,
        no_keys, no_keys, autoregressive_keys, autoregressive_keys
    };
    if (opts) {
        if ((kind == FG_LAYER_SQUEEZE || kind == FG_LAYER_FLATTEN ||
             kind == FG_LAYER_SCALE_DIAG) && opts->n > 0)
            return cfg_fail(ctx, opts->kids[0], "%s takes no options (expected "
                            "'- %s' alone)", name, name);
        if (cfg_check_keys(ctx, opts, name, keys[kind]))
            return FG_ERR;
    }
    switch (kind) {
    case FG_LAYER_SQUEEZE:
    case FG_LAYER_FLATTEN:
    case FG_LAYER_SCALE_DIAG:
        break;
    case FG_LAYER_ACTNORM: {
        double scale = 1.0;
        if (cfg_real(ctx, opts, name, "scale", 0, 1, 1e6, 0, &scale))
            return FG_ERR;
        l.u.actnorm.scale = (float)scale;
        break;
    }
    case FG_LAYER_INVCONV:
        l.u.invconv.lu = 1;
        if (cfg_bool(ctx, opts, name, "lu", &l.u.invconv.lu))
            return FG_ERR;
        break;
    case FG_LAYER_PERMUTE: {
        int type = 0;
        if (!cfg_get(opts, "type"))
            return cfg_fail(ctx, opts ? opts : at, "missing required key 'type' in "
                            "'permute' (expected type: reverse or shuffle)");
        if (cfg_enum(ctx, opts, name, "type", permute_names, &type))
            return FG_ERR;
        l.u.permute.type = (fg_permute_kind)type;
        break;
    }
    case FG_LAYER_COUPLING: {
        int type = FG_COUPLING_AFFINE, mask = FG_MASK_CHANNEL, scale = FG_SCALE_SIGMOID;
        int net = 0, layers = 4;
        l.u.coupling.hidden = 512;
        if (read_transform(ctx, opts, name, &type, &scale, &l.u.coupling.bins,
                           &l.u.coupling.bound)
            || cfg_int32(ctx, opts, name, "hidden", 1, 65536, &l.u.coupling.hidden)
            || cfg_enum(ctx, opts, name, "mask", mask_names, &mask)
            || cfg_enum(ctx, opts, name, "net", net_names, &net)
            || cfg_int32(ctx, opts, name, "layers", 1, 64, &layers))
            return FG_ERR;
        if (!net && cfg_get(opts, "layers"))
            return cfg_fail(ctx, cfg_get_key(opts, "layers"), "'layers' only applies to "
                            "dense coupling networks (expected net: dense with it)");
        l.u.coupling.dense = net;
        l.u.coupling.layers = net ? layers : 0;
        l.u.coupling.type = (fg_coupling_kind)type;
        l.u.coupling.mask = (fg_mask_kind)mask;
        l.u.coupling.scale = (fg_scale_kind)scale;
        break;
    }
    case FG_LAYER_MAF:
    case FG_LAYER_IAF: {
        int type = FG_COUPLING_AFFINE, scale = FG_SCALE_SIGMOID;
        l.u.autoregressive.hidden = 512;
        l.u.autoregressive.layers = 2;
        if (read_transform(ctx, opts, name, &type, &scale, &l.u.autoregressive.bins,
                           &l.u.autoregressive.bound)
            || cfg_int32(ctx, opts, name, "hidden", 1, 65536, &l.u.autoregressive.hidden)
            || cfg_int32(ctx, opts, name, "layers", 1, 64, &l.u.autoregressive.layers))
            return FG_ERR;
        l.u.autoregressive.type = (fg_coupling_kind)type;
        l.u.autoregressive.scale = (fg_scale_kind)scale;
        break;
    }
    case FG_LAYER_SPLIT: {
        int prior = FG_SPLIT_LEARNED;
        if (cfg_enum(ctx, opts, name, "prior", prior_names, &prior))
            return FG_ERR;
        l.u.split.prior = (fg_split_prior_kind)prior;
        break;
    }
    }
    return cfg_track_add(ctx, &w->track, &l, at, w->note);
}

static int expand_repeat(walk *w, const cfg_node *entry)
{
    const cfg_ctx *ctx = w->ctx;
    if (cfg_check_keys(ctx, entry, "repeat", repeat_keys)
        || cfg_require(ctx, entry, "repeat", "flow", "a list of layers to repeat"))
        return FG_ERR;
    long long times = 0;
    if (cfg_int(ctx, entry, "repeat", "repeat", 1, MAX_REPEAT, &times))
        return FG_ERR;
    const cfg_node *body = cfg_get(entry, "flow");
    char outer[sizeof w->note];
    memcpy(outer, w->note, sizeof outer);
    for (long long i = 0; i < times; i++) {
        snprintf(w->note, sizeof w->note, " (in pass %lld of %lld of the repeat at "
                 "line %d)", i + 1, times, entry->line);
        if (expand_list(w, body, "repeat"))
            return FG_ERR;
    }
    memcpy(w->note, outer, sizeof outer);
    return FG_OK;
}

static int expand_entry(walk *w, const cfg_node *entry)
{
    const cfg_ctx *ctx = w->ctx;
    const cfg_node *name_node, *opts = NULL;
    char list[256];
    if (entry->kind == CFG_MAP && cfg_get_key(entry, "repeat"))
        return expand_repeat(w, entry);
    if (entry->kind == CFG_SCALAR && !cfg_is_null(entry)) {
        name_node = entry;
    } else if (entry->kind == CFG_MAP && entry->n == 2) {
        name_node = entry->kids[0];
        opts = entry->kids[1];
        if (cfg_is_null(opts))
            opts = NULL;
        else if (opts->kind != CFG_MAP)
            return cfg_fail(ctx, opts, "options of '%s' must be a mapping (expected "
                            "e.g. '- %s: {key: value}', or '- %s' alone for defaults)",
                            name_node->text, name_node->text, name_node->text);
    } else {
        return cfg_fail(ctx, entry->kind == CFG_MAP && entry->n > 2 ? entry->kids[2] : entry,
                        "a flow entry is one layer (expected '- name' or '- name: "
                        "{options}' with name one of: %s)", cfg_join(layer_names, list,
                                                                     sizeof list));
    }
    for (int k = 0; k < (int)(sizeof layer_kinds / sizeof layer_kinds[0]); k++)
        if (strcmp(name_node->text, layer_names[k]) == 0)
            return read_layer(w, layer_kinds[k], layer_names[k], opts, name_node);
    return cfg_fail(ctx, name_node, "unknown layer '%.60s' (expected one of: %s)",
                    name_node->text, cfg_join(layer_names, list, sizeof list));
}

static int expand_list(walk *w, const cfg_node *seq, const char *where)
{
    if (seq->kind != CFG_SEQ)
        return cfg_fail(w->ctx, seq, "'flow' in '%s' must be a list of layers, one "
                        "'- entry' per line", where);
    if (seq->n == 0)
        return cfg_fail(w->ctx, seq, "'flow' in '%s' is empty (expected at least one "
                        "layer)", where);
    for (int i = 0; i < seq->n; i++)
        if (expand_entry(w, seq->kids[i]))
            return FG_ERR;
    return FG_OK;
}

int cfg_expand_flow(const cfg_ctx *ctx, const cfg_node *model, fg_model_spec *m)
{
    if (cfg_require(ctx, model, "model", "flow", "a list of layers"))
        return FG_ERR;
    walk w;
    memset(&w, 0, sizeof w);
    w.ctx = ctx;
    w.track.shape = m->input;
    const cfg_node *flow = cfg_get(model, "flow");
    int rc = expand_list(&w, flow, "model");
    if (rc == FG_OK)
        rc = cfg_track_finish(ctx, &w.track, flow, m);
    cfg_track_free(&w.track);
    return rc;
}
