/* scale_diag: NICE's diagonal scaling, z = x e^logs per channel (per
 * coordinate of a vector), logdet += H W sum(logs). It lets a stack of
 * volume-preserving additive couplings give some dimensions more weight
 * than others. logs starts at zero: the identity. */
#include "flows/layer.h"

#include <stdlib.h>

typedef struct scale_diag {
    fg_flow base;
    int channels;
    fg_var *logs;           /* [C] */
} scale_diag;

static const char kind[] = "scale_diag";

static int out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    if (fg_flow_expect_channels(kind, in, ((const scale_diag *)f)->channels) != FG_OK)
        return FG_ERR;
    *out = *in;
    return FG_OK;
}

static fg_var *run(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet, int dir)
{
    scale_diag *s = (scale_diag *)f;
    fg_flow_require_channels(kind, x, s->channels);
    fg_var *logs = dir > 0 ? s->logs : fg_neg(g, s->logs);
    fg_var *z = fg_mul_channel(g, x, fg_exp(g, logs));
    if (logdet)
        fg_flow_accumulate(g, logdet,
                           fg_scale(g, fg_sum(g, s->logs), (float)fg_flow_spatial(x)), dir,
                           x->t.shape[0]);
    return z;
}

static fg_var *forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    return run(f, g, x, logdet, +1);
}

static fg_var *inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    return run(f, g, z, logdet, -1);
}

static void visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    scale_diag *s = (scale_diag *)f;
    char p[FG_NAME_LEN], name[FG_NAME_LEN];
    fg_flow_prefix(p, sizeof p, prefix, kind);
    fn(vctx, fg_name_join(name, sizeof name, p, "logs"), s->logs, FG_PARAM);
}

static void destroy(fg_flow *f)
{
    scale_diag *s = (scale_diag *)f;
    fg_leaf_free(s->logs);
    free(s);
}

static const fg_flow_ops ops = {kind, out_shape, forward, inverse, visit, destroy, NULL, 0,
                                NULL, NULL};

fg_flow *fg_scale_diag_create(int channels)
{
    if (channels <= 0) {
        fg_error("scale_diag: channel count must be positive, got %d", channels);
        return NULL;
    }
    scale_diag *s = fg_xcalloc(1, sizeof *s, kind);
    s->base.ops = &ops;
    s->channels = channels;
    int shape[1] = {channels};
    s->logs = fg_leaf_new(1, shape, 1);
    return &s->base;
}
