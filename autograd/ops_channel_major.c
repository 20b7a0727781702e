/* Channel-major batches: a batch (N, C, H, W) stored as one image
 * (1, C, N*H, W), each channel of the whole batch one contiguous row.
 * Per-channel ops (actnorm, biases, ReLU) work on it unchanged, since they
 * only see channels and the values in them; a convolution must know where
 * one image ends, which fg_conv2d_cm takes as N. Inside a coupling network
 * this turns every convolution into one GEMM over the batch. */
#include "autograd/internal.h"

#include <string.h>

/* y[c][n] = x[n][c] for planes of P values, or the reverse. */
static void transpose_planes(int A, int B, size_t P, const float *x, float *y)
{
    #pragma omp parallel for if ((size_t)A * B * P > FG_PARALLEL_THRESHOLD) schedule(static)
    for (int b = 0; b < B; b++)
        for (int a = 0; a < A; a++)
            memcpy(y + ((size_t)b * A + a) * P, x + ((size_t)a * B + b) * P, P * sizeof(float));
}

/* gx[a][b] += gy[b][a] */
static void transpose_planes_add(int A, int B, size_t P, const float *gy, float *gx)
{
    #pragma omp parallel for if ((size_t)A * B * P > FG_PARALLEL_THRESHOLD) schedule(static)
    for (int a = 0; a < A; a++)
        for (int b = 0; b < B; b++) {
            float *d = gx + ((size_t)a * B + b) * P;
            const float *s = gy + ((size_t)b * A + a) * P;
            #pragma omp simd
            for (size_t i = 0; i < P; i++)
                d[i] += s[i];
        }
}

/* ------------------------------------------------------------- to / from */
/* gx[a][b] (+)= gy[b][a]: stored when gx is fresh (see fg_grad_for_write). */
static void transpose_grad(fg_graph *g, fg_var *x, int A, int B, size_t P, const float *gy)
{
    int fresh;
    float *gx = fg_grad_for_write(g, x, &fresh);
    if (fresh)
        transpose_planes(B, A, P, gy, gx);
    else
        transpose_planes_add(A, B, P, gy, gx);
}

static void to_cm_backward(fg_graph *g, fg_node *nd)
{
    const int *s = nd->in[0]->t.shape;
    transpose_grad(g, nd->in[0], s[0], s[1], (size_t)s[2] * s[3], nd->out->grad);
}

fg_var *fg_to_channel_major(fg_graph *g, fg_var *x)
{
    FG_OP_BEGIN(g);
    fg_require_ndim("to_channel_major", x, 4);
    const int *s = x->t.shape;
    int shape[4] = {1, s[1], s[0] * s[2], s[3]};
    fg_var *y = fg_var_new(g, 4, shape);
    transpose_planes(s[0], s[1], (size_t)s[2] * s[3], x->t.data, y->t.data);
    fg_record(g, "to_channel_major", to_cm_backward, y, 1, x, NULL, NULL);
    return y;
}

static void from_cm_backward(fg_graph *g, fg_node *nd)
{
    const int *s = nd->out->t.shape;   /* (N, C, H, W) */
    transpose_grad(g, nd->in[0], s[1], s[0], (size_t)s[2] * s[3], nd->out->grad);
}

static void require_channel_major(const char *op, const fg_var *x, int N)
{
    fg_require_ndim(op, x, 4);
    char sx[FG_SHAPE_STR_LEN];
    FG_CHECK(x->t.shape[0] == 1 && N > 0 && x->t.shape[2] % N == 0, op,
             "%s is not a channel-major batch of %d images (1, C, N*H, W)",
             fg_shape_str(&x->t, sx, sizeof sx), N);
}

fg_var *fg_from_channel_major(fg_graph *g, fg_var *x, int N)
{
    FG_OP_BEGIN(g);
    require_channel_major("from_channel_major", x, N);
    const int C = x->t.shape[1], H = x->t.shape[2] / N, W = x->t.shape[3];
    int shape[4] = {N, C, H, W};
    fg_var *y = fg_var_new(g, 4, shape);
    transpose_planes(C, N, (size_t)H * W, x->t.data, y->t.data);
    fg_record(g, "from_channel_major", from_cm_backward, y, 1, x, NULL, NULL);
    return y;
}

/* ------------------------------------------------------------- conv2d */
static void conv2d_cm_backward(fg_graph *g, fg_node *nd)
{
    fg_var *x = nd->in[0], *w = nd->in[1], *b = nd->in[2];
    const int N = nd->i[0], Ci = x->t.shape[1], H = x->t.shape[2] / N, W = x->t.shape[3];
    const int Co = w->t.shape[0], k = w->t.shape[2];
    const float *dy = nd->out->grad;
    if (x->requires_grad) {
        int fresh;
        float *dx = fg_grad_for_write(g, x, &fresh);
        fg_conv2d_cm_backward_input(N, Ci, H, W, Co, k, dy, w->t.data, dx, !fresh, g->scratch);
        fg_arena_reset(g->scratch);
    }
    int need_b = b && b->requires_grad;
    if (w->requires_grad || need_b) {
        float *dw = w->requires_grad ? fg_grad(g, w)
                    : fg_arena_calloc(g->scratch, fg_var_numel(w) * sizeof(float));
        fg_conv2d_cm_backward_weight(N, Ci, H, W, Co, k, dy, x->t.data, dw,
                                     need_b ? fg_grad(g, b) : NULL, g->scratch);
        fg_arena_reset(g->scratch);
    }
}

void fg_conv2d_cm_check(const char *op, const fg_var *x, const fg_var *w, const fg_var *bias,
                        int N)
{
    require_channel_major(op, x, N);
    fg_require_ndim(op, w, 4);
    const int *xs = x->t.shape, *ws = w->t.shape;
    char sx[FG_SHAPE_STR_LEN], sw[FG_SHAPE_STR_LEN];
    FG_CHECK(ws[1] == xs[1] && ws[2] == ws[3] && ws[2] % 2 == 1, op,
             "input %s and weight %s: need weight (Co, Ci, k, k) with odd k and Ci = %d",
             fg_shape_str(&x->t, sx, sizeof sx), fg_shape_str(&w->t, sw, sizeof sw), xs[1]);
    FG_CHECK(!bias || fg_var_numel(bias) == (size_t)ws[0], op,
             "bias has %zu values for %d output channels", bias ? fg_var_numel(bias) : 0, ws[0]);
}

fg_var *fg_conv2d_cm(fg_graph *g, fg_var *x, fg_var *w, fg_var *bias, int N)
{
    FG_OP_BEGIN(g);
    fg_conv2d_cm_check("conv2d_cm", x, w, bias, N);
    const int *xs = x->t.shape, *ws = w->t.shape;
    int shape[4] = {1, ws[0], xs[2], xs[3]};
    fg_var *y = fg_var_new(g, 4, shape);
    fg_conv2d_cm_forward(N, xs[1], xs[2] / N, xs[3], ws[0], ws[2], x->t.data, w->t.data,
                         bias ? bias->t.data : NULL, y->t.data, g->scratch);
    fg_arena_reset(g->scratch);
    fg_node *nd = fg_record(g, "conv2d_cm", conv2d_cm_backward, y, bias ? 3 : 2, x, w, bias);
    if (nd) nd->i[0] = N;
    return y;
}
