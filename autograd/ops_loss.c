/* Per-sample losses: cross-entropy of a log-softmax, and the log-density of
 * a diagonal Gaussian. */
#include "autograd/internal.h"
#include <math.h>

/* ------------------------------------------------------------- cross-entropy */
/* loss_n = logsumexp(z_n) - z_n[y_n]; d/dz = softmax(z_n) - onehot(y_n). */
static void xent_backward(fg_graph *g, fg_node *nd)
{
    fg_var *z = nd->in[0];
    int N = z->t.shape[0], K = z->t.shape[1];
    const int *labels = nd->saved;
    const float *lse = nd->out->t.data + N; /* stored after the losses */
    float *gz = fg_grad(g, z);
    for (int n = 0; n < N; n++) {
        float gy = nd->out->grad[n];
        const float *zn = z->t.data + (size_t)n * K;
        float *d = gz + (size_t)n * K;
        for (int k = 0; k < K; k++) d[k] += gy * expf(zn[k] - lse[n]);
        d[labels[n]] -= gy;
    }
}

fg_var *fg_log_softmax_cross_entropy(fg_graph *g, fg_var *logits, const int *labels)
{
    FG_OP_BEGIN(g);
    fg_require_ndim("log_softmax_cross_entropy", logits, 2);
    int N = logits->t.shape[0], K = logits->t.shape[1];
    /* One buffer holds the N losses followed by the N log-sum-exps that the
     * backward reuses; the visible tensor covers the losses only. */
    int twoN = 2 * N;
    fg_var *y = fg_var_new(g, 1, &twoN);
    y->t.shape[0] = N;
    int *saved = fg_arena_alloc(fg_graph_arena(g), (size_t)(N ? N : 1) * sizeof(int));
    for (int n = 0; n < N; n++) {
        FG_CHECK(labels[n] >= 0 && labels[n] < K, "log_softmax_cross_entropy",
                 "label %d of sample %d outside [0, %d)", labels[n], n, K);
        saved[n] = labels[n];
        const float *zn = logits->t.data + (size_t)n * K;
        float m = zn[0];
        for (int k = 1; k < K; k++) m = zn[k] > m ? zn[k] : m;
        double s = 0.0;
        for (int k = 0; k < K; k++) s += exp((double)zn[k] - m);
        float lse = (float)(m + log(s));
        y->t.data[N + n] = lse;
        y->t.data[n] = lse - zn[labels[n]];
    }
    fg_node *nd = fg_record(g, "log_softmax_cross_entropy", xent_backward, y, 1, logits, NULL, NULL);
    if (nd) nd->saved = saved;
    return y;
}

/* ------------------------------------------------------------- gaussian_logp */
/* logp_n = sum_i -0.5 (log 2pi + 2 s_i + (x_i - m_i)^2 exp(-2 s_i)) */
static void gaussian_backward(fg_graph *g, fg_node *nd)
{
    fg_var *x = nd->in[0], *m = nd->in[1], *s = nd->in[2];
    int N = x->t.shape[0];
    size_t D = fg_var_numel(x) / (size_t)(N ? N : 1);
    const float *X = x->t.data, *M = m->t.data, *S = s->t.data, *gy = nd->out->grad;
    float *gx = x->requires_grad ? fg_grad(g, x) : NULL;
    float *gm = m->requires_grad ? fg_grad(g, m) : NULL;
    float *gs = s->requires_grad ? fg_grad(g, s) : NULL;
    for (int n = 0; n < N; n++) {
        float w = gy[n];
        size_t o = (size_t)n * D;
        for (size_t i = o; i < o + D; i++) {
            float inv_var = expf(-2.0f * S[i]);
            float d = X[i] - M[i];
            float dx = -d * inv_var * w;        /* d logp / dx */
            if (gx) gx[i] += dx;
            if (gm) gm[i] -= dx;
            if (gs) gs[i] += (d * d * inv_var - 1.0f) * w;
        }
    }
}

fg_var *fg_gaussian_logp(fg_graph *g, fg_var *x, fg_var *mean, fg_var *logs)
{
    FG_OP_BEGIN(g);
    fg_require_same_shape("gaussian_logp", x, mean);
    fg_require_same_shape("gaussian_logp", x, logs);
    int N = x->t.shape[0];
    size_t D = fg_var_numel(x) / (size_t)(N ? N : 1);
    fg_var *y = fg_var_new(g, 1, &N);
    const double log2pi = 1.8378770664093453; /* log(2 pi) */
    const float *X = x->t.data, *M = mean->t.data, *S = logs->t.data;
    #pragma omp parallel for if ((size_t)N * D > FG_PARALLEL_THRESHOLD) schedule(static)
    for (int n = 0; n < N; n++) {
        double acc = 0.0;
        size_t o = (size_t)n * D;
        for (size_t i = o; i < o + D; i++) {
            double d = (double)X[i] - M[i];
            acc += -0.5 * (log2pi + 2.0 * S[i] + d * d * exp(-2.0 * (double)S[i]));
        }
        y->t.data[n] = (float)acc;
    }
    fg_record(g, "gaussian_logp", gaussian_backward, y, 3, x, mean, logs);
    return y;
}
