/* The invertible-layer interface: dispatch, shapes, the latent context and
 * the helpers every layer shares. */
#include "flows/layer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

fg_flow_shape fg_flow_shape4(int n, int c, int h, int w)
{
    fg_flow_shape s = {4, {n, c, h, w}};
    return s;
}

fg_flow_shape fg_flow_shape_of(const fg_var *v)
{
    fg_flow_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = v->t.ndim;
    for (int i = 0; i < v->t.ndim; i++)
        s.dim[i] = v->t.shape[i];
    return s;
}

const char *fg_flow_shape_str(const fg_flow_shape *s, char *buf, size_t n)
{
    size_t used = 0;
    used += (size_t)snprintf(buf + used, n - used, "(");
    for (int i = 0; i < s->ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %d" : "%d", s->dim[i]);
    if (used < n)
        snprintf(buf + used, n - used, ")");
    return buf;
}

/* ---------------------------------------------------------------- context */

void fg_flow_ctx_init(fg_flow_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
}

void fg_flow_ctx_push(fg_flow_ctx *ctx, fg_var *z)
{
    FG_CHECK(ctx->n_latents < FG_FLOW_MAX_LATENTS, "flow_ctx_push",
             "more than %d latents", FG_FLOW_MAX_LATENTS);
    ctx->latents[ctx->n_latents++] = z;
}

fg_var *fg_flow_ctx_pop(fg_flow_ctx *ctx)
{
    return ctx->n_latents > 0 ? ctx->latents[--ctx->n_latents] : NULL;
}

/* ---------------------------------------------------------------- dispatch */

int fg_flow_out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    return f->ops->out_shape(f, in, out);
}

fg_var *fg_flow_forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                        fg_flow_ctx *ctx)
{
    return f->ops->forward(f, g, x, logdet, ctx);
}

fg_var *fg_flow_inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                        fg_flow_ctx *ctx)
{
    int was = fg_set_grad_enabled(g, 0);
    fg_var *x = f->ops->inverse(f, g, z, logdet, ctx);
    fg_set_grad_enabled(g, was);
    return x;
}

fg_var *fg_flow_inverse_grad(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                             fg_flow_ctx *ctx)
{
    return f->ops->inverse(f, g, z, logdet, ctx);
}

void fg_flow_visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    f->ops->visit(f, prefix, fn, vctx);
}

void fg_flow_destroy(fg_flow *f)
{
    if (f)
        f->ops->destroy(f);
}

const char *fg_flow_kind(const fg_flow *f)
{
    return f->ops->kind;
}

void fg_flow_rearm_actnorm(fg_flow *f)
{
    if (f->ops->data_init)
        f->ops->data_init(f, 1);
}

int fg_flow_init_pending(fg_flow *f)
{
    return f->ops->data_init ? f->ops->data_init(f, 0) : 0;
}

/* ---------------------------------------------------------------- helpers */

void fg_flow_accumulate(fg_graph *g, fg_var **logdet, fg_var *term, int sign, int n)
{
    if (!logdet)
        return;
    if (!*logdet) {
        int shape[1] = {n};
        *logdet = fg_const(g, 1, shape);
    }
    if (sign >= 0)
        fg_flow_observe("logdet", term);
    *logdet = sign >= 0 ? fg_add(g, *logdet, term) : fg_sub(g, *logdet, term);
}

int fg_flow_expect_image(const char *kind, const fg_flow_shape *in, int channels)
{
    char buf[FG_SHAPE_STR_LEN];
    if (in->ndim == 2)
        return fg_error("%s: input %s is a batch of vectors (N, D); the layer works on image "
                        "batches (N, C, H, W)", kind, fg_flow_shape_str(in, buf, sizeof buf));
    int ok = in->ndim == 4;
    for (int i = 0; ok && i < 4; i++)
        ok = in->dim[i] > 0;
    if (!ok)
        return fg_error("%s: input %s is not an image batch (N, C, H, W)",
                        kind, fg_flow_shape_str(in, buf, sizeof buf));
    if (channels > 0 && in->dim[1] != channels)
        return fg_error("%s: input %s has %d channels, the layer was built for %d",
                        kind, fg_flow_shape_str(in, buf, sizeof buf), in->dim[1],
                        channels);
    return FG_OK;
}

