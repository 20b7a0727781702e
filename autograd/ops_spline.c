/* The rational-quadratic spline as two ops: the map, and the per-sample
 * sum of its log-derivative, computed in one pass forward. The kernels
 * (tensor/rq_spline.c) rebuild each element's knots from h in the backward
 * pass rather than saving them. */
#include "autograd/internal.h"

#include <string.h>

static size_t trailing(const fg_var *v)
{
    size_t n = 1;
    for (int d = 2; d < v->t.ndim; d++) n *= (size_t)v->t.shape[d];
    return n;
}

static float *grad_if_needed(fg_graph *g, fg_var *v)
{
    return v->requires_grad ? fg_grad(g, v) : NULL;
}

/* The two nodes share this. The map's node runs its backward first (it is
 * recorded after the log-determinant's, and both outputs are consumed only
 * later), and when the log-determinant has a gradient too it takes both in
 * one pass over the elements; the log-determinant's node then only resets
 * the flag. Without a gradient on y, the map's node does not run and the
 * log-determinant's does its own pass. */
typedef struct spline_saved {
    fg_rq_spline s;
    fg_var *lad_sum;      /* the log-determinant's output, or NULL */
    int lad_done;         /* set by the map's backward for the other node */
} spline_saved;

static void run_backward(fg_graph *g, fg_node *nd, const float *gy, const float *gl)
{
    const spline_saved *sv = nd->saved;
    fg_var *v = nd->in[0], *h = nd->in[1];
    const fg_var *mask = nd->nin > 2 ? nd->in[2] : NULL;
    fg_k_rq_spline_backward(&sv->s, nd->i[0], v->t.shape[0], v->t.shape[1], trailing(v),
                            v->t.data, h->t.data, mask ? mask->t.data : NULL, gy, gl,
                            grad_if_needed(g, v), grad_if_needed(g, h));
}

static void map_backward(fg_graph *g, fg_node *nd)
{
    spline_saved *sv = nd->saved;
    const float *gl = sv->lad_sum ? sv->lad_sum->grad : NULL;
    run_backward(g, nd, nd->out->grad, gl);
    sv->lad_done = gl != NULL;
}

static void logdet_backward(fg_graph *g, fg_node *nd)
{
    spline_saved *sv = nd->saved;
    if (sv->lad_done) {
        sv->lad_done = 0;
        return;
    }
    run_backward(g, nd, NULL, nd->out->grad);
}

static void require_inputs(const fg_rq_spline *s, const fg_var *v, const fg_var *h,
                           const fg_var *mask)
{
    char sv[FG_SHAPE_STR_LEN], sh[FG_SHAPE_STR_LEN];
    const int Q = fg_rq_spline_params(s);
    int ok = v->t.ndim >= 2 && h->t.ndim == v->t.ndim && h->t.shape[0] == v->t.shape[0] &&
             h->t.shape[1] == Q * v->t.shape[1];
    for (int d = 2; ok && d < v->t.ndim; d++) ok = h->t.shape[d] == v->t.shape[d];
    FG_CHECK(ok, "rq_spline", "v %s needs h of the same shape with %d times the channels "
             "(3 x %d bins - 1), got %s", fg_shape_str(&v->t, sv, sizeof sv), Q, s->bins,
             fg_shape_str(&h->t, sh, sizeof sh));
    if (mask)
        fg_require_same_shape("rq_spline", v, mask);
    FG_CHECK(!mask || !mask->requires_grad, "rq_spline", "the mask is a constant");
}

fg_var *fg_rq_spline_map(fg_graph *g, fg_var *v, fg_var *h, fg_var *mask,
                         const fg_rq_spline *s, int dir, fg_var **lad_sum)
{
    require_inputs(s, v, h, mask);
    FG_OP_BEGIN(g);
    const int N = v->t.shape[0], C = v->t.shape[1];
    const size_t P = trailing(v), total = fg_var_numel(v);
    fg_var *y = fg_var_like(g, v);
    float *lad = lad_sum ? fg_arena_alloc(g->arena, total * sizeof *lad) : NULL;
    fg_k_rq_spline(s, dir, N, C, P, v->t.data, h->t.data, mask ? mask->t.data : NULL,
                   y->t.data, lad);
    spline_saved *kept = fg_arena_alloc(g->arena, sizeof *kept);
    memcpy(&kept->s, s, sizeof kept->s);
    kept->lad_sum = NULL;
    kept->lad_done = 0;
    const int nin = mask ? 3 : 2;
    if (lad_sum) {
        int shape[1] = {N};
        fg_var *l = fg_var_new(g, 1, shape);
        double *sums = fg_arena_alloc(g->arena, (size_t)N * sizeof *sums);
        fg_k_sum_per_sample(N, (size_t)C * P, lad, sums);
        for (int n = 0; n < N; n++)
            l->t.data[n] = (float)sums[n];
        fg_node *nl = fg_record(g, "rq_spline_logdet", logdet_backward, l, nin, v, h, mask);
        if (nl) {
            nl->saved = kept;
            nl->i[0] = dir;
            kept->lad_sum = l;
        }
        *lad_sum = l;
    }
    fg_node *nd = fg_record(g, dir > 0 ? "rq_spline" : "rq_spline_inverse", map_backward, y,
                            nin, v, h, mask);
    if (nd) {
        nd->saved = kept;
        nd->i[0] = dir;
    }
    return y;
}
