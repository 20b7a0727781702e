/* The table of layer kinds, and what every caller does through it: find a
 * kind, fill and read a spec's options, run its shape rule, build its layer,
 * count its cost, describe it. */
#include <stdio.h>
#include <string.h>

#include "models/layer_internal.h"

/* One line per kind, in the order messages list them; the entry
 * fg_layer_<name> lives in models/layer_<name>.c (maf and iaf share
 * layer_autoregressive.c). */
#define LAYER_KINDS(X) \
    X(squeeze)         \
    X(actnorm)         \
    X(invconv)         \
    X(permute)         \
    X(coupling)        \
    X(split)           \
    X(flatten)         \
    X(scale_diag)      \
    X(maf)             \
    X(iaf)

#define DECLARE(name) extern const fg_layer_kind fg_layer_##name;
LAYER_KINDS(DECLARE)
#define ENTRY(name) &fg_layer_##name,
static const fg_layer_kind *const table[] = { LAYER_KINDS(ENTRY) };

#define N_KINDS ((int)(sizeof table / sizeof table[0]))

const char *const layer_transform_names[] = { "additive", "affine", "spline", NULL };
_Static_assert(FG_TRANSFORM_ADDITIVE == 0 && FG_TRANSFORM_AFFINE == 1 &&
               FG_TRANSFORM_SPLINE == 2, "layer_transform_names order");
const char *const layer_scale_names[] = { "sigmoid", "tanh", NULL };
_Static_assert(FG_COUPLING_SCALE_SIGMOID == 0 && FG_COUPLING_SCALE_TANH == 1,
               "layer_scale_names order");

int fg_layer_kind_count(void)
{
    return N_KINDS;
}

const fg_layer_kind *fg_layer_kind_at(int i)
{
    return i >= 0 && i < N_KINDS ? table[i] : NULL;
}

const fg_layer_kind *fg_layer_kind_find(const char *name)
{
    for (int i = 0; i < N_KINDS; i++)
        if (strcmp(table[i]->name, name) == 0)
            return table[i];
    return NULL;
}

const char *fg_layer_kind_name(const fg_layer_kind *k)
{
    return k ? k->name : "?";
}

int fg_layer_option_index(const fg_layer_kind *k, const char *key)
{
    for (int i = 0; i < k->n_options; i++)
        if (strcmp(k->options[i].key, key) == 0)
            return i;
    return -1;
}

static int option_at(const fg_layer_spec *l, const char *key)
{
    int i = fg_layer_option_index(l->kind, key);
    FG_CHECK(i >= 0, "layer_spec", "%s has no option '%s'", l->kind->name, key);
    return i;
}

int fg_layer_option_applies(const fg_layer_spec *l, int i)
{
    const fg_layer_option *o = &l->kind->options[i];
    if (!o->when_key)
        return 1;
    return l->opt[option_at(l, o->when_key)] == o->when_value;
}

void fg_layer_spec_init(fg_layer_spec *l, const fg_layer_kind *k)
{
    /* Zeroed whole, padding included, so that specs compare byte for byte. */
    memset(l, 0, sizeof *l);
    l->kind = k;
    FG_CHECK(k->n_options <= FG_LAYER_MAX_OPTIONS, "layer_spec",
             "%s has %d options, at most %d fit", k->name, k->n_options, FG_LAYER_MAX_OPTIONS);
    for (int i = 0; i < k->n_options; i++)
        l->opt[i] = fg_layer_option_applies(l, i) ? k->options[i].def : 0;
}

double fg_layer_spec_get(const fg_layer_spec *l, const char *key)
{
    return l->opt[option_at(l, key)];
}

void fg_layer_spec_set(fg_layer_spec *l, const char *key, double value)
{
    l->opt[option_at(l, key)] = value;
}

void layer_set_choice(fg_layer_spec *l, const char *key, const char *name)
{
    int i = option_at(l, key);
    const char *const *choices = l->kind->options[i].choices;
    FG_CHECK(choices, "layer_spec", "%s.%s is not a choice", l->kind->name, key);
    for (int c = 0; choices[c]; c++)
        if (strcmp(choices[c], name) == 0) {
            l->opt[i] = c;
            return;
        }
    fg_fatal("layer_spec", "%s.%s has no choice '%s'", l->kind->name, key, name);
}

