/* Adam (Kingma & Ba 2015, Algorithm 1) with bias correction. The element
 * update follows PyTorch's order of float32 operations (bias corrections in
 * double), so a reference run in PyTorch tracks ours closely. */
#include <math.h>
#include "nn/nn.h"
#include "tensor/parallel_internal.h"

void fg_adam_update(size_t n, float *p, const float *g, float *m, float *v,
                    double lr, double beta1, double beta2, double eps, long t)
{
    FG_CHECK(t >= 1, "fg_adam_update", "step %ld (first update is 1)", t);
    const float w1 = (float)(1.0 - beta1), b2 = (float)beta2, w2 = (float)(1.0 - beta2);
    const double bc1 = 1.0 - pow(beta1, (double)t);
    const double bc2 = 1.0 - pow(beta2, (double)t);
    const float step_size = (float)(lr / bc1);
    const float inv_bc2_sqrt = (float)(1.0 / sqrt(bc2));
    const float e = (float)eps;
    /* Element by element, so threads and vectors give the same bits. */
    FG_FOR_SIMD(i, n,
        m[i] += w1 * (g[i] - m[i]);
        v[i] = v[i] * b2 + w2 * g[i] * g[i];
        float denom = sqrtf(v[i]) * inv_bc2_sqrt + e;
        p[i] -= step_size * (m[i] / denom);
    );
}
