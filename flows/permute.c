/* permute: a fixed channel permutation, z[:, i] = x[:, perm[i]]. Reverse
 * needs no state; shuffle keeps its random permutation as a buffer so a
 * saved model reloads the same one. Volume preserving: logdet unchanged. */
#include "flows/layer.h"

#include <stdlib.h>

typedef struct permute {
    fg_flow base;
    int channels;
    int shuffle;
    fg_var *perm;           /* [C] buffer (shuffle only) */
} permute;

static const char kind[] = "permute";

static int out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    if (fg_flow_expect_channels(kind, in, ((const permute *)f)->channels) != FG_OK)
        return FG_ERR;
    *out = *in;
    return FG_OK;
}

static void read_perm(const permute *p, int *perm)
{
    int c = p->channels;
    if (!p->shuffle)
        for (int i = 0; i < c; i++)
            perm[i] = c - 1 - i;
    else
        fg_flow_read_permutation(kind, p->perm, perm, c);
}

static fg_var *forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    permute *p = (permute *)f;
    fg_flow_require_channels(kind, x, p->channels);
    int perm[p->channels];
    read_perm(p, perm);
    if (logdet)
        fg_flow_accumulate(g, logdet, fg_const_scalar(g, 0.0f), +1, x->t.shape[0]);
    return fg_channel_permute(g, x, perm);
}

static fg_var *inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    permute *p = (permute *)f;
    fg_flow_require_channels(kind, z, p->channels);
    int perm[p->channels], inv[p->channels];
    read_perm(p, perm);
    for (int i = 0; i < p->channels; i++)
        inv[perm[i]] = i;
    if (logdet)
        fg_flow_accumulate(g, logdet, fg_const_scalar(g, 0.0f), -1, z->t.shape[0]);
    return fg_channel_permute(g, z, inv);
}

static void visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    permute *p = (permute *)f;
    if (!p->perm)
        return;
    char pre[FG_NAME_LEN], name[FG_NAME_LEN];
    fg_flow_prefix(pre, sizeof pre, prefix, kind);
    fn(vctx, fg_name_join(name, sizeof name, pre, "perm"), p->perm, FG_BUFFER);
}

static void destroy(fg_flow *f)
{
    permute *p = (permute *)f;
    if (p->perm)
        fg_leaf_free(p->perm);
    free(p);
}

static const fg_flow_ops ops = {kind, out_shape, forward, inverse, visit, destroy, NULL, 0,
                                NULL, NULL};

fg_flow *fg_permute_create(const fg_permute_options *o)
{
    if (o->channels <= 0) {
        fg_error("permute: channels must be positive, got %d", o->channels);
        return NULL;
    }
    if (o->shuffle != 0 && o->shuffle != 1) {
        fg_error("permute: shuffle must be 0 (reverse) or 1, got %d", o->shuffle);
        return NULL;
    }
    if (o->shuffle && !o->rng) {
        fg_error("permute: shuffle needs an RNG to draw its permutation");
        return NULL;
    }
    permute *p = fg_xcalloc(1, sizeof *p, kind);
    p->base.ops = &ops;
    p->channels = o->channels;
    p->shuffle = o->shuffle;
    if (o->shuffle) {
        int c = o->channels, shape[1] = {c};
        int *perm = fg_xmalloc((size_t)c * sizeof(int), kind);
        fg_rng_permutation(o->rng, perm, c);
        p->perm = fg_leaf_new(1, shape, 0);
        for (int i = 0; i < c; i++)
            p->perm->t.data[i] = (float)perm[i];
        free(perm);
    }
    return &p->base;
}
