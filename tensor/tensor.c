/* Tensor creation and shape helpers. */
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_shape(const char *op, int ndim, const int *shape)
{
    FG_CHECK(ndim >= 0 && ndim <= FG_MAX_DIMS, op, "ndim %d outside 0..%d", ndim, FG_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        FG_CHECK(shape[i] >= 0, op, "negative extent %d in dimension %d", shape[i], i);
}

size_t fg_shape_numel(int ndim, const int *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    return n;
}

size_t fg_numel(const fg_tensor *t)
{
    return fg_shape_numel(t->ndim, t->shape);
}

int fg_same_shape(const fg_tensor *a, const fg_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

const char *fg_shape_str(const fg_tensor *t, char *buf, size_t n)
{
    size_t len = 0;
    if (n == 0)
        return buf;
    buf[0] = '\0';
    len += snprintf(buf + len, n - len, "(");
    for (int i = 0; i < t->ndim && len < n; i++)
        len += snprintf(buf + len, n - len, i ? ", %d" : "%d", t->shape[i]);
    if (len < n)
        snprintf(buf + len, n - len, ")");
    return buf;
}

static void set_shape(fg_tensor *t, int ndim, const int *shape)
{
    t->ndim = ndim;
    for (int i = 0; i < FG_MAX_DIMS; i++)
        t->shape[i] = i < ndim ? shape[i] : 1;
}

fg_tensor *fg_tensor_new(int ndim, const int *shape)
{
    check_shape("tensor_new", ndim, shape);
    fg_tensor *t = fg_xmalloc(sizeof *t, "tensor");
    size_t n = fg_shape_numel(ndim, shape);
    set_shape(t, ndim, shape);
    t->data = fg_aligned_alloc(n * sizeof(float), "tensor data");
    memset(t->data, 0, n * sizeof(float));
    t->owns = 1;
    return t;
}

fg_tensor *fg_tensor_new4(int n, int c, int h, int w)
{
    int shape[4] = {n, c, h, w};
    return fg_tensor_new(4, shape);
}

fg_tensor *fg_tensor_clone(const fg_tensor *t)
{
    fg_tensor *c = fg_tensor_new(t->ndim, t->shape);
    memcpy(c->data, t->data, fg_numel(t) * sizeof(float));
    return c;
}

void fg_tensor_free(fg_tensor *t)
{
    if (!t)
        return;
    if (t->owns)
        fg_aligned_free(t->data);
    free(t);
}

fg_tensor *fg_tensor_arena(fg_arena *a, int ndim, const int *shape)
{
    check_shape("tensor_arena", ndim, shape);
    fg_tensor *t = fg_arena_alloc(a, sizeof *t);
    set_shape(t, ndim, shape);
    t->data = fg_arena_alloc(a, fg_shape_numel(ndim, shape) * sizeof(float));
    t->owns = 0;
    return t;
}

fg_tensor fg_tensor_wrap(float *data, int ndim, const int *shape)
{
    fg_tensor t;
    check_shape("tensor_wrap", ndim, shape);
    set_shape(&t, ndim, shape);
    t.data = data;
    t.owns = 0;
    return t;
}

void fg_tensor_zero(fg_tensor *t)
{
    memset(t->data, 0, fg_numel(t) * sizeof(float));
}

void fg_tensor_fill(fg_tensor *t, float v)
{
    fg_k_fill(fg_numel(t), v, t->data);
}

void fg_tensor_copy(fg_tensor *dst, const fg_tensor *src)
{
    size_t n = fg_numel(src);
    if (fg_numel(dst) != n) {
        char a[FG_SHAPE_STR_LEN], b[FG_SHAPE_STR_LEN];
        fg_fatal("tensor_copy", "destination %s and source %s differ in size",
                 fg_shape_str(dst, a, sizeof a), fg_shape_str(src, b, sizeof b));
    }
    if (dst->data != src->data)
        memcpy(dst->data, src->data, n * sizeof(float));
}
