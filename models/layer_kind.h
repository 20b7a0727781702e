/* flowgrad layer kinds: the registry the config reader, the printer, the
 * size and FLOP counts and the builder all read.
 *
 * A kind is one entry: its YAML name, the schema of its options (keys,
 * types, ranges, defaults, one-line docs), its shape rule, how it creates
 * its flows/ layer and what that layer costs. Each entry lives in its own
 * file, models/layer_<kind>.c, and the table in models/layer_registry.c
 * lists them, one line each; nothing else names a kind. models/layer_squeeze.c
 * is the smallest entry to copy for a new one.
 *
 * A layer spec keeps its options as numbers in schema order: an int, a real
 * (kept at float precision, as the layers use it), a bool as 0 or 1, a
 * choice as the index of its name, a network (a list of modules, each with
 * options of its own) as its length, the modules in the spec's net[]. An
 * option that does not apply (see when_key) reads 0. */
#ifndef FLOWGRAD_MODELS_LAYER_KIND_H
#define FLOWGRAD_MODELS_LAYER_KIND_H

#include "flows/flow.h"
#include "models/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    FG_OPTION_INT,
    FG_OPTION_REAL,
    FG_OPTION_BOOL,
    FG_OPTION_CHOICE,
    FG_OPTION_NETWORK
} fg_option_type;

typedef struct fg_layer_option fg_layer_option;

/* A kind of module a network option's list may hold (a coupling's
 * conditioner): its YAML name, its options (a schema as a layer kind's;
 * their when_key names an option of the layer, not of the module), and
 * where it fits. */
typedef struct fg_layer_module {
    const char *name;
    const char *doc;                  /* one line */
    const fg_layer_option *options;
    int n_options;
    /* NULL, or the module fits only while the layer's option when_key
     * holds when_value; when_what names the case in messages. */
    const char *when_key;
    double when_value;
    const char *when_what;
    int output;                       /* 1: the list's output, last and only there */
} fg_layer_module;

struct fg_layer_option {
    const char *key;
    fg_option_type type;
    const char *doc;              /* one line, for people */
    double def;                   /* the default: a number, 0/1, or a choice's index */
    double lo, hi;                /* int and real: the range (hi = HUGE_VAL: none) */
    int lo_open, hi_open;         /* real: the ends excluded */
    const char *const *choices;   /* choice: the names, NULL-terminated */
    int required;                 /* the key must be given (def is unused) */
    int bare;                     /* descriptions show the value without its key */
    /* NULL, or the option applies only while the earlier option when_key
     * holds when_value; else it must be absent, and it reads 0. when_what
     * names the case in messages ("spline transforms"). */
    const char *when_key;
    double when_value;
    const char *when_what;
    /* network: a list of modules of these kinds (indexed as fg_module_spec
     * holds them), kept in the spec's net[]; the option's value is the
     * list's length, 0 (the default) for the kind's own network. */
    const fg_layer_module *modules;
    int n_modules;
};

/* What building a layer gets besides its spec and its actual input. */
typedef struct fg_layer_build {
    fg_rng *rng;        /* random initial weights */
    int max_hidden;     /* > 0: cap on network widths (a reduced build) */
    fg_rng *order_rng;  /* channel orders (shuffles, invconv's starting
                           rotations) when model.permutation_seed is set,
                           else NULL: they come from rng */
} fg_layer_build;

struct fg_layer_kind {
    const char *name;                 /* as written in YAML */
    const char *doc;                  /* one line */
    const fg_layer_option *options;
    int n_options;
    /* FG_FLOW_ROLE_* of the layer it builds that configs care about: a
     * split counts a level and may not end a flow. */
    unsigned roles;
    /* The shape leaving the layer, or FG_ERR with fg_error saying why the
     * entering one does not fit (no position: the reader adds it). NULL:
     * the shape is unchanged and any shape fits. */
    int (*shape)(const fg_layer_spec *l, fg_chw in, fg_chw *out);
    /* The flows/ layer for the actual input in (a reduced build may give a
     * smaller one than l->in), or NULL with fg_error. */
    fg_flow *(*create)(const fg_layer_spec *l, const fg_flow_shape *in,
                       const fg_layer_build *b);
    /* Forward multiply-adds x 2 per image at l->in. NULL: none counted. */
    double (*flops)(const fg_layer_spec *l);
    /* Adds the parameters, buffers and other constants the built layer
     * holds. NULL: none. */
    void (*size)(const fg_layer_spec *l, fg_model_size *s);
    /* NULL: "name key=value ..." of the options that apply, in schema
     * order. */
    const char *(*describe)(const fg_layer_spec *l, char *buf, size_t n);
};

/* The registry, in the order messages list the kinds. */
FG_API int fg_layer_kind_count(void);
FG_API const fg_layer_kind *fg_layer_kind_at(int i);
/* NULL when no kind has that name. */
FG_API const fg_layer_kind *fg_layer_kind_find(const char *name);
/* Index of key in k's schema, or -1. */
FG_API int fg_layer_option_index(const fg_layer_kind *k, const char *key);

/* A spec of kind k at its defaults (options that do not apply at the
 * defaults read 0), shapes and position zero. */
FG_API void fg_layer_spec_init(fg_layer_spec *l, const fg_layer_kind *k);
/* An option by key; a key the kind does not have stops (a caller's bug).
 * set changes that option alone: the caller keeps the options that apply
 * with it as the schema says (0 where they do not apply). */
FG_API double fg_layer_spec_get(const fg_layer_spec *l, const char *key);
FG_API void fg_layer_spec_set(fg_layer_spec *l, const char *key, double value);
/* 1 when option i applies given the spec's earlier options. */
FG_API int fg_layer_option_applies(const fg_layer_spec *l, int i);

/* The kind's shape rule on in (FG_ERR with fg_error as the rule says). */
FG_API int fg_layer_spec_shape(const fg_layer_spec *l, fg_chw in, fg_chw *out);
FG_API fg_flow *fg_layer_spec_create(const fg_layer_spec *l, const fg_flow_shape *in,
                                     const fg_layer_build *b);
FG_API double fg_layer_spec_flops(const fg_layer_spec *l);
/* Adds what the built layer holds to *s (params, buffers, extra_bytes). */
FG_API void fg_layer_spec_size(const fg_layer_spec *l, fg_model_size *s);

/* Conditioner outputs per transformed entry: 1 additive, 2 affine,
 * 3 bins - 1 spline. */
FG_API int fg_transform_width(fg_transform_kind t, int bins);

#ifdef __cplusplus
}
#endif
#endif
