/* Training memory by inversion: the gradient of a multi-scale chain
 * without storing its activations.
 *
 * Every layer of the chain is invertible, so its input can be computed
 * again from its output instead of being kept for the backward pass.
 * fg_multiscale_encode_invert runs the chain forward unit by unit without a
 * tape (flows/multiscale_units.c: each unit's intermediates are given back
 * as soon as its output is copied out), keeping only what the rest of the
 * loss and the inversion need: the top latent, the split-off latents and
 * the per-sample sums of log-determinants and split log-densities. One
 * custom autograd op (fg_custom_op) stands for the whole chain on the tape;
 * the prior, the class head and the loss are recorded after it as usual.
 *
 * When the reverse pass reaches that op, it holds the gradients of the top
 * latent, of the two sums and of any latent used outside. It walks the
 * units from the top down, and for each one, between a graph mark and a
 * rewind:
 *   1. computes the unit's input from its output with the unit's inverse
 *      (a split takes back the latent it produced), without a tape;
 *   2. runs the unit forward again from that input with the tape on (a
 *      coupling does 1 and 2 with one run of its network, see
 *      fg_flow_ops.invert_record: its conditioning half is the same on
 *      both sides);
 *   3. seeds the unit's output with the gradient held for it and its
 *      log-determinant and split log-density with those of the sums, and
 *      walks the unit's nodes only (fg_backward_since): the parameters'
 *      gradients accumulate, and the input's gradient is what the unit
 *      below receives;
 *   4. copies the input and its gradient into two buffers of the chain's
 *      width and rewinds, so the next unit reuses the same memory.
 * The peak is then the largest unit's recorded graph plus a few tensors of
 * the chain's width, instead of every unit's graph at once.
 *
 * The unit is one layer (actnorm, invconv, coupling, split, ...), not a
 * Glow step of three: the coupling's network dominates a step's graph
 * (hidden-width activations against the chain's few channels), so a step
 * as the unit would peak at nearly the same size, while the layer is what
 * every flow of the YAML layer list is made of, RealNVP and NICE included.
 * The inversions cost the same either way: each layer's inverse runs once.
 *
 * Inverses are exact in arithmetic, not in float32: the recomputed input
 * differs from the forward's by rounding, and the difference is carried
 * down the chain. fg_invert_stats reports it for each backward: the
 * largest |x recomputed - x| over the units' inputs, compared at
 * FG_UNIT_PROBES evenly spaced values of each (the forward keeps those,
 * 1 KiB a unit, where keeping every input would cost what inversion
 * saves) and at every value of the chain's input, where all the units'
 * errors have arrived; and the largest round-trip residual
 * |f(f^-1(z)) - z| of a single unit. Measured (BENCHMARKS.md, "Memory by
 * inversion"), both stay at float rounding, around 1e-6. */
#include "flows/units.h"

#include <math.h>
#include <string.h>

typedef struct invert_op {
    fg_unit_plan plan;
    fg_var *x;               /* the chain's input */
    fg_var **outs;           /* top, logdet sum, split logp sum, latents... */
    int n_outs;
    fg_invert_stats *stats;  /* may be NULL */
    float *probes;           /* FG_UNIT_PROBES forward values of each unit's output */
} invert_op;

enum { OUT_TOP = 0, OUT_LOGDET, OUT_LOGP, OUT_LATENTS };

/* The larger of two error figures, NaN counting as larger than any (and
 * staying once met), so a broken inversion is never reported as small. */
