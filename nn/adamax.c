/* Adamax (Kingma & Ba 2015, Algorithm 2): Adam with the infinity norm in
 * place of the second moment. Only the first moment needs bias correction.
 * eps sits inside the max, u = max(beta2 u, |g| + eps), as in PyTorch, so a
 * parameter whose gradient has always been zero is not divided by zero. */
#include <math.h>
#include "nn/nn.h"

void fg_adamax_update(size_t n, float *p, const float *g, float *m, float *u,
                      double lr, double beta1, double beta2, double eps, long t)
{
    FG_CHECK(t >= 1, "fg_adamax_update", "step %ld (first update is 1)", t);
    const float w1 = (float)(1.0 - beta1), b2 = (float)beta2, e = (float)eps;
    const float clr = (float)(lr / (1.0 - pow(beta1, (double)t)));
    #pragma omp parallel for if (n > FG_PARALLEL_THRESHOLD)
    for (size_t i = 0; i < n; i++) {
        m[i] += w1 * (g[i] - m[i]);
        u[i] = fmaxf(u[i] * b2, fabsf(g[i]) + e);
        p[i] -= clr * (m[i] / u[i]);
    }
}
