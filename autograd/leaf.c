/* Leaves (heap variables that outlive a step) and arena constants. */
#include "autograd/internal.h"
#include <stdlib.h>
#include <string.h>

fg_var *fg_leaf_new(int ndim, const int *shape, int requires_grad)
{
    fg_var *v = fg_xcalloc(1, sizeof *v, "leaf variable");
    FG_CHECK(ndim >= 1 && ndim <= FG_MAX_DIMS, "leaf_new", "%d dimensions (1 to %d allowed)",
             ndim, FG_MAX_DIMS);
    v->t.ndim = ndim;
    for (int i = 0; i < ndim; i++) v->t.shape[i] = shape[i];
    size_t bytes = fg_numel(&v->t) * sizeof(float);
    v->t.data = fg_aligned_alloc(bytes ? bytes : sizeof(float), "leaf value");
    memset(v->t.data, 0, bytes);
    v->is_leaf = 1;
    v->requires_grad = requires_grad != 0;
    if (v->requires_grad)
        v->grad = fg_aligned_alloc(bytes ? bytes : sizeof(float), "leaf gradient");
    fg_zero_grad(v);
    return v;
}

void fg_leaf_free(fg_var *v)
{
    if (!v) return;
    FG_CHECK(v->is_leaf, "leaf_free", "not a leaf variable");
    fg_aligned_free(v->grad);
    fg_aligned_free(v->t.data);
    free(v);
}

void fg_zero_grad(fg_var *v)
{
    if (v->grad) memset(v->grad, 0, fg_var_numel(v) * sizeof(float));
}

fg_var *fg_const(fg_graph *g, int ndim, const int *shape)
{
    fg_var *v = fg_var_new(g, ndim, shape);
    memset(v->t.data, 0, fg_var_numel(v) * sizeof(float));
    return v;
}

fg_var *fg_const_wrap(fg_graph *g, float *data, int ndim, const int *shape)
{
    fg_var *v = fg_arena_calloc(fg_graph_arena(g), sizeof *v);
    v->t = fg_tensor_wrap(data, ndim, shape);
    return v;
}

fg_var *fg_const_scalar(fg_graph *g, float x)
{
    const int one = 1;
    fg_var *v = fg_var_new(g, 1, &one);
    v->t.data[0] = x;
    return v;
}

fg_var *fg_detach(fg_graph *g, fg_var *v)
{
    fg_var *d = fg_var_like(g, v);
    memcpy(d->t.data, v->t.data, fg_var_numel(v) * sizeof(float));
    return d;
}
