/* Binary elementwise ops. b has a's shape, or one element (broadcast). */
#include "autograd/internal.h"

static int broadcast_b(const char *op, const fg_var *a, const fg_var *b)
{
    if (fg_var_numel(b) == 1 && fg_var_numel(a) != 1) return 1;
    fg_require_same_shape(op, a, b);
    return 0;
}

/* Gradient of a broadcast scalar: the sum of what reaches it. */
static void acc_b(fg_graph *g, fg_var *b, int bc, size_t n, const float *d)
{
    float *gb = fg_grad(g, b);
    if (bc) gb[0] += (float)fg_k_sum(n, d);
    else fg_k_add(n, gb, d, gb);
}

static float *tmp(fg_graph *g, size_t n)
{
    return fg_arena_alloc(fg_graph_arena(g), n * sizeof(float));
}

/* ------------------------------------------------------------- add */
static void add_backward(fg_graph *g, fg_node *nd)
{
    fg_var *a = nd->in[0], *b = nd->in[1];
    size_t n = fg_var_numel(nd->out);
    const float *gy = nd->out->grad;
    if (a->requires_grad) { float *ga = fg_grad(g, a); fg_k_add(n, ga, gy, ga); }
    if (b->requires_grad) acc_b(g, b, nd->i[0], n, gy);
}

fg_var *fg_add(fg_graph *g, fg_var *a, fg_var *b)
{
    FG_OP_BEGIN(g);
    int bc = broadcast_b("add", a, b);
    fg_var *y = fg_var_like(g, a);
    size_t n = fg_var_numel(a);
    if (bc) fg_k_add_scalar(n, b->t.data[0], a->t.data, y->t.data);
    else fg_k_add(n, a->t.data, b->t.data, y->t.data);
    fg_node *nd = fg_record(g, "add", add_backward, y, 2, a, b, NULL);
    if (nd) nd->i[0] = bc;
    return y;
}

/* ------------------------------------------------------------- sub */
static void sub_backward(fg_graph *g, fg_node *nd)
{
    fg_var *a = nd->in[0], *b = nd->in[1];
    size_t n = fg_var_numel(nd->out);
    const float *gy = nd->out->grad;
    if (a->requires_grad) { float *ga = fg_grad(g, a); fg_k_add(n, ga, gy, ga); }
    if (b->requires_grad) {
        float *d = tmp(g, n);
        fg_k_scale(n, -1.0f, gy, d);
        acc_b(g, b, nd->i[0], n, d);
    }
}

fg_var *fg_sub(fg_graph *g, fg_var *a, fg_var *b)
{
    FG_OP_BEGIN(g);
    int bc = broadcast_b("sub", a, b);
    fg_var *y = fg_var_like(g, a);
    size_t n = fg_var_numel(a);
    if (bc) fg_k_add_scalar(n, -b->t.data[0], a->t.data, y->t.data);
    else fg_k_sub(n, a->t.data, b->t.data, y->t.data);
    fg_node *nd = fg_record(g, "sub", sub_backward, y, 2, a, b, NULL);
    if (nd) nd->i[0] = bc;
    return y;
}

/* ------------------------------------------------------------- mul */
static void mul_backward(fg_graph *g, fg_node *nd)
{
    fg_var *a = nd->in[0], *b = nd->in[1];
    size_t n = fg_var_numel(nd->out);
    const float *gy = nd->out->grad;
    int bc = nd->i[0];
    if (a->requires_grad) {
        float *ga = fg_grad(g, a);
        if (bc) fg_k_axpy(n, b->t.data[0], gy, ga);
        else fg_k_mul_acc(n, gy, b->t.data, ga);
    }
    if (b->requires_grad) {
        float *d = tmp(g, n);
        fg_k_mul(n, gy, a->t.data, d);
        acc_b(g, b, bc, n, d);
    }
}

fg_var *fg_mul(fg_graph *g, fg_var *a, fg_var *b)
{
    FG_OP_BEGIN(g);
    int bc = broadcast_b("mul", a, b);
    fg_var *y = fg_var_like(g, a);
    size_t n = fg_var_numel(a);
    if (bc) fg_k_scale(n, b->t.data[0], a->t.data, y->t.data);
    else fg_k_mul(n, a->t.data, b->t.data, y->t.data);
    fg_node *nd = fg_record(g, "mul", mul_backward, y, 2, a, b, NULL);
    if (nd) nd->i[0] = bc;
    return y;
}

/* ------------------------------------------------------------- div */
/* y = a / b: da = gy / b, db = -gy y / b. */
static void div_backward(fg_graph *g, fg_node *nd)
{
    fg_var *a = nd->in[0], *b = nd->in[1], *y = nd->out;
    size_t n = fg_var_numel(y);
    const float *gy = y->grad;
    int bc = nd->i[0];
    float *q = tmp(g, n);           /* gy / b */
    if (bc) fg_k_scale(n, 1.0f / b->t.data[0], gy, q);
    else fg_k_div(n, gy, b->t.data, q);
    if (a->requires_grad) { float *ga = fg_grad(g, a); fg_k_add(n, ga, q, ga); }
    if (b->requires_grad) {
        float *d = tmp(g, n);
        fg_k_mul(n, q, y->t.data, d);
        fg_k_scale(n, -1.0f, d, d);
        acc_b(g, b, bc, n, d);
    }
}

fg_var *fg_div(fg_graph *g, fg_var *a, fg_var *b)
{
    FG_OP_BEGIN(g);
    int bc = broadcast_b("div", a, b);
    fg_var *y = fg_var_like(g, a);
    size_t n = fg_var_numel(a);
    if (bc) fg_k_scale(n, 1.0f / b->t.data[0], a->t.data, y->t.data);
    else fg_k_div(n, a->t.data, b->t.data, y->t.data);
    fg_node *nd = fg_record(g, "div", div_backward, y, 2, a, b, NULL);
    if (nd) nd->i[0] = bc;
    return y;
}