int fg_layer_spec_shape(const fg_layer_spec *l, fg_chw in, fg_chw *out)
{
    *out = in;
    return l->kind->shape ? l->kind->shape(l, in, out) : FG_OK;
}

fg_flow *fg_layer_spec_create(const fg_layer_spec *l, const fg_flow_shape *in,
                              const fg_layer_build *b)
{
    return l->kind->create(l, in, b);
}

double fg_layer_spec_flops(const fg_layer_spec *l)
{
    return l->kind->flops ? l->kind->flops(l) : 0;
}

void fg_layer_spec_size(const fg_layer_spec *l, fg_model_size *s)
{
    if (l->kind->size)
        l->kind->size(l, s);
}

int fg_transform_width(fg_transform_kind t, int bins)
{
    return t == FG_TRANSFORM_SPLINE ? 3 * bins - 1 : (t == FG_TRANSFORM_AFFINE ? 2 : 1);
}

const char *layer_transform_str(const fg_layer_spec *l, int type, int scale, int bins,
                                int bound, char *buf, size_t n)
{
    int t = (int)l->opt[type];
    if (t == FG_TRANSFORM_AFFINE)
        snprintf(buf, n, " scale=%s", layer_scale_names[(int)l->opt[scale]]);
    else if (t == FG_TRANSFORM_SPLINE)
        snprintf(buf, n, " bins=%d bound=%g", (int)l->opt[bins], l->opt[bound]);
    else
        buf[0] = '\0';
    return buf;
}

void layer_shape_str(fg_chw s, char *buf, size_t n)
{
    snprintf(buf, n, "%dx%dx%d", s.c, s.h, s.w);
}

/* One option's value as written in YAML. */
static void value_str(const fg_layer_option *o, double v, char *buf, size_t n)
{
    switch (o->type) {
    case FG_OPTION_INT:
        snprintf(buf, n, "%d", (int)v);
        break;
    case FG_OPTION_REAL:
        snprintf(buf, n, "%g", v);
        break;
    case FG_OPTION_BOOL:
        snprintf(buf, n, "%s", v != 0 ? "true" : "false");
        break;
    case FG_OPTION_CHOICE:
        snprintf(buf, n, "%s", o->choices[(int)v]);
        break;
    case FG_OPTION_NETWORK:
        snprintf(buf, n, "%d modules", (int)v);
        break;
    }
}

const char *layer_network_str(const fg_layer_spec *l, int option, char *buf, size_t n)
{
    const fg_layer_option *o = &l->kind->options[option];
    int count = (int)l->opt[option];
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < count && used < n; i++) {
        const fg_module_spec *s = &l->net[i];
        const fg_layer_module *m = &o->modules[s->kind];
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "[", m->name);
        for (int j = 0; j < m->n_options && used < n; j++) {
            const fg_layer_option *mo = &m->options[j];
            char v[64];
            if (mo->when_key &&
                l->opt[fg_layer_option_index(l->kind, mo->when_key)] != mo->when_value)
                continue;
            value_str(mo, s->opt[j], v, sizeof v);
            used += (size_t)snprintf(buf + used, n - used, " %s=%s", mo->key, v);
        }
    }
    if (count && used < n)
        snprintf(buf + used, n - used, "]");
    return buf;
}

const char *fg_layer_spec_describe(const fg_layer_spec *l, char *buf, size_t n)
{
    const fg_layer_kind *k = l->kind;
    if (k->describe)
        return k->describe(l, buf, n);
    size_t used = (size_t)snprintf(buf, n, "%s", k->name);
    for (int i = 0; i < k->n_options && used < n; i++) {
        const fg_layer_option *o = &k->options[i];
        char v[64], net[512];
        if (!fg_layer_option_applies(l, i))
            continue;
        if (o->type == FG_OPTION_NETWORK) {
            if (l->opt[i] != 0)
                used += (size_t)snprintf(buf + used, n - used, " %s=%s", o->key,
                                         layer_network_str(l, i, net, sizeof net));
            continue;
        }
        value_str(o, l->opt[i], v, sizeof v);
        if (o->bare)
            used += (size_t)snprintf(buf + used, n - used, " %s", v);
        else
            used += (size_t)snprintf(buf + used, n - used, " %s=%s", o->key, v);
    }
    return buf;
}
