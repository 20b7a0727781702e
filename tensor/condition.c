/* The 1-norm condition number of a small float matrix, through its LU in
 * double: how many of float32's ~7 digits a product with its inverse
 * loses (about log10 of it). */
#include "tensor/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double norm_1(int n, const double *a)
{
    double best = 0;
    for (int j = 0; j < n; j++) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += fabs(a[(size_t)i * n + j]);
        if (s > best)
            best = s;
    }
    return best;
}

double fg_mat_condition_1(int n, const float *w)
{
    size_t nn = (size_t)n * n;
    double *a = fg_xmalloc(2 * nn * sizeof *a, "condition estimate");
    double *inv = a + nn;
    for (size_t i = 0; i < nn; i++)
        a[i] = w[i];
    double cond = INFINITY;
    /* The inverse of a singular W reports an error we do not want to keep:
     * singular is the answer here. */
    char saved[512];
    snprintf(saved, sizeof saved, "%s", fg_last_error());
    if (fg_mat_inverse(n, a, inv) == FG_OK) {
        double c = norm_1(n, a) * norm_1(n, inv);
        if (isfinite(c))
            cond = c;
    } else {
        fg_error("%s", saved);
    }
    free(a);
    return cond;
}
