/* The shape (C, H, W) of one sample as it flows through the layer list,
 * and the rule each layer's kind puts on it (models/layer_kind.h). A
 * config whose shapes cannot work is refused here, before anything is
 * built. */
#include <stdlib.h>
#include <string.h>

#include "models/config_internal.h"
#include "models/layer_kind.h"

int cfg_track_add(const cfg_ctx *ctx, cfg_track *t, const fg_layer_spec *proto,
                  const cfg_node *at, const char *note)
{
    fg_chw out;
    if (fg_layer_spec_shape(proto, t->shape, &out) != FG_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", fg_last_error());
        return cfg_fail(ctx, at, "%s%s", why, note);
    }
    if (t->n >= FG_CONFIG_MAX_LAYERS)
        return cfg_fail(ctx, at, "the flow expands to more than %d layers (expected "
                        "fewer levels and steps, or smaller 'repeat' counts)", FG_CONFIG_MAX_LAYERS);
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 32;
        t->v = fg_xrealloc(t->v, (size_t)t->cap * sizeof *t->v, "config layer list");
    }
    fg_layer_spec *l = &t->v[t->n++];
    /* Padding included (fg_layer_spec_init zeroes it), so that specs
     * compare byte for byte. */
    memcpy(l, proto, sizeof *l);
    l->in = t->shape;
    l->out = out;
    l->level = t->level;
    l->line = at->line;
    l->column = at->column;
    t->shape = out;
    if (l->kind->roles & FG_FLOW_ROLE_SPLIT)
        t->level++;
    return FG_OK;
}

int cfg_track_finish(const cfg_ctx *ctx, cfg_track *t, const cfg_node *at,
                     fg_model_spec *m)
{
    if (t->n == 0)
        return cfg_fail(ctx, at, "the flow has no layers (expected at least one)");
    const fg_layer_spec *last = &t->v[t->n - 1];
    if (last->kind->roles & FG_FLOW_ROLE_SPLIT)
        return fg_error("%s:%d:%d: %s is the last layer (expected more layers after "
                        "a %s: at the last level the top prior models all that "
                        "remains, so end the flow without a %s)", ctx->name,
                        last->line, last->column, last->kind->name, last->kind->name,
                        last->kind->name);
    m->layers = t->v;
    m->n_layers = t->n;
    m->top = t->shape;
    t->v = NULL;
    t->n = t->cap = 0;
    return FG_OK;
}

void cfg_track_free(cfg_track *t)
{
    free(t->v);
    memset(t, 0, sizeof *t);
}
