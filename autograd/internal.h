/* Internals shared by the autograd sources; not installed. */
#ifndef FLOWGRAD_AUTOGRAD_INTERNAL_H
#define FLOWGRAD_AUTOGRAD_INTERNAL_H

#include "autograd/autograd.h"

typedef void (*fg_backward_fn)(fg_graph *g, fg_node *n);
typedef struct fg_leaf_grads fg_leaf_grads;

struct fg_node {
    const char *op;
    fg_backward_fn backward;
    fg_var *out;
    fg_var *in[4];
    int nin;
    void *saved;        /* op-specific, from the arena */
    float f;            /* op-specific scalar (e.g. the factor of fg_scale) */
    int i[4];           /* op-specific integers */
    fg_node *prev;
};

struct fg_graph {
    fg_arena *arena;    /* values, grads and nodes of the current step */
    fg_arena *scratch;  /* transient kernel workspace, reset after each use */
    fg_node *tail;
    size_t n_nodes;
    int grad_enabled;
    double op_start;    /* profiling: when the current op began */
    fg_leaf_grads *kept; /* NULL: leaves' gradients go to their own buffers */
};

/* Profiling: every op calls FG_OP_BEGIN first; fg_record, which every op
 * calls last, charges the time in between to "op:NAME". */
#define FG_OP_BEGIN(g) do { if (fg_profile_enabled()) (g)->op_start = fg_profile_now(); } while (0)

/* A fresh arena variable (value not initialized, no grad). */
fg_var *fg_var_new(fg_graph *g, int ndim, const int *shape);
fg_var *fg_var_like(fg_graph *g, const fg_var *v);
/* Records a node for out when gradients are on and any input needs one;
 * returns the node (to fill saved state) or NULL when nothing is recorded. */
fg_node *fg_record(fg_graph *g, const char *op, fg_backward_fn bw, fg_var *out,
                   int nin, fg_var *a, fg_var *b, fg_var *c);
/* The same for ops of up to four inputs, ins[0..nin). */
fg_node *fg_record_n(fg_graph *g, const char *op, fg_backward_fn bw, fg_var *out,
                     int nin, fg_var *const *ins);
/* The gradient buffer of v, allocated zeroed on first use. */
float *fg_grad(fg_graph *g, fg_var *v);
/* Where a graph that keeps leaf gradients (fg_graph_keep_leaf_grads) puts
 * leaf's this step: a buffer of its own, zeroed on first use in the step
 * (leaf_grads.c). */
float *fg_kept_leaf_grad(fg_graph *g, fg_var *leaf);
void fg_leaf_grads_free(fg_leaf_grads *k);
void fg_leaf_grads_new_step(fg_leaf_grads *k);
/* The same for a backward rule that produces every element of v's
 * gradient: on first use the buffer is not zeroed and *fresh is set, and
 * the rule must store its values instead of adding them. That saves a
 * zeroing pass and a read of the buffer, the larger part of the memory
 * traffic of an elementwise backward. */
float *fg_grad_for_write(fg_graph *g, fg_var *v, int *fresh);
/* Stops with the op name and both shapes when a and b differ. */
void fg_require_same_shape(const char *op, const fg_var *a, const fg_var *b);
void fg_require_ndim(const char *op, const fg_var *a, int ndim);
/* The kernels of actnorm followed by ReLU (ops_channel.c), shared with the
 * fused convolution (ops_conv_affine_relu.c) and the convolution chain
 * (ops_conv_chain.c): y = max(0, (x + bias[c]) * scale[c]) over N x C
 * planes of HW values, or without the max when relu is 0 (actnorm alone),
 * y may be x; and its backward from y alone: gx (stored when store is
 * set, else added; may be NULL) and the sums into gbias and glogs (each
 * may be NULL). */
void fg_affine_relu_planes(int N, int C, size_t HW, const float *x, const float *bias,
                           const float *scale, float *y, int relu);
void fg_affine_relu_planes_backward(int N, int C, size_t HW, const float *gy, const float *y,
                                    const float *scale, float *gx, int store, float *gbias,
                                    float *glogs, int relu);
/* Stops naming op unless x is a channel-major batch of N images and w
 * (and bias, when given) a convolution's weight (bias) for it. */
void fg_conv2d_cm_check(const char *op, const fg_var *x, const fg_var *w, const fg_var *bias,
                        int N);
static inline size_t fg_var_numel(const fg_var *v) { return fg_numel(&v->t); }
static inline int fg_needs_grad(const fg_var *v) { return v->requires_grad; }

#endif
