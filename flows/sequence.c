/* sequence: layers applied in order (inverse in reverse order); a sequence
 * is itself a layer, so stacks nest. State names carry the layer index:
 * "<prefix>.<i>.<kind>...". */
#include "flows/layer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sequence {
    fg_flow base;
    int n;
    fg_flow **layers;
} sequence;

static const char kind[] = "sequence";

static int out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    const sequence *s = (const sequence *)f;
    fg_flow_shape cur = *in;
    for (int i = 0; i < s->n; i++) {
        fg_flow_shape next;
        if (fg_flow_out_shape(s->layers[i], &cur, &next) != FG_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", fg_last_error());
            return fg_error("layer %d: %s", i, why);
        }
        cur = next;
    }
    *out = cur;
    return FG_OK;
}

static fg_var *forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    sequence *s = (sequence *)f;
    for (int i = 0; i < s->n; i++)
        x = fg_flow_forward(s->layers[i], g, x, logdet, ctx);
    return x;
}

static fg_var *inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    sequence *s = (sequence *)f;
    for (int i = s->n - 1; i >= 0; i--)
        z = s->layers[i]->ops->inverse(s->layers[i], g, z, logdet, ctx);
    return z;
}

static void visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    sequence *s = (sequence *)f;
    for (int i = 0; i < s->n; i++) {
        char index[16], p[FG_NAME_LEN];
        snprintf(index, sizeof index, "%d", i);
        fg_flow_visit(s->layers[i], fg_name_join(p, sizeof p, prefix, index), fn, vctx);
    }
}

static void destroy(fg_flow *f)
{
    sequence *s = (sequence *)f;
    for (int i = 0; i < s->n; i++)
        fg_flow_destroy(s->layers[i]);
    free(s->layers);
    free(s);
}

static int data_init(fg_flow *f, int rearm)
{
    sequence *s = (sequence *)f;
    int pending = 0;
    for (int i = 0; i < s->n; i++) {
        if (rearm)
            fg_flow_rearm_actnorm(s->layers[i]);
        pending += fg_flow_init_pending(s->layers[i]);
    }
    return pending;
}

/* Each layer under "<prefix>.<index>", as visit names them. */
static int check_state(fg_flow *f, const char *prefix)
{
    sequence *s = (sequence *)f;
    char p[FG_NAME_LEN], index[16];
    for (int i = 0; i < s->n; i++) {
        snprintf(index, sizeof index, "%d", i);
        if (fg_flow_check_invertible(s->layers[i], fg_name_join(p, sizeof p, prefix, index)) !=
            FG_OK)
            return FG_ERR;
    }
    return FG_OK;
}

static const fg_flow_ops ops = {kind, out_shape, forward, inverse, visit, destroy, NULL,
                                FG_FLOW_ROLE_SEQUENCE, data_init, check_state};

fg_flow *fg_sequence_create(fg_flow **layers, int n)
{
    int missing = -1;
    for (int i = 0; i < n && missing < 0; i++)
        if (!layers[i])
            missing = i;
    if (n < 0 || missing >= 0) {
        for (int i = 0; i < n; i++)
            fg_flow_destroy(layers[i]);
        if (n < 0)
            fg_error("sequence: negative layer count %d", n);
        else
            fg_error("sequence: layer %d is missing", missing);
        return NULL;
    }
    sequence *s = fg_xcalloc(1, sizeof *s, kind);
    s->base.ops = &ops;
    s->n = n;
    s->layers = fg_xmalloc((size_t)(n ? n : 1) * sizeof *s->layers, kind);
    if (n)
        memcpy(s->layers, layers, (size_t)n * sizeof *layers);
    return &s->base;
}

int fg_sequence_length(const fg_flow *f)
{
    FG_CHECK(f->ops == &ops, "sequence_length", "layer is a %s", f->ops->kind);
    return ((const sequence *)f)->n;
}

fg_flow *fg_sequence_layer(fg_flow *f, int i)
{
    FG_CHECK(f->ops == &ops, "sequence_layer", "layer is a %s", f->ops->kind);
    sequence *s = (sequence *)f;
    FG_CHECK(i >= 0 && i < s->n, "sequence_layer", "index %d of %d layers", i, s->n);
    return s->layers[i];
}
