/* invconv with an LU-factored weight: W = P L (U + diag(sign e^log_s)).
 * P and sign stay fixed (buffers); L is unit lower triangular, U strictly
 * upper, so log|det W| = sum(log_s) costs O(C) instead of a determinant.
 * The masks keep l and u inside their triangles: entries outside receive
 * zero gradient, so whatever a checkpoint holds there never matters. */
#include "flows/layer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct invconv_lu {
    fg_invconv_head head;
    fg_var *p, *sign;         /* [C] buffers: W[r, :] = (L U')[p[r], :] */
    fg_var *l, *u;            /* (C, C) parameters, masked */
    fg_var *log_s;            /* [C] parameter */
    float *lower, *upper, *eye;  /* (C, C) constant masks */
} invconv_lu;

static const char kind[] = "invconv";

/* W built from the factors on the tape, so gradients reach l, u, log_s. */
static fg_var *weight(invconv_lu *lu, fg_graph *g)
{
    int c = lu->head.channels;
    int mat[2] = {c, c}, col[4] = {c, c, 1, 1};
    fg_var *eye = fg_const_wrap(g, lu->eye, 2, mat);
    fg_var *lower = fg_add(g, fg_mul(g, lu->l, fg_const_wrap(g, lu->lower, 2, mat)), eye);
    fg_var *s = fg_mul(g, fg_const_wrap(g, lu->sign->t.data, 1, (int[1]){c}),
                       fg_exp(g, lu->log_s));
    /* diag(s): row n of the identity times s, channel-wise over (C, C, 1, 1) */
    fg_var *diag = fg_reshape(g, fg_mul_channel(g, fg_const_wrap(g, lu->eye, 4, col), s),
                              2, mat);
    fg_var *upper = fg_add(g, fg_mul(g, lu->u, fg_const_wrap(g, lu->upper, 2, mat)), diag);
    int perm[c];
    fg_flow_read_permutation(kind, lu->p, perm, c);
    fg_var *pm = fg_const(g, 2, mat);
    for (int r = 0; r < c; r++)
        pm->t.data[r * c + perm[r]] = 1.0f;
    return fg_matmul(g, pm, fg_matmul(g, lower, upper, 0, 0), 0, 0);
}

static fg_var *logdet_term(invconv_lu *lu, fg_graph *g, const fg_var *x)
{
    return fg_scale(g, fg_sum(g, lu->log_s), (float)fg_flow_spatial(x));
}

static fg_var *forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    invconv_lu *lu = (invconv_lu *)f;
    fg_flow_require_channels(kind, x, lu->head.channels);
    fg_var *z = fg_flow_conv1x1(g, x, weight(lu, g));
    if (logdet)
        fg_flow_accumulate(g, logdet, logdet_term(lu, g, x), +1, x->t.shape[0]);
    return z;
}

static fg_var *inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    invconv_lu *lu = (invconv_lu *)f;
    fg_flow_require_channels(kind, z, lu->head.channels);
    fg_var *x = fg_flow_conv1x1(g, z, fg_inverse(g, weight(lu, g)));
    if (logdet)
        fg_flow_accumulate(g, logdet, logdet_term(lu, g, z), -1, z->t.shape[0]);
    return x;
}

void fg_invconv_lu_weight(const fg_flow *f, double *w)
{
    const invconv_lu *lu = (const invconv_lu *)f;
    int c = lu->head.channels;
    int perm[c];
    fg_flow_read_permutation(kind, lu->p, perm, c);
    for (int i = 0; i < c; i++)
        for (int j = 0; j < c; j++) {
            /* (L U')[i, j] = sum_k L[i, k] U'[k, j], k <= min(i, j) */
            double acc = 0.0;
            for (int k = 0; k <= i && k <= j; k++) {
                double lik = k == i ? 1.0 : lu->l->t.data[i * c + k];
                double ukj = k == j ? lu->sign->t.data[k] * exp(lu->log_s->t.data[k])
                                    : lu->u->t.data[k * c + j];
                acc += lik * ukj;
            }
            /* row i of L U' is row r of W where perm[r] == i */
            for (int r = 0; r < c; r++)
                if (perm[r] == i)
                    w[r * c + j] = acc;
        }
}

