/* The generic layer list: `flow:` entries and `repeat` blocks, read into
 * layer specs by each kind's option schema (models/layer_kind.h) and
 * expanded in order. */
#include <string.h>

#include "models/config_internal.h"
#include "models/layer_kind.h"

#define MAX_REPEAT 100000

static const char *const repeat_keys[] = { "repeat", "flow", NULL };

typedef struct walk {
    const cfg_ctx *ctx;
    cfg_track track;
    char note[128];     /* which repeat pass is being expanded, for messages */
} walk;

static int expand_list(walk *w, const cfg_node *seq, const char *where);

/* "a, b or c" into buf. */
static const char *either(const char *const *names, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i == 0 ? "" : names[i + 1] ? ", " : " or ",
                              names[i]);
    return buf;
}

int cfg_option(const cfg_ctx *ctx, const cfg_node *map, const char *where, const char *key,
               const fg_layer_option *o, double *out)
{
    switch (o->type) {
    case FG_OPTION_INT: {
        long long x = (long long)*out;
        if (cfg_int(ctx, map, where, key, (long long)o->lo, (long long)o->hi, &x))
            return FG_ERR;
        *out = (double)x;
        return FG_OK;
    }
    case FG_OPTION_REAL:
        if (cfg_real(ctx, map, where, key, o->lo, o->lo_open, o->hi, o->hi_open, out))
            return FG_ERR;
        /* The layers take floats; the spec holds what they will get. */
        *out = (double)(float)*out;
        return FG_OK;
    case FG_OPTION_BOOL:
    case FG_OPTION_CHOICE: {
        int x = (int)*out;
        if (o->type == FG_OPTION_BOOL ? cfg_bool(ctx, map, where, key, &x)
                                      : cfg_enum(ctx, map, where, key, o->choices, &x))
            return FG_ERR;
        *out = x;
        return FG_OK;
    }
    }
    fg_fatal("cfg_option", "option '%s' has unknown type %d", key, (int)o->type);
}

int cfg_option_misplaced(const cfg_ctx *ctx, const cfg_node *map, const fg_layer_kind *k,
                         int i, const char *when_key)
{
    const fg_layer_option *o = &k->options[i];
    const fg_layer_option *w = &k->options[fg_layer_option_index(k, o->when_key)];
    return cfg_fail(ctx, cfg_get_key(map, o->key), "'%s' only applies to %s (expected %s: %s "
                    "with it)", o->key, o->when_what, when_key,
                    w->choices ? w->choices[(int)o->when_value] : "true");
}

/* Options of one layer by its kind's schema; opts is a mapping or NULL for
 * all defaults. */
static int read_layer(walk *w, const fg_layer_kind *k, const cfg_node *opts,
                      const cfg_node *at)
{
    const cfg_ctx *ctx = w->ctx;
    const char *keys[FG_LAYER_MAX_OPTIONS + 1];
    char list[256];
    for (int i = 0; i < k->n_options; i++)
        keys[i] = k->options[i].key;
    keys[k->n_options] = NULL;
    if (opts) {
        if (k->n_options == 0 && opts->n > 0)
            return cfg_fail(ctx, opts->kids[0], "%s takes no options (expected '- %s' "
                            "alone)", k->name, k->name);
        if (cfg_check_keys(ctx, opts, k->name, keys))
            return FG_ERR;
    }
    fg_layer_spec l;
    fg_layer_spec_init(&l, k);
    /* In schema order, so that an option that applies only with another's
     * value reads after it. */
    for (int i = 0; i < k->n_options; i++) {
        const fg_layer_option *o = &k->options[i];
        if (!fg_layer_option_applies(&l, i)) {
            l.opt[i] = 0;
            if (cfg_get(opts, o->key))
                return cfg_option_misplaced(ctx, opts, k, i, o->when_key);
            continue;
        }
        if (o->required && !cfg_get(opts, o->key))
            return cfg_fail(ctx, opts ? opts : at, "missing required key '%s' in '%s' "
                            "(expected %s: %s)", o->key, k->name, o->key,
                            o->choices ? either(o->choices, list, sizeof list) : "a value");
        l.opt[i] = o->def;
        if (cfg_option(ctx, opts, k->name, o->key, o, &l.opt[i]))
            return FG_ERR;
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

/* The names a flow entry may have: every layer kind, then repeat. */
static const char *entry_names(char *buf, size_t n)
{
    const char *names[64];
    int count = 0;
    for (int i = 0; i < fg_layer_kind_count() && count < 62; i++)
        names[count++] = fg_layer_kind_at(i)->name;
    names[count++] = "repeat";
    names[count] = NULL;
    return cfg_join(names, buf, n);
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
                        "{options}' with name one of: %s)", entry_names(list, sizeof list));
    }
    const fg_layer_kind *k = fg_layer_kind_find(name_node->text);
    if (k)
        return read_layer(w, k, opts, name_node);
    return cfg_fail(ctx, name_node, "unknown layer '%.60s' (expected one of: %s)",
                    name_node->text, entry_names(list, sizeof list));
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
