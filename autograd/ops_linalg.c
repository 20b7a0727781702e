/* log|det W| and W^-1 of a small square matrix parameter, in double: the
 * invertible 1x1 convolution needs both to better precision than float. */
#include "autograd/internal.h"
#include <stdlib.h>

static int square_dim(const char *op, const fg_var *w)
{
    char sw[FG_SHAPE_STR_LEN];
    FG_CHECK(w->t.ndim == 2 && w->t.shape[0] == w->t.shape[1], op,
             "needs a square matrix, got %s", fg_shape_str(&w->t, sw, sizeof sw));
    return w->t.shape[0];
}

static double *to_double(fg_graph *g, const fg_var *w, int n)
{
    double *d = fg_arena_alloc(fg_graph_arena(g), (size_t)n * n * sizeof(double));
    for (int i = 0; i < n * n; i++) d[i] = w->t.data[i];
    return d;
}

static double *inverse_or_die(fg_graph *g, const char *op, const fg_var *w, int n)
{
    double *inv = fg_arena_alloc(fg_graph_arena(g), (size_t)n * n * sizeof(double));
    if (fg_mat_inverse(n, to_double(g, w, n), inv) != FG_OK)
        fg_fatal(op, "matrix (%d, %d) is singular: %s", n, n, fg_last_error());
    return inv;
}

/* ------------------------------------------------------------- slogdet */
/* d log|det W| / dW = W^-T */
static void slogdet_backward(fg_graph *g, fg_node *nd)
{
    fg_var *w = nd->in[0];
    int n = w->t.shape[0];
    double *inv = inverse_or_die(g, "slogdet", w, n);
    double gy = nd->out->grad[0];
    float *gw = fg_grad(g, w);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) gw[i * n + j] += (float)(gy * inv[j * n + i]);
}

fg_var *fg_slogdet(fg_graph *g, fg_var *w)
{
    FG_OP_BEGIN(g);
    int n = square_dim("slogdet", w);
    double logabs;
    int sign;
    fg_mat_slogdet(n, to_double(g, w, n), &logabs, &sign);
    FG_CHECK(sign != 0, "slogdet", "matrix (%d, %d) is singular", n, n);
    fg_var *y = fg_const_scalar(g, (float)logabs);
    fg_record(g, "slogdet", slogdet_backward, y, 1, w, NULL, NULL);
    return y;
}

/* ------------------------------------------------------------- inverse */
/* Y = W^-1: dW = -Y^T dY Y^T */
static void inverse_backward(fg_graph *g, fg_node *nd)
{
    fg_var *w = nd->in[0];
    int n = w->t.shape[0];
    const double *y = nd->saved;
    double *t = fg_arena_alloc(fg_graph_arena(g), (size_t)n * n * sizeof(double));
    const float *gy = nd->out->grad;
    for (int i = 0; i < n; i++)          /* t = Y^T dY */
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++) s += y[k * n + i] * gy[k * n + j];
            t[i * n + j] = s;
        }
    float *gw = fg_grad(g, w);
    for (int i = 0; i < n; i++)          /* dW -= t Y^T */
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++) s += t[i * n + k] * y[j * n + k];
            gw[i * n + j] -= (float)s;
        }
}

fg_var *fg_inverse(fg_graph *g, fg_var *w)
{
    FG_OP_BEGIN(g);
    int n = square_dim("inverse", w);
    double *inv = inverse_or_die(g, "inverse", w, n);
    fg_var *y = fg_var_like(g, w);
    for (int i = 0; i < n * n; i++) y->t.data[i] = (float)inv[i];
    fg_node *nd = fg_record(g, "inverse", inverse_backward, y, 1, w, NULL, NULL);
    if (nd) nd->saved = inv;
    return y;
}
