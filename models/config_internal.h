/* Shared by the models/config_*.c files only: the parse tree with source
 * positions, and the typed readers that validate it. */
#ifndef FLOWGRAD_MODELS_CONFIG_INTERNAL_H
#define FLOWGRAD_MODELS_CONFIG_INTERNAL_H

#include "models/config.h"
#include "models/layer_kind.h"

typedef enum { CFG_SCALAR, CFG_MAP, CFG_SEQ } cfg_kind;

typedef struct cfg_node cfg_node;
struct cfg_node {
    cfg_kind kind;
    int line, column;     /* 1-based */
    char *text;           /* scalar bytes, NUL-terminated */
    size_t len;
    int plain;            /* scalar written without quotes or block style */
    cfg_node **kids;      /* map: key, value, key, value, ...; seq: items */
    int n, cap;
};

/* Messages name the source; every reader takes one of these. */
typedef struct cfg_ctx {
    const char *name;
} cfg_ctx;

/* config_tree.c: YAML text -> tree, with every hostile-input bound. */
int cfg_parse(const cfg_ctx *ctx, const char *text, size_t len, cfg_node **root);
void cfg_node_free(cfg_node *n);

/* config_schema.c: typed, range-checked access with positioned errors.
 * `where` names the enclosing mapping in messages ("model", "train", ...).
 * Getters leave *out untouched when an optional key is absent, so callers
 * store defaults first. */
int cfg_fail(const cfg_ctx *ctx, const cfg_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cfg_is_null(const cfg_node *n);
int cfg_expect_map(const cfg_ctx *ctx, const cfg_node *n, const char *where);
/* allowed is NULL-terminated; an unknown key is reported at the key. */
int cfg_check_keys(const cfg_ctx *ctx, const cfg_node *map, const char *where,
                   const char *const *allowed);
const cfg_node *cfg_get(const cfg_node *map, const char *key);
const cfg_node *cfg_get_key(const cfg_node *map, const char *key);
int cfg_require(const cfg_ctx *ctx, const cfg_node *map, const char *where,
                const char *key, const char *expected);
int cfg_int(const cfg_ctx *ctx, const cfg_node *map, const char *where,
            const char *key, long long lo, long long hi, long long *out);
int cfg_int32(const cfg_ctx *ctx, const cfg_node *map, const char *where,
              const char *key, int lo, int hi, int *out);
/* Range lo..hi, each end open or closed; hi = HUGE_VAL for no upper bound. */
int cfg_real(const cfg_ctx *ctx, const cfg_node *map, const char *where,
             const char *key, double lo, int lo_open, double hi, int hi_open,
             double *out);
int cfg_bool(const cfg_ctx *ctx, const cfg_node *map, const char *where,
             const char *key, int *out);
/* names is NULL-terminated; *out becomes the index of the match. */
int cfg_enum(const cfg_ctx *ctx, const cfg_node *map, const char *where,
             const char *key, const char *const *names, int *out);
int cfg_string(const cfg_ctx *ctx, const cfg_node *map, const char *where,
               const char *key, const char **out);
/* Comma-separated list of names into buf, for "expected one of: ...". */
const char *cfg_join(const char *const *names, char *buf, size_t n);

/* config_flow.c: one option of a layer kind's schema (o) under key in map:
 * its type and range checked, a real rounded to float; *out untouched when
 * the key is absent. */
int cfg_option(const cfg_ctx *ctx, const cfg_node *map, const char *where, const char *key,
               const fg_layer_option *o, double *out);
/* The error for option i of k given in map where it does not apply;
 * when_key is the key that would make it apply, as the user writes it. */
int cfg_option_misplaced(const cfg_ctx *ctx, const cfg_node *map, const fg_layer_kind *k,
                         int i, const char *when_key);

/* config_shape.c: the layer list under construction and the shape that
 * flows through it. Both forms add layers only through cfg_track_add, so
 * the preset and the generic list are checked by the same rules. */
typedef struct cfg_track {
    fg_layer_spec *v;
    int n, cap;
    fg_chw shape;       /* shape entering the next layer */
    int level;          /* splits so far */
} cfg_track;
/* proto carries kind and options; position, level and shapes are filled
 * here. A shape the layer's kind cannot take is reported at `at`, with `note`
 * (may be "") appended to say which repeat pass it happened in. */
int cfg_track_add(const cfg_ctx *ctx, cfg_track *t, const fg_layer_spec *proto,
                  const cfg_node *at, const char *note);
/* Checks the finished list and moves it into m (layers, n_layers, top). */
int cfg_track_finish(const cfg_ctx *ctx, cfg_track *t, const cfg_node *at,
                     fg_model_spec *m);
void cfg_track_free(cfg_track *t);

/* config_glow.c and config_flow.c fill m->layers from the model mapping,
 * whose common keys config_model.c has read into m already. */
int cfg_expand_glow(const cfg_ctx *ctx, const cfg_node *model, fg_model_spec *m);
int cfg_expand_flow(const cfg_ctx *ctx, const cfg_node *model, fg_model_spec *m);
/* config_model.c */
int cfg_read_model(const cfg_ctx *ctx, const cfg_node *model, fg_model_spec *m);
/* config_train.c */
int cfg_read_train(const cfg_ctx *ctx, const cfg_node *train,
                   const fg_model_spec *m, fg_train_spec *t);

#endif
