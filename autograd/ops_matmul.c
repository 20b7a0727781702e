/* Matrix product and 2-D convolution: the two ops whose time is GEMM. */
#include "autograd/internal.h"

/* ------------------------------------------------------------- matmul */
/* C = op(A) op(B), A and B stored row-major; op transposes when flagged. */
static void matmul_backward(fg_graph *g, fg_node *nd)
{
    fg_var *a = nd->in[0], *b = nd->in[1];
    int ta = nd->i[0], tb = nd->i[1], M = nd->i[2], N = nd->i[3];
    int K = ta ? a->t.shape[0] : a->t.shape[1];
    const float *A = a->t.data, *B = b->t.data, *dC = nd->out->grad;
    int lda = a->t.shape[1], ldb = b->t.shape[1];
    if (a->requires_grad) {
        float *dA = fg_grad(g, a);
        if (!ta) fg_gemm(0, !tb, M, K, N, 1.0f, dC, N, B, ldb, 1.0f, dA, lda); /* dC op(B)^T */
        else fg_gemm(tb, 1, K, M, N, 1.0f, B, ldb, dC, N, 1.0f, dA, lda);      /* op(B) dC^T */
    }
    if (b->requires_grad) {
        float *dB = fg_grad(g, b);
        if (!tb) fg_gemm(!ta, 0, K, N, M, 1.0f, A, lda, dC, N, 1.0f, dB, ldb); /* op(A)^T dC */
        else fg_gemm(1, ta, N, K, M, 1.0f, dC, N, A, lda, 1.0f, dB, ldb);      /* dC^T op(A) */
    }
}

fg_var *fg_matmul(fg_graph *g, fg_var *a, fg_var *b, int trans_a, int trans_b)
{
    FG_OP_BEGIN(g);
    fg_require_ndim("matmul", a, 2);
    fg_require_ndim("matmul", b, 2);
    int M = trans_a ? a->t.shape[1] : a->t.shape[0];
    int K = trans_a ? a->t.shape[0] : a->t.shape[1];
    int Kb = trans_b ? b->t.shape[1] : b->t.shape[0];
    int N = trans_b ? b->t.shape[0] : b->t.shape[1];
    char sa[FG_SHAPE_STR_LEN], sb[FG_SHAPE_STR_LEN];
    FG_CHECK(K == Kb, "matmul", "inner dimensions differ: %s%s times %s%s",
             fg_shape_str(&a->t, sa, sizeof sa), trans_a ? "^T" : "",
             fg_shape_str(&b->t, sb, sizeof sb), trans_b ? "^T" : "");
    int shape[2] = {M, N};
    fg_var *y = fg_var_new(g, 2, shape);
    fg_gemm(trans_a != 0, trans_b != 0, M, N, K, 1.0f, a->t.data, a->t.shape[1], b->t.data,
            b->t.shape[1], 0.0f, y->t.data, N);
    fg_node *nd = fg_record(g, "matmul", matmul_backward, y, 2, a, b, NULL);
    if (nd) { nd->i[0] = trans_a != 0; nd->i[1] = trans_b != 0; nd->i[2] = M; nd->i[3] = N; }
    return y;
}

/* ------------------------------------------------------------- conv2d */
static void conv2d_backward(fg_graph *g, fg_node *nd)
{
    fg_var *x = nd->in[0], *w = nd->in[1], *b = nd->in[2];
    const int *xs = x->t.shape;
    int Co = w->t.shape[0], k = w->t.shape[2];
    const float *dy = nd->out->grad;
    if (x->requires_grad) {
        fg_conv2d_backward_input(xs[0], xs[1], xs[2], xs[3], Co, k, dy, w->t.data,
                                 fg_grad(g, x), g->scratch);
        fg_arena_reset(g->scratch);
    }
    int need_b = b && b->requires_grad;
    if (w->requires_grad || need_b) {
        /* The weight kernel also produces the bias sum; route whichever
         * side is not wanted into a throwaway buffer. */
        float *dw = w->requires_grad ? fg_grad(g, w)
                    : fg_arena_calloc(g->scratch, fg_var_numel(w) * sizeof(float));
        fg_conv2d_backward_weight(xs[0], xs[1], xs[2], xs[3], Co, k, dy, x->t.data, dw,
                                  need_b ? fg_grad(g, b) : NULL, g->scratch);
        fg_arena_reset(g->scratch);
    }
}

fg_var *fg_conv2d(fg_graph *g, fg_var *x, fg_var *w, fg_var *bias)
{
    FG_OP_BEGIN(g);
    fg_require_ndim("conv2d", x, 4);
    fg_require_ndim("conv2d", w, 4);
    const int *xs = x->t.shape, *ws = w->t.shape;
    char sx[FG_SHAPE_STR_LEN], sw[FG_SHAPE_STR_LEN];
    FG_CHECK(ws[1] == xs[1] && ws[2] == ws[3] && ws[2] % 2 == 1, "conv2d",
             "input %s and weight %s: need weight (Co, Ci, k, k) with odd k and Ci = %d",
             fg_shape_str(&x->t, sx, sizeof sx), fg_shape_str(&w->t, sw, sizeof sw), xs[1]);
    FG_CHECK(!bias || fg_var_numel(bias) == (size_t)ws[0], "conv2d",
             "bias has %zu values for %d output channels", bias ? fg_var_numel(bias) : 0, ws[0]);
    int shape[4] = {xs[0], ws[0], xs[2], xs[3]};
    fg_var *y = fg_var_new(g, 4, shape);
    fg_conv2d_forward(xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], x->t.data, w->t.data,
                      bias ? bias->t.data : NULL, y->t.data, g->scratch);
    fg_arena_reset(g->scratch);
    fg_record(g, "conv2d", conv2d_backward, y, bias ? 3 : 2, x, w, bias);
    return y;
}
