/* Reshape and space-to-depth. */
#include "autograd/internal.h"
#include <string.h>

/* ------------------------------------------------------------- reshape */
/* The output shares the input's values; gradients are separate buffers, so
 * the backward only adds one into the other. */
static void reshape_backward(fg_graph *g, fg_node *nd)
{
    float *gx = fg_grad(g, nd->in[0]);
    fg_k_add(fg_var_numel(nd->out), gx, nd->out->grad, gx);
}

fg_var *fg_reshape(fg_graph *g, fg_var *x, int ndim, const int *shape)
{
    FG_OP_BEGIN(g);
    size_t n = fg_shape_numel(ndim, shape);
    char sx[FG_SHAPE_STR_LEN];
    FG_CHECK(ndim >= 1 && ndim <= FG_MAX_DIMS && n == fg_var_numel(x), "reshape",
             "cannot view %s as %d dimensions with %zu elements",
             fg_shape_str(&x->t, sx, sizeof sx), ndim, n);
    fg_var *y = fg_const_wrap(g, x->t.data, ndim, shape);
    fg_record(g, "reshape", reshape_backward, y, 1, x, NULL, NULL);
    return y;
}

/* ------------------------------------------------------------- squeeze2d */
static void squeeze_backward(fg_graph *g, fg_node *nd)
{
    fg_var *x = nd->in[0];
    size_t n = fg_var_numel(x);
    float *t = fg_arena_alloc(fg_graph_arena(g), n * sizeof(float));
    const int *s = nd->out->t.shape;
    fg_k_unsqueeze2d(s[0], s[1], s[2], s[3], nd->out->grad, t);
    float *gx = fg_grad(g, x);
    fg_k_add(n, gx, t, gx);
}

fg_var *fg_squeeze2d(fg_graph *g, fg_var *x)
{
    FG_OP_BEGIN(g);
    fg_require_ndim("squeeze2d", x, 4);
    const int *s = x->t.shape;
    char sx[FG_SHAPE_STR_LEN];
    FG_CHECK(s[2] % 2 == 0 && s[3] % 2 == 0, "squeeze2d", "H and W of %s must be even",
             fg_shape_str(&x->t, sx, sizeof sx));
    int shape[4] = {s[0], s[1] * 4, s[2] / 2, s[3] / 2};
    fg_var *y = fg_var_new(g, 4, shape);
    fg_k_squeeze2d(s[0], s[1], s[2], s[3], x->t.data, y->t.data);
    fg_record(g, "squeeze2d", squeeze_backward, y, 1, x, NULL, NULL);
    return y;
}

/* ------------------------------------------------------------- unsqueeze2d */
static void unsqueeze_backward(fg_graph *g, fg_node *nd)
{
    fg_var *x = nd->in[0];
    size_t n = fg_var_numel(x);
    float *t = fg_arena_alloc(fg_graph_arena(g), n * sizeof(float));
    const int *s = nd->out->t.shape;
    fg_k_squeeze2d(s[0], s[1], s[2], s[3], nd->out->grad, t);
    float *gx = fg_grad(g, x);
    fg_k_add(n, gx, t, gx);
}

fg_var *fg_unsqueeze2d(fg_graph *g, fg_var *x)
{
    FG_OP_BEGIN(g);
    fg_require_ndim("unsqueeze2d", x, 4);
    const int *s = x->t.shape;
    char sx[FG_SHAPE_STR_LEN];
    FG_CHECK(s[1] % 4 == 0, "unsqueeze2d", "channels of %s must be a multiple of 4",
             fg_shape_str(&x->t, sx, sizeof sx));
    int shape[4] = {s[0], s[1] / 4, s[2] * 2, s[3] * 2};
    fg_var *y = fg_var_new(g, 4, shape);
    fg_k_unsqueeze2d(s[0], s[1], s[2], s[3], x->t.data, y->t.data);
    fg_record(g, "unsqueeze2d", unsqueeze_backward, y, 1, x, NULL, NULL);
    return y;
}
