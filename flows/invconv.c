/* invconv: the invertible 1x1 convolution with a plain weight W (C, C).
 * logdet = H W log|det W| and W^-1 come from double-precision linear
 * algebra (fg_slogdet, fg_inverse), whose backward rules live in autograd. */
#include "flows/layer.h"
#include "tensor/alloc_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct invconv {
    fg_invconv_head head;
    fg_var *weight;     /* (C, C) parameter */
} invconv;

static const char kind[] = "invconv";

fg_var *fg_flow_conv1x1(fg_graph *g, fg_var *x, fg_var *w)
{
    if (x->t.ndim == 2)
        return fg_matmul(g, x, w, 0, 1);   /* vectors: z_n = W x_n, rows of x W^T */
    int c = w->t.shape[0];
    int shape[4] = {c, c, 1, 1};
    return fg_conv2d(g, x, fg_reshape(g, w, 4, shape), NULL);
}

int fg_invconv_out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    const fg_invconv_head *h = (const fg_invconv_head *)f;
    if (fg_flow_expect_channels(kind, in, h->channels) != FG_OK)
        return FG_ERR;
    *out = *in;
    return FG_OK;
}

static fg_var *logdet_term(invconv *ic, fg_graph *g, const fg_var *x)
{
    return fg_scale(g, fg_slogdet(g, ic->weight), (float)fg_flow_spatial(x));
}

static fg_var *forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    invconv *ic = (invconv *)f;
    fg_flow_require_channels(kind, x, ic->head.channels);
    fg_var *z = fg_flow_conv1x1(g, x, ic->weight);
    if (logdet)
        fg_flow_accumulate(g, logdet, logdet_term(ic, g, x), +1, x->t.shape[0]);
    return z;
}

static fg_var *inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    invconv *ic = (invconv *)f;
    fg_flow_require_channels(kind, z, ic->head.channels);
    fg_var *x = fg_flow_conv1x1(g, z, fg_inverse(g, ic->weight));
    if (logdet)
        fg_flow_accumulate(g, logdet, logdet_term(ic, g, z), -1, z->t.shape[0]);
    return x;
}

static void visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    invconv *ic = (invconv *)f;
    char p[FG_NAME_LEN], name[FG_NAME_LEN];
    fg_flow_prefix(p, sizeof p, prefix, kind);
    fn(vctx, fg_name_join(name, sizeof name, p, "weight"), ic->weight, FG_PARAM);
}

static void destroy(fg_flow *f)
{
    invconv *ic = (invconv *)f;
    fg_leaf_free(ic->weight);
    free(ic);
}

/* The loaded W (or its LU factors) under "<prefix>.invconv": both
 * invconvs' check_state. */
int fg_invconv_check_state(fg_flow *f, const char *prefix)
{
    char p[FG_NAME_LEN];
    return fg_invconv_check(f, fg_flow_prefix(p, sizeof p, prefix, kind));
}

static const fg_flow_ops ops = {kind, fg_invconv_out_shape, forward, inverse, visit,
                                destroy, NULL, 0, NULL, fg_invconv_check_state};

static fg_flow *plain_create(int c, const double *w)
{
    double logabsdet;
    int sign;
    fg_mat_slogdet(c, w, &logabsdet, &sign);
    if (sign == 0 || !isfinite(logabsdet)) {
        fg_error("invconv: the initial %dx%d weight is singular", c, c);
        return NULL;
    }
    invconv *ic = fg_xcalloc(1, sizeof *ic, kind);
    ic->head.base.ops = &ops;
    ic->head.channels = c;
    int shape[2] = {c, c};
    ic->weight = fg_leaf_new(2, shape, 1);
    for (int i = 0; i < c * c; i++)
        ic->weight->t.data[i] = (float)w[i];
    return &ic->head.base;
}

fg_flow *fg_invconv_create(const fg_invconv_options *o)
{
    int c = o->channels;
    if (c <= 0) {
        fg_error("invconv: channels must be positive, got %d", c);
        return NULL;
    }
    if (!o->init_w && !o->rng) {
        fg_error("invconv: needs an initial weight or an RNG to draw one");
        return NULL;
    }
    double *w = fg_xmalloc((size_t)c * c * sizeof(double), kind);
    if (o->init_w)
        memcpy(w, o->init_w, (size_t)c * c * sizeof(double));
    else
        fg_random_orthogonal(c, o->rng, w);
    fg_flow *f = o->lu ? fg_invconv_lu_create(c, w) : plain_create(c, w);
    free(w);
    return f;
}

/* W as the ops see it (converted to double like fg_slogdet and fg_inverse
 * do), checked with the same LU those use: whatever passes here never stops
 * them as singular. */
int fg_invconv_check_matrix(const char *what, int c, const float *w)
{
    size_t n = (size_t)c * c;
    double *a = fg_try_malloc(n * sizeof *a);
    int *piv = fg_try_malloc((size_t)c * sizeof *piv);
    int rc = FG_OK, sign;
    if (!a || !piv) {
        rc = fg_error("%s: cannot allocate %zu bytes to check the %dx%d matrix", what,
                      n * sizeof *a + (size_t)c * sizeof *piv, c, c);
    } else {
        for (size_t i = 0; i < n && rc == FG_OK; i++) {
            a[i] = w[i];
            if (!isfinite(a[i]))
                rc = fg_error("%s: W overflows (entry %zu is not finite); expected an "
                              "invertible %dx%d matrix, which the inverse and the "
                              "log-determinant need", what, i, c, c);
        }
        if (rc == FG_OK && fg_lu_decompose(c, a, piv, &sign) != FG_OK)
            rc = fg_error("%s: W is singular; expected an invertible %dx%d matrix, which "
                          "the inverse and the log-determinant need", what, c, c);
    }
    free(a);
    free(piv);
    return rc;
}

int fg_invconv_check(fg_flow *f, const char *prefix)
{
    const fg_invconv_head *h = (const fg_invconv_head *)f;
    FG_CHECK(f->ops->out_shape == fg_invconv_out_shape, "invconv_check",
             "layer is a %s, not an invconv", f->ops->kind);
    if (h->lu)
        return fg_invconv_lu_check(f, prefix);
    char name[FG_NAME_LEN], what[FG_NAME_LEN + 16];
    snprintf(what, sizeof what, "tensor '%s'", fg_name_join(name, sizeof name, prefix, "weight"));
    return fg_invconv_check_matrix(what, h->channels, ((invconv *)f)->weight->t.data);
}

void fg_invconv_weight(const fg_flow *f, double *w)
{
    const fg_invconv_head *h = (const fg_invconv_head *)f;
    FG_CHECK(f->ops->out_shape == fg_invconv_out_shape, "invconv_weight",
             "layer is a %s, not an invconv", f->ops->kind);
    if (h->lu) {
        fg_invconv_lu_weight(f, w);
        return;
    }
    const invconv *ic = (const invconv *)f;
    for (int i = 0; i < h->channels * h->channels; i++)
        w[i] = ic->weight->t.data[i];
}