int fg_invconv_lu_check(fg_flow *f, const char *prefix)
{
    invconv_lu *lu = (invconv_lu *)f;
    int c = lu->head.channels;
    char name[FG_NAME_LEN], what[FG_NAME_LEN + 48];
    snprintf(what, sizeof what, "tensor '%s'", fg_name_join(name, sizeof name, prefix, "p"));
    if (fg_flow_check_permutation(what, lu->p->t.data, c) != FG_OK)
        return FG_ERR;
    snprintf(what, sizeof what, "tensor '%s'", fg_name_join(name, sizeof name, prefix, "sign"));
    if (fg_flow_check_signs(what, lu->sign->t.data, c) != FG_OK)
        return FG_ERR;
    /* Composed in float by the same ops as forward and inverse: factors
     * that are each fine can still overflow or cancel in P L U. */
    fg_graph *g = fg_graph_create();
    int was = fg_set_grad_enabled(g, 0);
    fg_var *w = weight(lu, g);
    snprintf(what, sizeof what, "tensors '%s.{p,sign,l,u,log_s}' (W = P L U)", prefix);
    int rc = fg_invconv_check_matrix(what, c, w->t.data);
    fg_set_grad_enabled(g, was);
    fg_graph_destroy(g);
    return rc;
}

static void visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    invconv_lu *lu = (invconv_lu *)f;
    char p[FG_NAME_LEN], name[FG_NAME_LEN];
    fg_flow_prefix(p, sizeof p, prefix, kind);
    fn(vctx, fg_name_join(name, sizeof name, p, "p"), lu->p, FG_BUFFER);
    fn(vctx, fg_name_join(name, sizeof name, p, "sign"), lu->sign, FG_BUFFER);
    fn(vctx, fg_name_join(name, sizeof name, p, "l"), lu->l, FG_PARAM);
    fn(vctx, fg_name_join(name, sizeof name, p, "u"), lu->u, FG_PARAM);
    fn(vctx, fg_name_join(name, sizeof name, p, "log_s"), lu->log_s, FG_PARAM);
}

static void destroy(fg_flow *f)
{
    invconv_lu *lu = (invconv_lu *)f;
    fg_leaf_free(lu->p);
    fg_leaf_free(lu->sign);
    fg_leaf_free(lu->l);
    fg_leaf_free(lu->u);
    fg_leaf_free(lu->log_s);
    free(lu->lower);
    free(lu->upper);
    free(lu->eye);
    free(lu);
}

static const fg_flow_ops ops = {kind, fg_invconv_out_shape, forward, inverse, visit,
                                destroy, NULL, 0, NULL, fg_invconv_check_state};

fg_flow *fg_invconv_lu_create(int c, const double *w)
{
    double *a = fg_xmalloc((size_t)c * c * sizeof(double), kind);
    int *piv = fg_xmalloc((size_t)c * sizeof(int), kind);
    int *order = fg_xmalloc((size_t)c * sizeof(int), kind);
    memcpy(a, w, (size_t)c * c * sizeof(double));
    int det_sign;
    if (fg_lu_decompose(c, a, piv, &det_sign) != FG_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", fg_last_error());
        fg_error("invconv: cannot LU-factor the initial %dx%d weight: %s", c, c, why);
        free(a), free(piv), free(order);
        return NULL;
    }
    invconv_lu *lu = fg_xcalloc(1, sizeof *lu, kind);
    lu->head.base.ops = &ops;
    lu->head.channels = c;
    lu->head.lu = 1;
    int vec[1] = {c}, mat[2] = {c, c};
    lu->p = fg_leaf_new(1, vec, 0);
    lu->sign = fg_leaf_new(1, vec, 0);
    lu->l = fg_leaf_new(2, mat, 1);
    lu->u = fg_leaf_new(2, mat, 1);
    lu->log_s = fg_leaf_new(1, vec, 1);
    lu->lower = fg_xcalloc((size_t)c * c, sizeof(float), kind);
    lu->upper = fg_xcalloc((size_t)c * c, sizeof(float), kind);
    lu->eye = fg_xcalloc((size_t)c * c, sizeof(float), kind);
    /* The row swaps, replayed: row i of L U is row order[i] of w. */
    for (int i = 0; i < c; i++)
        order[i] = i;
    for (int k = 0; k < c; k++) {
        int t = order[k];
        order[k] = order[piv[k]];
        order[piv[k]] = t;
    }
    for (int i = 0; i < c; i++) {
        lu->p->t.data[order[i]] = (float)i;
        double d = a[i * c + i];
        lu->sign->t.data[i] = d < 0 ? -1.0f : 1.0f;
        lu->log_s->t.data[i] = (float)log(fabs(d));
        lu->eye[i * c + i] = 1.0f;
        for (int j = 0; j < c; j++) {
            if (j < i) {
                lu->lower[i * c + j] = 1.0f;
                lu->l->t.data[i * c + j] = (float)a[i * c + j];
            } else if (j > i) {
                lu->upper[i * c + j] = 1.0f;
                lu->u->t.data[i * c + j] = (float)a[i * c + j];
            }
        }
    }
    free(a), free(piv), free(order);
    return &lu->head.base;
}
