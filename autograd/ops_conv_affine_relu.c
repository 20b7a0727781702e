/* conv2d_cm_affine_relu: a channel-major convolution followed by actnorm
 * and ReLU (the hidden layers of Glow's coupling network) as one op.
 *
 * The convolution's output is turned into the activation in place, so the
 * pre-activation never exists as a tensor of its own: one full-size
 * tensor less per hidden layer on the tape, and no separate pass that
 * writes a second one. The backward pass forms the pre-activation's
 * gradient in scratch memory and hands it straight to the convolution's
 * two products. Values and gradients are those of fg_conv2d_cm followed
 * by fg_channel_affine_relu, operation for operation. */
#include "autograd/internal.h"

#include <math.h>

static void backward(fg_graph *g, fg_node *nd)
{
    fg_var *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *l = nd->in[3], *y = nd->out;
    const int N = nd->i[0], Ci = x->t.shape[1], H = x->t.shape[2] / N, W = x->t.shape[3];
    const int Co = w->t.shape[0], k = w->t.shape[2];
    const size_t rows = (size_t)N * H * W;
    float *dpre = fg_arena_alloc(g->scratch, (size_t)Co * rows * sizeof(float));
    fg_affine_relu_planes_backward(1, Co, rows, y->grad, y->t.data, nd->saved, dpre, 1,
                                   b->requires_grad ? fg_grad(g, b) : NULL,
                                   l->requires_grad ? fg_grad(g, l) : NULL, 1);
    /* The two products' columns take turns after dpre in the scratch. */
    fg_arena_mark after_dpre = fg_arena_mark_now(g->scratch);
    if (x->requires_grad) {
        int fresh;
        float *dx = fg_grad_for_write(g, x, &fresh);
        fg_conv2d_cm_backward_input(N, Ci, H, W, Co, k, dpre, w->t.data, dx, !fresh, g->scratch);
        fg_arena_rewind(g->scratch, &after_dpre);
    }
    if (w->requires_grad)
        fg_conv2d_cm_backward_weight(N, Ci, H, W, Co, k, dpre, x->t.data, fg_grad(g, w), NULL,
                                     g->scratch);
    fg_arena_reset(g->scratch);
}

fg_var *fg_conv2d_cm_affine_relu(fg_graph *g, fg_var *x, fg_var *w, fg_var *bias,
                                 fg_var *logs, int N)
{
    FG_OP_BEGIN(g);
    fg_conv2d_cm_check("conv2d_cm_affine_relu", x, w, NULL, N);
    const int *xs = x->t.shape, *ws = w->t.shape;
    int shape[4] = {1, ws[0], xs[2], xs[3]};
    fg_var *y = fg_var_new(g, 4, shape);
    fg_conv2d_cm_forward(N, xs[1], xs[2] / N, xs[3], ws[0], ws[2], x->t.data, w->t.data, NULL,
                         y->t.data, g->scratch);
    fg_arena_reset(g->scratch);
    const int Co = y->t.shape[1];
    FG_CHECK(fg_var_numel(bias) == (size_t)Co && fg_var_numel(logs) == (size_t)Co,
             "conv2d_cm_affine_relu", "bias and logs have %zu and %zu values for %d channels",
             fg_var_numel(bias), fg_var_numel(logs), Co);
    float *S = fg_arena_alloc(fg_graph_arena(g), (size_t)Co * sizeof(float));
    for (int c = 0; c < Co; c++) S[c] = expf(logs->t.data[c]);
    fg_affine_relu_planes(1, Co, (size_t)y->t.shape[2] * y->t.shape[3], y->t.data, bias->t.data,
                          S, y->t.data, 1);
    fg_var *ins[4] = {x, w, bias, logs};
    fg_node *nd = fg_record_n(g, "conv2d_cm_affine_relu", backward, y, 4, ins);
    if (nd) {
        nd->saved = S;
        nd->i[0] = N;
    }
    return y;
}
