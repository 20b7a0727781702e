/* The units of a multi-scale chain and the passes that run it one unit at a
 * time, releasing each unit's intermediates before the next (see
 * flows/multiscale_units.c); shared by the container and by training
 * memory by inversion. Not installed. */
#ifndef FLOWGRAD_FLOWS_UNITS_H
#define FLOWGRAD_FLOWS_UNITS_H

#include "flows/layer.h"

/* A unit is a layer of the chain that is not a sequence (nested sequences
 * are walked into). Only splits hand out latents. */
typedef struct fg_unit {
    fg_flow *f;
    fg_flow_shape in, out;
    int latent;              /* index of the latent it splits off, or -1 */
} fg_unit;

typedef struct fg_unit_plan {
    fg_unit *units;          /* in the graph's arena */
    int n;
    size_t max_numel;        /* the largest tensor passed between units */
    int n_latents;
    fg_flow_shape latent[FG_FLOW_MAX_LATENTS];
    fg_var *condition;       /* every unit's ctx->condition; NULL after make */
} fg_unit_plan;

/* The plan of body for an input of shape in (N included). */
void fg_unit_plan_make(fg_graph *g, fg_flow *body, const fg_flow_shape *in,
                       fg_unit_plan *p);

/* What a forward through the chain produced, in arena vars allocated before
 * the first unit ran: the top latent, the split-off latents in order, the
 * sum of the log-determinants [N] and the sum of the split-offs' prior
 * log-densities [N] (accumulated in the order the container's forward uses,
 * so the values are the container's to the bit). */
typedef struct fg_unit_values {
    fg_var *top;
    fg_var *latents[FG_FLOW_MAX_LATENTS];
    fg_var *logdet, *logp;
} fg_unit_values;

/* The forward pass without a tape. With init_actnorm, a unit holding an
 * actnorm not yet initialized runs with gradients enabled so the actnorm
 * takes its data-dependent start from this batch, as the first training
 * step of a recorded forward does (its nodes are forgotten with the rest). */
void fg_units_forward(fg_graph *g, const fg_unit_plan *p, fg_var *x, int init_actnorm,
                      fg_unit_values *out);
/* The same, also copying FG_UNIT_PROBES values of each unit's output, at
 * evenly spaced positions (fg_unit_probe_index), into probes[unit *
 * FG_UNIT_PROBES + k] (NULL: none). */
#define FG_UNIT_PROBES 256
void fg_units_forward_probed(fg_graph *g, const fg_unit_plan *p, fg_var *x, int init_actnorm,
                             fg_unit_values *out, float *probes);
static inline size_t fg_unit_probe_index(int k, size_t numel)
{
    return (size_t)k * numel / FG_UNIT_PROBES;
}
/* The inverse pass without a tape from the top latent; ctx holds the
 * split-off latents or draws them (see fg_flow_ctx). Returns x, allocated
 * before the first unit ran. */
fg_var *fg_units_inverse(fg_graph *g, const fg_unit_plan *p, fg_var *top, fg_flow_ctx *ctx);

/* log p(x) = log p(top) + split_logp + logdet (the last two may be NULL),
 * in the one order every path of the container uses. */
fg_var *fg_multiscale_log_density(fg_multiscale *m, fg_graph *g, fg_var *top, const int *y,
                                  fg_var *condition, fg_var *split_logp, fg_var *logdet);
/* Stops when m is conditional and condition is NULL. */
void fg_multiscale_require_condition(const fg_multiscale *m, const fg_var *condition);
/* The latents of a unit pass in fg_multiscale_encode's order (NULL: none). */
void fg_multiscale_collect(const fg_multiscale *m, const fg_unit_values *v, fg_var **latents);

/* Number of float values in a shape. */
size_t fg_flow_shape_numel(const fg_flow_shape *s);

#endif
