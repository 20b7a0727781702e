/* Unary elementwise ops, each forward beside its backward rule. */
#include "autograd/internal.h"
#include "tensor/parallel_internal.h"
#include <math.h>

/* Backward loops: threads above the size threshold, SIMD always (GCC at -O2
 * vectorizes these only when asked). */

static fg_var *unary(fg_graph *g, const char *op, fg_backward_fn bw, fg_var *a,
                     void (*kernel)(size_t, const float *, float *))
{
    FG_OP_BEGIN(g);
    fg_var *y = fg_var_like(g, a);
    kernel(fg_var_numel(a), a->t.data, y->t.data);
    fg_record(g, op, bw, y, 1, a, NULL, NULL);
    return y;
}

/* ------------------------------------------------------------- scale */
static void scale_backward(fg_graph *g, fg_node *nd)
{
    fg_k_axpy(fg_var_numel(nd->out), nd->f, nd->out->grad, fg_grad(g, nd->in[0]));
}

fg_var *fg_scale(fg_graph *g, fg_var *a, float s)
{
    FG_OP_BEGIN(g);
    fg_var *y = fg_var_like(g, a);
    fg_k_scale(fg_var_numel(a), s, a->t.data, y->t.data);
    fg_node *nd = fg_record(g, "scale", scale_backward, y, 1, a, NULL, NULL);
    if (nd) nd->f = s;
    return y;
}

fg_var *fg_neg(fg_graph *g, fg_var *a) { return fg_scale(g, a, -1.0f); }

/* ------------------------------------------------------------- add_scalar */
static void add_scalar_backward(fg_graph *g, fg_node *nd)
{
    float *ga = fg_grad(g, nd->in[0]);
    fg_k_add(fg_var_numel(nd->out), ga, nd->out->grad, ga);
}

fg_var *fg_add_scalar(fg_graph *g, fg_var *a, float s)
{
    FG_OP_BEGIN(g);
    fg_var *y = fg_var_like(g, a);
    fg_k_add_scalar(fg_var_numel(a), s, a->t.data, y->t.data);
    fg_record(g, "add_scalar", add_scalar_backward, y, 1, a, NULL, NULL);
    return y;
}

/* ------------------------------------------------------------- exp */
static void exp_backward(fg_graph *g, fg_node *nd)
{
    fg_k_mul_acc(fg_var_numel(nd->out), nd->out->grad, nd->out->t.data, fg_grad(g, nd->in[0]));
}

fg_var *fg_exp(fg_graph *g, fg_var *a) { return unary(g, "exp", exp_backward, a, fg_k_exp); }

/* ------------------------------------------------------------- log */
static void log_backward(fg_graph *g, fg_node *nd)
{
    size_t n = fg_var_numel(nd->out);
    const float *restrict gy = nd->out->grad, *restrict x = nd->in[0]->t.data;
    float *restrict ga = fg_grad(g, nd->in[0]);
    FG_FOR_SIMD(i, n, ga[i] += gy[i] / x[i]);
}

fg_var *fg_log(fg_graph *g, fg_var *a) { return unary(g, "log", log_backward, a, fg_k_log); }

/* ------------------------------------------------------------- sigmoid */
static void sigmoid_backward(fg_graph *g, fg_node *nd)
{
    size_t n = fg_var_numel(nd->out);
    const float *restrict gy = nd->out->grad, *restrict y = nd->out->t.data;
    float *restrict ga = fg_grad(g, nd->in[0]);
    FG_FOR_SIMD(i, n, ga[i] += gy[i] * y[i] * (1.0f - y[i]));
}

fg_var *fg_sigmoid(fg_graph *g, fg_var *a)
{
    FG_OP_BEGIN(g);
    return unary(g, "sigmoid", sigmoid_backward, a, fg_k_sigmoid);
}

/* ------------------------------------------------------------- log_sigmoid */
/* d/dx log sigmoid(x) = sigmoid(-x) = 1 - exp(y), exact for any x since y <= 0. */
static void log_sigmoid_backward(fg_graph *g, fg_node *nd)
{
    size_t n = fg_var_numel(nd->out);
    const float *restrict gy = nd->out->grad, *restrict y = nd->out->t.data;
    float *restrict ga = fg_grad(g, nd->in[0]);
    FG_FOR_SIMD(i, n, ga[i] += gy[i] * -expm1f(y[i]));
}

fg_var *fg_log_sigmoid(fg_graph *g, fg_var *a)
{
    FG_OP_BEGIN(g);
    return unary(g, "log_sigmoid", log_sigmoid_backward, a, fg_k_log_sigmoid);
}

/* ------------------------------------------------------------- relu */
static void relu_backward(fg_graph *g, fg_node *nd)
{
    size_t n = fg_var_numel(nd->out);
    const float *restrict gy = nd->out->grad, *restrict x = nd->in[0]->t.data;
    float *restrict ga = fg_grad(g, nd->in[0]);
    FG_FOR_SIMD(i, n, ga[i] += (x[i] > 0.0f) * gy[i]);
}

fg_var *fg_relu(fg_graph *g, fg_var *a) { return unary(g, "relu", relu_backward, a, fg_k_relu); }

/* ------------------------------------------------------------- square */
static void square_backward(fg_graph *g, fg_node *nd)
{
    size_t n = fg_var_numel(nd->out);
    const float *restrict gy = nd->out->grad, *restrict x = nd->in[0]->t.data;
    float *restrict ga = fg_grad(g, nd->in[0]);
    FG_FOR_SIMD(i, n, ga[i] += 2.0f * x[i] * gy[i]);
}

fg_var *fg_square(fg_graph *g, fg_var *a)
{
    FG_OP_BEGIN(g);
    return unary(g, "square", square_backward, a, fg_k_square);
}
