/* What loaded layer state must hold for the layers to run: permutations,
 * LU signs, invertible 1x1 convolutions. Loaders call these on values from
 * outside before any op sees them, so the layers' own stops (fg_fatal on a
 * broken permutation, on a singular matrix) stay internal invariants. */
#include "flows/layer.h"
#include "tensor/alloc_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

const char *fg_value_text(double v, char *buf, size_t n)
{
    if (isnan(v))
        snprintf(buf, n, "NaN");
    else if (isinf(v))
        snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
    else
        snprintf(buf, n, "%.9g", v);
    return buf;
}

int fg_flow_check_permutation(const char *what, const float *v, int64_t n)
{
    char a[32];
    if (n <= 0)
        return FG_OK;
    /* Where each value was first seen, so a repeat names both entries. */
    int64_t *first = fg_try_malloc((size_t)n * sizeof *first);
    if (!first)
        return fg_error("%s: cannot allocate %zu bytes to check the permutation", what,
                        (size_t)n * sizeof *first);
    for (int64_t i = 0; i < n; i++)
        first[i] = -1;
    int rc = FG_OK;
    for (int64_t i = 0; i < n && rc == FG_OK; i++) {
        double x = v[i];
        /* Range first: casting a float outside int64's range is undefined. */
        if (!(x >= 0 && x < (double)n) || x != floor(x)) {
            rc = fg_error("%s holds %s at index %lld; expected a permutation of 0..%lld "
                          "(each whole number once)", what, fg_value_text(x, a, sizeof a),
                          (long long)i, (long long)(n - 1));
        } else if (first[(int64_t)x] >= 0) {
            rc = fg_error("%s holds %lld at index %lld and at index %lld; expected a "
                          "permutation of 0..%lld (each whole number once)", what,
                          (long long)x, (long long)first[(int64_t)x], (long long)i,
                          (long long)(n - 1));
        } else {
            first[(int64_t)x] = i;
        }
    }
    free(first);
    return rc;
}

int fg_flow_check_signs(const char *what, const float *v, int64_t n)
{
    char a[32];
    for (int64_t i = 0; i < n; i++)
        if (v[i] != 1.0f && v[i] != -1.0f)
            return fg_error("%s holds %s at index %lld; expected +1 or -1 (the signs of the "
                            "LU diagonal; 0 makes W singular)", what,
                            fg_value_text(v[i], a, sizeof a), (long long)i);
    return FG_OK;
}

int fg_flow_check_invertible(fg_flow *f, const char *prefix)
{
    return f->ops->check_state ? f->ops->check_state(f, prefix) : FG_OK;
}
