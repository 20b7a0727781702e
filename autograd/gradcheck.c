/* Gradient checks: every element by central differences, or one random
 * direction for whole models. */
#include "autograd/internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double eval(fg_graph *g, fg_loss_fn fn, void *ctx)
{
    fg_graph_reset(g);
    int was = fg_set_grad_enabled(g, 0);
    fg_var *y = fn(g, ctx);
    double v = y->t.data[0];
    fg_set_grad_enabled(g, was);
    fg_graph_reset(g);
    return v;
}

/* Runs fn once with gradients and returns copies of every leaf's gradient. */
static float **analytic(fg_graph *g, fg_loss_fn fn, void *ctx, fg_var **leaves, int n)
{
    for (int l = 0; l < n; l++) fg_zero_grad(leaves[l]);
    fg_graph_reset(g);
    int was = fg_set_grad_enabled(g, 1);
    fg_backward(g, fn(g, ctx));
    fg_set_grad_enabled(g, was);
    fg_graph_reset(g);
    float **out = fg_xcalloc((size_t)n, sizeof *out, "gradcheck");
    for (int l = 0; l < n; l++) {
        size_t m = fg_var_numel(leaves[l]);
        FG_CHECK(leaves[l]->grad, "gradcheck", "leaf %d does not require a gradient", l);
        out[l] = fg_xmalloc(m * sizeof(float) + 1, "gradcheck");
        memcpy(out[l], leaves[l]->grad, m * sizeof(float));
    }
    return out;
}

static void free_grads(float **gr, int n)
{
    for (int l = 0; l < n; l++) free(gr[l]);
    free(gr);
}

int fg_gradcheck(fg_graph *g, fg_loss_fn fn, void *ctx, fg_var **leaves, int n_leaves,
                 double eps, double atol, double rtol, fg_gradcheck_result *res)
{
    fg_gradcheck_result r = {0};
    r.worst_leaf = r.worst_index = -1;
    float **ga = analytic(g, fn, ctx, leaves, n_leaves);
    double worst = -1.0;
    for (int l = 0; l < n_leaves; l++) {
        float *p = leaves[l]->t.data;
        size_t m = fg_var_numel(leaves[l]);
        for (size_t i = 0; i < m; i++) {
            float saved = p[i];
            p[i] = (float)(saved + eps);
            double fp = eval(g, fn, ctx);
            p[i] = (float)(saved - eps);
            double fm = eval(g, fn, ctx);
            /* The step actually taken in float, not the nominal one. */
            double h = (double)(float)(saved + eps) - (double)(float)(saved - eps);
            p[i] = saved;
            double num = (fp - fm) / h, an = ga[l][i];
            double abs_err = fabs(an - num);
            double rel = abs_err / fmax(fmax(fabs(an), fabs(num)), 1e-3);
            double excess = abs_err - (atol + rtol * fabs(num));
            r.n_checked++;
            if (excess > 0) r.n_failed++;
            if (abs_err > r.max_abs_err) r.max_abs_err = abs_err;
            if (rel > r.max_rel_err) r.max_rel_err = rel;
            if (excess > worst) { worst = excess; r.worst_leaf = l; r.worst_index = (int)i; }
        }
    }
    free_grads(ga, n_leaves);
    if (res) *res = r;
    return r.n_failed == 0;
}

static double check_direction(fg_graph *g, fg_loss_fn fn, void *ctx, fg_var **leaves,
                              int n_leaves, double eps, fg_rng *rng, int toward_gradient,
                              double *analytic_out, double *numeric_out);

double fg_gradcheck_direction(fg_graph *g, fg_loss_fn fn, void *ctx, fg_var **leaves,
                              int n_leaves, double eps, fg_rng *rng, double *analytic_out,
                              double *numeric_out)
{
    return check_direction(g, fn, ctx, leaves, n_leaves, eps, rng, 0, analytic_out,
                           numeric_out);
}

double fg_gradcheck_direction_mixed(fg_graph *g, fg_loss_fn fn, void *ctx, fg_var **leaves,
                                    int n_leaves, double eps, fg_rng *rng,
                                    double *analytic_out, double *numeric_out)
{
    return check_direction(g, fn, ctx, leaves, n_leaves, eps, rng, 1, analytic_out,
                           numeric_out);
}

static double check_direction(fg_graph *g, fg_loss_fn fn, void *ctx, fg_var **leaves,
                              int n_leaves, double eps, fg_rng *rng, int toward_gradient,
                              double *analytic_out, double *numeric_out)
{
    float **ga = analytic(g, fn, ctx, leaves, n_leaves);
    float **u = fg_xcalloc((size_t)n_leaves, sizeof *u, "gradcheck");
    float **saved = fg_xcalloc((size_t)n_leaves, sizeof *saved, "gradcheck");
    double an = 0.0, norm = 0.0;
    for (int l = 0; l < n_leaves; l++) {
        size_t m = fg_var_numel(leaves[l]);
        u[l] = fg_xmalloc(m * sizeof(float) + 1, "gradcheck");
        saved[l] = fg_xmalloc(m * sizeof(float) + 1, "gradcheck");
        fg_rng_normal(rng, u[l], m);
        memcpy(saved[l], leaves[l]->t.data, m * sizeof(float));
        norm += fg_k_dot(m, u[l], u[l]);
    }
    if (toward_gradient) {
        /* u = r/|r| + g/|g|, normalized below: equal parts random and
         * analytic-gradient direction. */
        double gnorm = 0.0;
        for (int l = 0; l < n_leaves; l++)
            gnorm += fg_k_dot(fg_var_numel(leaves[l]), ga[l], ga[l]);
        double rs = norm > 0 ? 1.0 / sqrt(norm) : 0.0, gs = gnorm > 0 ? 1.0 / sqrt(gnorm) : 0.0;
        norm = 0.0;
        for (int l = 0; l < n_leaves; l++) {
            size_t m = fg_var_numel(leaves[l]);
            for (size_t i = 0; i < m; i++) u[l][i] = (float)(rs * u[l][i] + gs * ga[l][i]);
            norm += fg_k_dot(m, u[l], u[l]);
        }
    }
    /* A unit direction keeps the step size meaningful for any model size. */
    double inv = norm > 0 ? 1.0 / sqrt(norm) : 0.0;
    for (int l = 0; l < n_leaves; l++) {
        size_t m = fg_var_numel(leaves[l]);
        fg_k_scale(m, (float)inv, u[l], u[l]);
        an += fg_k_dot(m, ga[l], u[l]);
    }
    double f[2];
    for (int side = 0; side < 2; side++) {
        double s = side == 0 ? eps : -eps;
        for (int l = 0; l < n_leaves; l++) {
            size_t m = fg_var_numel(leaves[l]);
            for (size_t i = 0; i < m; i++) leaves[l]->t.data[i] = (float)(saved[l][i] + s * u[l][i]);
        }
        f[side] = eval(g, fn, ctx);
    }
    for (int l = 0; l < n_leaves; l++)
        memcpy(leaves[l]->t.data, saved[l], fg_var_numel(leaves[l]) * sizeof(float));
    double num = (f[0] - f[1]) / (2.0 * eps);
    free_grads(ga, n_leaves);
    free_grads(u, n_leaves);
    free_grads(saved, n_leaves);
    if (analytic_out) *analytic_out = an;
    if (numeric_out) *numeric_out = num;
    return fabs(an - num) / fmax(fmax(fabs(an), fabs(num)), 1e-12);
}
