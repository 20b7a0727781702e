/* The generic layer list: `flow:` entries and `repeat` blocks, read into
 * layer specs by each kind's option schema (models/layer_kind.h) and
 * expanded in order. */
#include <stdio.h>
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
    case FG_OPTION_NETWORK:
        break;   /* a list, read by read_network */
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

/* 1 when the layer l (its options read so far) has option key at value:
 * where a module, or a module's option, applies. */
static int layer_holds(const fg_layer_spec *l, const char *key, double value)
{
    return !key || l->opt[fg_layer_option_index(l->kind, key)] == value;
}

/* The error for something that applies only with the layer's option
 * when_key at when_value. */
static int misplaced(const cfg_ctx *ctx, const cfg_node *at, const fg_layer_spec *l,
                     const char *what, const char *when_key, double when_value,
                     const char *when_what)
{
    const fg_layer_option *w = &l->kind->options[fg_layer_option_index(l->kind, when_key)];
    return cfg_fail(ctx, at, "%s only applies to %s (expected %s: %s with it)", what,
                    when_what, when_key, w->choices ? w->choices[(int)when_value] : "true");
}

/* One entry of a network option's list: `- name` or `- name: {options}`. */
static int read_module(const cfg_ctx *ctx, const fg_layer_spec *l, const fg_layer_option *o,
                       const cfg_node *entry, fg_module_spec *out)
{
    const cfg_node *name_node = entry, *opts = NULL;
    const char *names[FG_LAYER_MAX_MODULES + 1];
    char list[512], where[128];
    for (int i = 0; i < o->n_modules; i++)
        names[i] = o->modules[i].name;
    names[o->n_modules] = NULL;
    if (entry->kind == CFG_MAP && entry->n == 2) {
        name_node = entry->kids[0];
        opts = cfg_is_null(entry->kids[1]) ? NULL : entry->kids[1];
        if (opts && opts->kind != CFG_MAP)
            return cfg_fail(ctx, opts, "options of '%s' must be a mapping (expected e.g. "
                            "'- %s: {key: value}', or '- %s' alone for defaults)",
                            name_node->text, name_node->text, name_node->text);
    } else if (entry->kind != CFG_SCALAR || cfg_is_null(entry)) {
        return cfg_fail(ctx, entry->kind == CFG_MAP && entry->n > 2 ? entry->kids[2] : entry,
                        "an entry of '%s' is one module (expected '- name' or '- name: "
                        "{options}' with name one of: %s)", o->key,
                        cfg_join(names, list, sizeof list));
    }
    int kind = -1;
    for (int i = 0; i < o->n_modules && kind < 0; i++)
        if (strcmp(name_node->text, names[i]) == 0)
            kind = i;
    if (kind < 0)
        return cfg_fail(ctx, name_node, "unknown module '%.60s' in '%s' (expected one of: %s)",
                        name_node->text, o->key, cfg_join(names, list, sizeof list));
    const fg_layer_module *m = &o->modules[kind];
    snprintf(where, sizeof where, "'%s'", m->name);
    if (!layer_holds(l, m->when_key, m->when_value))
        return misplaced(ctx, name_node, l, where, m->when_key, m->when_value, m->when_what);
    const char *keys[FG_MODULE_MAX_OPTIONS + 1];
    for (int i = 0; i < m->n_options; i++)
        keys[i] = m->options[i].key;
    keys[m->n_options] = NULL;
    if (opts && m->n_options == 0 && opts->n > 0)
        return cfg_fail(ctx, opts->kids[0], "%s takes no options (expected '- %s' alone)",
                        m->name, m->name);
    if (opts && cfg_check_keys(ctx, opts, m->name, keys))
        return FG_ERR;
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->line = name_node->line;
    out->column = name_node->column;
    for (int i = 0; i < m->n_options; i++) {
        const fg_layer_option *mo = &m->options[i];
        if (!layer_holds(l, mo->when_key, mo->when_value)) {
            if (cfg_get(opts, mo->key)) {
                snprintf(where, sizeof where, "'%s' in '%s'", mo->key, m->name);
                return misplaced(ctx, cfg_get_key(opts, mo->key), l, where, mo->when_key,
                                 mo->when_value, mo->when_what);
            }
            continue;
        }
        if (mo->required && !cfg_get(opts, mo->key))
            return cfg_fail(ctx, opts ? opts : name_node, "missing required key '%s' in '%s' "
                            "(expected %s: a value)", mo->key, m->name, mo->key);
        out->opt[i] = mo->def;
        if (cfg_option(ctx, opts, m->name, mo->key, mo, &out->opt[i]))
            return FG_ERR;
    }
    return FG_OK;
}

/* A network option: its list into l->net, its length into l->opt[i]. */
static int read_network(const cfg_ctx *ctx, const cfg_node *opts, fg_layer_spec *l, int i)
{
    const fg_layer_option *o = &l->kind->options[i];
    const cfg_node *seq = cfg_get(opts, o->key);
    l->opt[i] = 0;
    if (!seq)
        return FG_OK;
    if (seq->kind != CFG_SEQ || seq->n == 0)
        return cfg_fail(ctx, seq, "'%s' in '%s' must be a list of modules, one '- module' "
                        "per line, ending in its output", o->key, l->kind->name);
    if (seq->n > FG_LAYER_MAX_MODULES)
        return cfg_fail(ctx, seq->kids[FG_LAYER_MAX_MODULES], "'%s' in '%s' has %d modules "
                        "(expected at most %d)", o->key, l->kind->name, seq->n,
                        FG_LAYER_MAX_MODULES);
    for (int j = 0; j < seq->n; j++) {
        if (read_module(ctx, l, o, seq->kids[j], &l->net[j]))
            return FG_ERR;
        const fg_layer_module *m = &o->modules[l->net[j].kind];
        if (m->output && j + 1 < seq->n)
            return cfg_fail(ctx, seq->kids[j], "'%s' is the output of '%s' and must come "
                            "last", m->name, o->key);
    }
    if (!o->modules[l->net[seq->n - 1].kind].output) {
        const char *outputs[FG_LAYER_MAX_MODULES + 1];
        int n = 0;
        char list[256];
        for (int j = 0; j < o->n_modules; j++)
            if (o->modules[j].output &&
                layer_holds(l, o->modules[j].when_key, o->modules[j].when_value))
                outputs[n++] = o->modules[j].name;
        outputs[n] = NULL;
        return cfg_fail(ctx, seq->kids[seq->n - 1], "'%s' must end in its output module "
                        "(expected %s last)", o->key, either(outputs, list, sizeof list));
    }
    l->opt[i] = seq->n;
    return FG_OK;
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
        if (o->type == FG_OPTION_NETWORK) {
            if (read_network(ctx, opts, &l, i))
                return FG_ERR;
            continue;
        }
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
