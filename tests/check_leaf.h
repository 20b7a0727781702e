/* Random leaves for the gradient checks, shared by tests/test_autograd.c
 * and tests/test_conv_chain.c. */
#ifndef FLOWGRAD_CHECK_LEAF_H
#define FLOWGRAD_CHECK_LEAF_H

#include <stddef.h>

#include "flowgrad.h"

/* A leaf that requires a gradient, its values drawn uniformly from
 * [lo, hi) by r. */
static inline fg_var *fg_test_uniform_leaf(fg_rng *r, int ndim, const int *shape, float lo,
                                           float hi)
{
    fg_var *v = fg_leaf_new(ndim, shape, 1);
    size_t n = fg_numel(&v->t);
    fg_rng_uniform(r, v->t.data, n);
    for (size_t i = 0; i < n; i++)
        v->t.data[i] = lo + (hi - lo) * v->t.data[i];
    return v;
}

#endif