static double worst(double a, double b)
{
    return isnan(a) || b <= a ? a : b;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = worst(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

/* Appends (v, g) to the seeds of a unit's backward when both exist. */
static int seed(fg_var **vars, const float **grads, int n, fg_var *v, const float *g)
{
    if (v && g) {
        vars[n] = v;
        grads[n] = g;
        n++;
    }
    return n;
}

static void backward(fg_graph *g, void *vctx, fg_var **outs, int n_outs)
{
    invert_op *op = vctx;
    const fg_unit_plan *p = &op->plan;
    (void)n_outs;
    /* The input's gradient buffer, before the mark: it outlives this rule. */
    if (op->x->requires_grad && !op->x->grad)
        op->x->grad = fg_arena_calloc(fg_graph_arena(g), fg_numel(&op->x->t) * sizeof(float));
    /* Likewise the condition's: every unit's backward adds to it. */
    fg_var *cond = p->condition;
    if (cond && cond->requires_grad && !cond->grad)
        cond->grad = fg_arena_calloc(fg_graph_arena(g), fg_numel(&cond->t) * sizeof(float));
    fg_graph_mark start = fg_graph_mark_now(g);
    fg_arena *a = fg_graph_arena(g);
    size_t width = p->max_numel;
    float *val[2], *grad[2];
    for (int i = 0; i < 2; i++) {
        val[i] = fg_arena_alloc(a, width * sizeof(float));
        grad[i] = fg_arena_alloc(a, width * sizeof(float));
    }
    fg_var *top = outs[OUT_TOP];
    size_t top_n = fg_numel(&top->t);
    memcpy(val[0], top->t.data, top_n * sizeof(float));
    if (top->grad)
        memcpy(grad[0], top->grad, top_n * sizeof(float));
    else
        memset(grad[0], 0, top_n * sizeof(float));
    const float *g_logdet = outs[OUT_LOGDET]->grad;
    const float *g_logp = outs[OUT_LOGP]->grad;
    double residual = 0, drift = 0;
    int was = fg_set_grad_enabled(g, 1);
    int cur = 0;
    for (int i = p->n - 1; i >= 0; i--) {
        const fg_unit *u = &p->units[i];
        fg_graph_mark m = fg_graph_mark_now(g);
        fg_var *z = fg_const_wrap(g, val[cur], u->out.ndim, u->out.dim);
        /* the split-off latent goes back to the inverse */
        fg_flow_ctx ictx;
        fg_flow_ctx_init(&ictx);
        ictx.condition = p->condition;
        fg_var *latent = u->latent >= 0 ? outs[OUT_LATENTS + u->latent] : NULL;
        if (latent)
            fg_flow_ctx_push(&ictx, fg_const_wrap(g, latent->t.data, latent->t.ndim,
                                                  latent->t.shape));
        /* 1-2. the input again, and the unit's graph recorded from it */
        fg_flow_ctx fctx;
        fg_flow_ctx_init(&fctx);
        fctx.condition = p->condition;
        fg_var *ld = NULL, *xv = NULL, *y = NULL;
        if (u->f->ops->invert_record)
            y = u->f->ops->invert_record(u->f, g, z, &xv, &ld, &fctx);
        if (!y) {
            fg_var *xr = fg_flow_inverse(u->f, g, z, NULL, &ictx);
            xv = fg_const_wrap(g, xr->t.data, u->in.ndim, u->in.dim);
            xv->requires_grad = 1;
            y = fg_flow_forward(u->f, g, xv, &ld, &fctx);
        }
        /* the drift: against the forward's values kept at the probes */
        size_t in_n = fg_flow_shape_numel(&u->in);
        for (int k = 0; i > 0 && k < FG_UNIT_PROBES; k++) {
            size_t at = fg_unit_probe_index(k, in_n);
            drift = worst(drift, fabs((double)xv->t.data[at] -
                                      op->probes[(size_t)(i - 1) * FG_UNIT_PROBES + k]));
        }
        residual = worst(residual,
                         max_abs_diff(y->t.data, val[cur], fg_flow_shape_numel(&u->out)));
        /* 3. its gradients, from what is held for its outputs */
        fg_var *seeded[4];
        const float *seeds[4];
        int n = 0;
        n = seed(seeded, seeds, n, y, grad[cur]);
        n = seed(seeded, seeds, n, ld, g_logdet);
        n = seed(seeded, seeds, n, fctx.logp, g_logp);
        if (latent)
            n = seed(seeded, seeds, n, fctx.latents[0], latent->grad);
        fg_backward_since(g, &m, seeded, seeds, n);
        /* 4. input and gradient into the other buffers, then rewind */
        memcpy(val[1 - cur], xv->t.data, in_n * sizeof(float));
        if (xv->grad)
            memcpy(grad[1 - cur], xv->grad, in_n * sizeof(float));
        else
            memset(grad[1 - cur], 0, in_n * sizeof(float));
        fg_graph_rewind(g, &m);
        cur = 1 - cur;
    }
    fg_set_grad_enabled(g, was);
    size_t x_n = fg_numel(&op->x->t);
    drift = worst(drift, max_abs_diff(val[cur], op->x->t.data, x_n));
    if (op->x->requires_grad)
        for (size_t k = 0; k < x_n; k++)
            op->x->grad[k] += grad[cur][k];
    if (op->stats) {
        op->stats->drift = drift;
        op->stats->residual = residual;
        op->stats->units = p->n;
        op->stats->backwards++;
    }
    fg_graph_rewind(g, &start);
}

int fg_multiscale_encode_invert(fg_multiscale *m, fg_graph *g, fg_var *x, const int *y,
                                fg_var **latents, fg_var **logp, fg_invert_stats *stats)
{
    return fg_multiscale_encode_invert_cond(m, g, x, y, NULL, latents, logp, stats);
}

int fg_multiscale_encode_invert_cond(fg_multiscale *m, fg_graph *g, fg_var *x, const int *y,
                                     fg_var *condition, fg_var **latents, fg_var **logp,
                                     fg_invert_stats *stats)
{
    if (!fg_grad_enabled(g))
        return fg_multiscale_encode_cond(m, g, x, y, condition, latents, logp);
    fg_multiscale_require_condition(m, condition);
    invert_op *op = fg_arena_calloc(fg_graph_arena(g), sizeof *op);
    fg_flow_shape in = fg_flow_shape_of(x);
    fg_unit_plan_make(g, m->body, &in, &op->plan);
    /* Each unit sees the condition in the forward and again when its
     * backward records it, so the recorded unit is the one that ran. */
    op->plan.condition = condition;
    FG_CHECK(op->plan.n_latents + 1 == m->n_latents, "multiscale",
             "the chain splits off %d latents, expected %d", op->plan.n_latents,
             m->n_latents - 1);
    op->probes = fg_arena_alloc(fg_graph_arena(g), (size_t)(op->plan.n ? op->plan.n : 1) *
                                                       FG_UNIT_PROBES * sizeof(float));
    fg_unit_values v;
    fg_units_forward_probed(g, &op->plan, x, 1, &v, op->probes);
    op->x = x;
    op->stats = stats;
    op->n_outs = OUT_LATENTS + op->plan.n_latents;
    op->outs = fg_arena_alloc(fg_graph_arena(g), (size_t)op->n_outs * sizeof *op->outs);
    op->outs[OUT_TOP] = v.top;
    op->outs[OUT_LOGDET] = v.logdet;
    op->outs[OUT_LOGP] = v.logp;
    for (int k = 0; k < op->plan.n_latents; k++)
        op->outs[OUT_LATENTS + k] = v.latents[k];
    fg_custom_op(g, "invertible chain", op->outs, op->n_outs, backward, op);
    fg_multiscale_collect(m, &v, latents);
    if (logp)
        *logp = fg_multiscale_log_density(m, g, v.top, y, condition,
                                          op->plan.n_latents ? v.logp : NULL, v.logdet);
    return m->n_latents;
}
