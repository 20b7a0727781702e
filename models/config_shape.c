/* The shape (C, H, W) of one sample as it flows through the layer list,
 * and the rule each layer puts on it. A config whose shapes cannot work is
 * refused here, before anything is built. */
#include <stdlib.h>
#include <string.h>

#include "models/config_internal.h"

void cfg_shape_str(fg_chw s, char *buf, size_t n)
{
    snprintf(buf, n, "%dx%dx%d", s.c, s.h, s.w);
}

int fg_coupling_kind_width(fg_coupling_kind k, int bins)
{
    return k == FG_COUPLING_SPLINE ? 3 * bins - 1 : (k == FG_COUPLING_AFFINE ? 2 : 1);
}

static int mask_is_channel(fg_mask_kind m)
{
    return m == FG_MASK_CHANNEL || m == FG_MASK_CHANNEL_FLIP;
}

/* The shape leaving a layer, or FG_ERR when the entering shape cannot be
 * taken. Messages show shapes as CxHxW because that is how channel
 * counts and spatial sizes read together. */
static int next_shape(const cfg_ctx *ctx, const fg_layer_spec *l, fg_chw in,
                      const cfg_node *at, const char *note, fg_chw *out)
{
    char s[64];
    cfg_shape_str(in, s, sizeof s);
    *out = in;
    switch (l->kind) {
    case FG_LAYER_SQUEEZE:
        if (in.h % 2 || in.w % 2)
            return cfg_fail(ctx, at, "squeeze needs an even height and width, but the "
                            "shape here is %s (CxHxW)%s", s, note);
        *out = (fg_chw){ in.c * 4, in.h / 2, in.w / 2 };
        return FG_OK;
    case FG_LAYER_COUPLING:
        if (mask_is_channel(l->u.coupling.mask) && (in.c < 2 || in.c % 2))
            return cfg_fail(ctx, at, "coupling with a channel mask needs an even number "
                            "of channels to cut in halves, but the shape here is %s "
                            "(CxHxW; add a squeeze first, or use mask: checkerboard)%s",
                            s, note);
        if (l->u.coupling.dense && (in.h != 1 || in.w != 1 || !mask_is_channel(l->u.coupling.mask)))
            return cfg_fail(ctx, at, "a dense coupling works on vectors with a channel "
                            "mask, but the shape here is %s (CxHxW; add a flatten first, "
                            "and use mask: channel or channel_flip)%s", s, note);
        if (!mask_is_channel(l->u.coupling.mask) && in.h * in.w < 2)
            return cfg_fail(ctx, at, "coupling with a checkerboard mask needs at least "
                            "2 pixels, but the shape here is %s (CxHxW)%s", s, note);
        return FG_OK;
    case FG_LAYER_MAF:
    case FG_LAYER_IAF:
        if (in.h != 1 || in.w != 1)
            return cfg_fail(ctx, at, "%s is an autoregressive flow on vectors of at least "
                            "2 entries, but the shape here is %s (CxHxW; add a flatten "
                            "first: images are not supported)%s",
                            l->kind == FG_LAYER_MAF ? "maf" : "iaf", s, note);
        if (in.c < 2)
            return cfg_fail(ctx, at, "%s needs vectors of at least 2 entries, but the shape "
                            "here is %s (CxHxW)%s", l->kind == FG_LAYER_MAF ? "maf" : "iaf",
                            s, note);
        return FG_OK;
    case FG_LAYER_SPLIT:
        if (in.c < 2 || in.c % 2)
            return cfg_fail(ctx, at, "split needs an even number of channels to cut in "
                            "halves, but the shape here is %s (CxHxW; add a squeeze "
                            "first)%s", s, note);
        out->c = in.c / 2;
        return FG_OK;
    case FG_LAYER_FLATTEN:
        *out = (fg_chw){ in.c * in.h * in.w, 1, 1 };
        return FG_OK;
    case FG_LAYER_SCALE_DIAG:
    case FG_LAYER_ACTNORM:
    case FG_LAYER_INVCONV:
    case FG_LAYER_PERMUTE:
        return FG_OK;
    }
    fg_fatal("cfg_track_add", "unknown layer kind %d", (int)l->kind);
}

int cfg_track_add(const cfg_ctx *ctx, cfg_track *t, const fg_layer_spec *proto,
                  const cfg_node *at, const char *note)
{
    fg_chw out;
    if (next_shape(ctx, proto, t->shape, at, note, &out))
        return FG_ERR;
    if (t->n >= FG_CONFIG_MAX_LAYERS)
        return cfg_fail(ctx, at, "the flow expands to more than %d layers (expected "
                        "fewer levels and steps, or smaller 'repeat' counts)", FG_CONFIG_MAX_LAYERS);
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 32;
        t->v = fg_xrealloc(t->v, (size_t)t->cap * sizeof *t->v, "config layer list");
    }
    fg_layer_spec *l = &t->v[t->n++];
    *l = *proto;
    l->in = t->shape;
    l->out = out;
    l->level = t->level;
    l->line = at->line;
    l->column = at->column;
    t->shape = out;
    if (l->kind == FG_LAYER_SPLIT)
        t->level++;
    return FG_OK;
}

int cfg_track_finish(const cfg_ctx *ctx, cfg_track *t, const cfg_node *at,
                     fg_model_spec *m)
{
    if (t->n == 0)
        return cfg_fail(ctx, at, "the flow has no layers (expected at least one)");
    const fg_layer_spec *last = &t->v[t->n - 1];
    if (last->kind == FG_LAYER_SPLIT)
        return fg_error("%s:%d:%d: split is the last layer (expected more layers after "
                        "a split: at the last level the top prior models all that "
                        "remains, so end the flow without a split)", ctx->name,
                        last->line, last->column);
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