int fg_flow_expect_channels(const char *kind, const fg_flow_shape *in, int channels)
{
    char buf[FG_SHAPE_STR_LEN];
    if (in->ndim == 4)
        return fg_flow_expect_image(kind, in, channels);
    if (in->ndim != 2 || in->dim[0] <= 0 || in->dim[1] <= 0)
        return fg_error("%s: input %s is neither a batch of vectors (N, D) nor an image batch "
                        "(N, C, H, W)", kind, fg_flow_shape_str(in, buf, sizeof buf));
    if (channels > 0 && in->dim[1] != channels)
        return fg_error("%s: input %s holds vectors of %d entries, the layer was built for %d",
                        kind, fg_flow_shape_str(in, buf, sizeof buf), in->dim[1], channels);
    return FG_OK;
}

int fg_flow_expect_vectors(const char *kind, const fg_flow_shape *in, int dim)
{
    char buf[FG_SHAPE_STR_LEN];
    if (in->ndim == 2)
        return fg_flow_expect_channels(kind, in, dim);
    if (in->ndim != 4)
        return fg_error("%s: input %s is not a batch of vectors (N, %d)", kind,
                        fg_flow_shape_str(in, buf, sizeof buf), dim);
    if (fg_flow_expect_image(kind, in, dim) != FG_OK)
        return FG_ERR;
    if (in->dim[2] != 1 || in->dim[3] != 1)
        return fg_error("%s: input %s is not a batch of vectors (N, %d) or (N, %d, 1, 1); "
                        "flatten it first", kind, fg_flow_shape_str(in, buf, sizeof buf), dim,
                        dim);
    return FG_OK;
}

/* A layer's forward or inverse on a shape its out_shape refuses is the
 * library's own bug: the container validated every shape first. */
static void require(int (*expect)(const char *, const fg_flow_shape *, int), const char *kind,
                    const fg_var *x, int channels)
{
    fg_flow_shape s = fg_flow_shape_of(x);
    if (expect(kind, &s, channels) != FG_OK)
        fg_fatal(kind, "%s", fg_last_error());
}

void fg_flow_require_image(const char *kind, const fg_var *x, int channels)
{
    require(fg_flow_expect_image, kind, x, channels);
}

void fg_flow_require_channels(const char *kind, const fg_var *x, int channels)
{
    require(fg_flow_expect_channels, kind, x, channels);
}

void fg_flow_require_vectors(const char *kind, const fg_var *x, int dim)
{
    require(fg_flow_expect_vectors, kind, x, dim);
}

int fg_flow_spatial(const fg_var *x)
{
    int hw = 1;
    for (int i = 2; i < x->t.ndim; i++)
        hw *= x->t.shape[i];
    return hw;
}

void fg_flow_read_permutation(const char *kind, const fg_var *buf, int *perm, int n)
{
    FG_CHECK((int)fg_numel(&buf->t) == n, kind,
             "permutation buffer has %zu entries, expected %d", fg_numel(&buf->t), n);
    /* Loaders check values from outside first (fg_flow_check_permutation),
     * so a broken one here is the library's own bug. perm marks the values
     * seen: this check allocates nothing, so it cannot fail for want of
     * memory and be taken for a bug. */
    const float *v = buf->t.data;
    for (int i = 0; i < n; i++)
        perm[i] = -1;
    for (int i = 0; i < n; i++) {
        double x = v[i];
        FG_CHECK(x >= 0 && x < n && x == (int)x && perm[(int)x] < 0, kind,
                 "permutation buffer holds %g at index %d; expected a permutation of 0..%d "
                 "(each whole number once)", x, i, n - 1);
        perm[(int)x] = i;
    }
    for (int i = 0; i < n; i++)
        perm[i] = (int)v[i];
}

const char *fg_flow_prefix(char *buf, size_t n, const char *prefix, const char *kind)
{
    return fg_name_join(buf, n, prefix, kind);
}
