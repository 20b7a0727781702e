/* The map of a coupling's changing part, written once for every layer that
 * conditions an elementwise transform on a network's output: the conv and
 * dense couplings and the autoregressive layers.
 *
 *   additive  y = v + h                       (h: one channel per entry)
 *   affine    y = (v + shift) e^logscale      (h: shift, raw log-scale
 *             interleaved), log-scale log sigmoid(r + 2) or tanh(r)
 *   spline    y = s(v), the rational-quadratic spline of h's 3K - 1
 *             channels per entry (autograd/ops_spline.c)
 *
 * Glow's own case, the sigmoid bound with no mask, is one fused op; the
 * masked and tanh-bounded variants are composed from elementwise ops. */
#include "flows/layer.h"

#include <math.h>
#include <stdio.h>

int fg_coupling_map_init(fg_coupling_map *m, const char *kind, fg_transform_kind t,
                         fg_coupling_scale scale, int bins, float bound)
{
    if ((int)t < 0 || t > FG_TRANSFORM_SPLINE)
        return fg_error("%s: unknown transform %d (expected additive, affine or spline)",
                        kind, (int)t);
    if ((int)scale < 0 || scale > FG_COUPLING_SCALE_TANH)
        return fg_error("%s: unknown scale bound %d (expected sigmoid or tanh)", kind,
                        (int)scale);
    if (t == FG_TRANSFORM_SPLINE && (bins < 2 || bins > FG_RQ_MAX_BINS))
        return fg_error("%s: a spline needs 2..%d bins, got %d", kind, FG_RQ_MAX_BINS, bins);
    if (t == FG_TRANSFORM_SPLINE && !(bound > 0.0f && isfinite(bound)))
        return fg_error("%s: a spline needs a positive, finite bound, got %g", kind,
                        (double)bound);
    m->kind = t;
    m->scale = scale;
    m->spline.bins = t == FG_TRANSFORM_SPLINE ? bins : 0;
    m->spline.bound = t == FG_TRANSFORM_SPLINE ? bound : 0.0f;
    return FG_OK;
}

int fg_coupling_map_width(const fg_coupling_map *m)
{
    switch (m->kind) {
    case FG_TRANSFORM_ADDITIVE: return 1;
    case FG_TRANSFORM_AFFINE: return 2;
    case FG_TRANSFORM_SPLINE: return fg_rq_spline_params(&m->spline);
    }
    fg_fatal("coupling_map", "unknown transform %d", (int)m->kind);
}

/* tanh(a) = 2 sigmoid(2a) - 1, from ops that already have backward rules. */
static fg_var *tanh_of(fg_graph *g, fg_var *a)
{
    return fg_add_scalar(g, fg_scale(g, fg_sigmoid(g, fg_scale(g, a, 2.0f)), 2.0f), -1.0f);
}

static fg_var *affine(fg_graph *g, const fg_coupling_map *m, fg_var *v, fg_var *h,
                      fg_var *change, int dir, fg_var **lad_sum)
{
    if (!change && m->scale == FG_COUPLING_SCALE_SIGMOID)
        return fg_affine_coupling(g, v, h, dir, lad_sum);
    fg_var *shift = fg_channel_even(g, h), *r = fg_channel_odd(g, h);
    fg_var *logscale = m->scale == FG_COUPLING_SCALE_TANH
                           ? tanh_of(g, r) : fg_log_sigmoid(g, fg_add_scalar(g, r, 2.0f));
    if (change) {
        shift = fg_mul(g, shift, change);
        logscale = fg_mul(g, logscale, change);
    }
    if (lad_sum)
        *lad_sum = fg_sum_per_sample(g, logscale);
    if (dir > 0)
        return fg_mul(g, fg_add(g, v, shift), fg_exp(g, logscale));
    return fg_sub(g, fg_mul(g, v, fg_exp(g, fg_neg(g, logscale))), shift);
}

void fg_coupling_map_check_input(const fg_coupling_map *m, const char *layer,
                                 const fg_var *x)
{
    const size_t total = fg_numel(&x->t), per = total / (size_t)x->t.shape[0];
    if (m->kind != FG_TRANSFORM_SPLINE || fg_k_all_finite(total, x->t.data))
        return;
    for (size_t i = 0; i < total; i++)
        if (!isfinite(x->t.data[i])) {
            char val[32];
            fg_error("%s (spline): the input holds %s at sample %zu, entry %zu of %zu (a "
                     "layer before it overflowed, or the data is not finite)", layer,
                     fg_value_text(x->t.data[i], val, sizeof val), i / per, i % per, per);
            return;
        }
}

fg_var *fg_coupling_map_apply(fg_graph *g, const fg_coupling_map *m, fg_var *v, fg_var *h,
                              fg_var *change, int dir, fg_var **lad_sum)
{
    if (lad_sum)
        *lad_sum = NULL;
    switch (m->kind) {
    case FG_TRANSFORM_ADDITIVE:
        if (change)
            h = fg_mul(g, h, change);
        return dir > 0 ? fg_add(g, v, h) : fg_sub(g, v, h);
    case FG_TRANSFORM_AFFINE:
        return affine(g, m, v, h, change, dir, lad_sum);
    case FG_TRANSFORM_SPLINE:
        return fg_rq_spline_map(g, v, h, change, &m->spline, dir, lad_sum);
    }
    fg_fatal("coupling_map", "unknown transform %d", (int)m->kind);
}
