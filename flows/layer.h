/* Helpers shared by the flow layers' sources; not installed. */
#ifndef FLOWGRAD_FLOWS_LAYER_H
#define FLOWGRAD_FLOWS_LAYER_H

#include "flows/flow.h"

/* *logdet += sign * term, where term is [N] or [1] (broadcast). Creates the
 * zero [N] start when *logdet is NULL; does nothing when logdet is NULL. */
void fg_flow_accumulate(fg_graph *g, fg_var **logdet, fg_var *term, int sign,
                        int n);

/* FG_ERR naming `kind` and the shape unless in is (N, channels, H, W) with
 * positive sizes (channels <= 0 accepts any channel count). */
int fg_flow_expect_image(const char *kind, const fg_flow_shape *in, int channels);

/* Stops naming `kind` and the shapes unless x is (N, channels, H, W). */
void fg_flow_require_image(const char *kind, const fg_var *x, int channels);

/* The channel-wise layers (actnorm, invconv, permute, scale_diag) take a
 * batch of vectors (N, D) as well, D as channels with H = W = 1: FG_ERR
 * unless in is (N, channels) or (N, channels, H, W). */
int fg_flow_expect_channels(const char *kind, const fg_flow_shape *in, int channels);
void fg_flow_require_channels(const char *kind, const fg_var *x, int channels);
/* The vector layers (dense couplings, MAF, IAF): (N, dim), or (N, dim, 1, 1)
 * as flatten gives. */
int fg_flow_expect_vectors(const char *kind, const fg_flow_shape *in, int dim);
void fg_flow_require_vectors(const char *kind, const fg_var *x, int dim);

/* own with the batch's condition concatenated after its channels, shaped
 * by fg_condition_for, for a layer built for cond_channels of it; own
 * itself when cond_channels is 0. A missing condition, or one that does
 * not fit or has other channels, is the caller's wiring: it stops naming
 * the layer and the shapes. */
fg_var *fg_condition_join(fg_graph *g, fg_var *own, const fg_var *condition,
                          int cond_channels, const char *layer);

/* Product of the dimensions after N and C (H W for images). */
int fg_flow_spatial(const fg_var *x);

/* Reads a permutation stored as floats in a buffer into perm; stops naming
 * `kind` when it is not a permutation of 0..n-1. */
void fg_flow_read_permutation(const char *kind, const fg_var *buf, int *perm, int n);

/* Joins prefix and kind ("flow.3" + "coupling") into buf. */
const char *fg_flow_prefix(char *buf, size_t n, const char *prefix, const char *kind);

/* actnorm's state under prefix without its kind ("coupling.nn.1.bias"). */
void fg_actnorm_visit_state(fg_flow *actnorm, const char *prefix, fg_visit_fn fn,
                            void *vctx);

/* ReLU(actnorm(x)) without a log-determinant, as one op (a coupling
 * network's hidden layers): the same input check and data-dependent init as
 * the layer's forward. */
fg_var *fg_actnorm_forward_relu(fg_flow *actnorm, fg_graph *g, fg_var *x);
/* ReLU(actnorm(conv(x))) on a channel-major batch of n images as one op
 * (fg_conv2d_cm_affine_relu) when the convolution has no bias; the
 * actnorm's data-dependent init, when due, runs first on the
 * convolution's output. The same values as fg_actnorm_forward_relu of
 * fg_conv_apply_cm. */
fg_var *fg_actnorm_conv_relu(fg_flow *actnorm, fg_graph *g, fg_conv *conv, fg_var *x, int n);

/* actnorm as a stage of a convolution chain (fg_conv_chain): AFFINE, or
 * AFFINE_RELU with relu set, on the layer's own parameters. */
fg_chain_stage fg_actnorm_chain_stage(fg_flow *actnorm, int relu);

/* z = W x per pixel: x (N, C, H, W), w (C, C) -> (N, C, H, W); per vector
 * for x (N, C). */
fg_var *fg_flow_conv1x1(fg_graph *g, fg_var *x, fg_var *w);

/* The map of a coupling's changing part v given its conditioner's output
 * h, shared by the conv and dense couplings and the autoregressive layers
 * (flows/coupling_map.c). */
typedef struct fg_coupling_map {
    fg_transform_kind kind;
    fg_coupling_scale scale;   /* affine */
    fg_rq_spline spline;       /* spline */
} fg_coupling_map;
/* FG_ERR naming `kind` unless the transform and its options are valid. */
int fg_coupling_map_init(fg_coupling_map *m, const char *kind, fg_transform_kind t,
                         fg_coupling_scale scale, int bins, float bound);
/* Channels of h per channel of v: 1 additive, 2 affine, 3 bins - 1 spline. */
int fg_coupling_map_width(const fg_coupling_map *m);
/* For a spline map: leaves fg_error naming `layer`, the sample and the
 * entry when the layer's input x holds NaN or Inf (the spline passes NaN
 * on rather than stop). Nothing for the other maps. */
void fg_coupling_map_check_input(const fg_coupling_map *m, const char *layer,
                                 const fg_var *x);
/* y = t(v) for dir > 0, t^-1(v) for dir < 0; change (v's shape, 1 where
 * entries change) or NULL for all. *lad_sum gets the per-sample sum of
 * log t' at the forward side's point, or NULL where it is 0 (additive):
 * the caller adds it with the sign of the direction in which t ran. */
fg_var *fg_coupling_map_apply(fg_graph *g, const fg_coupling_map *m, fg_var *v, fg_var *h,
                              fg_var *change, int dir, fg_var **lad_sum);

/* What the coupling of flows/coupling.c is built from: the conv coupling
 * and the dense coupling are this one layer with their own names, shapes
 * and default networks (fg_coupling_create, fg_dense_coupling_create
 * validate their options and fill it). */
typedef struct fg_coupling_setup {
    const char *kind;         /* the state's name prefix: "coupling", "dense_coupling" */
    int channels;             /* C of an image, D of a vector */
    int vectors;              /* 1: (N, D) or (N, D, 1, 1), a vector network */
    fg_coupling_mask mask;
    fg_coupling_map map;
    const fg_net_layer *net;  /* never NULL here: the caller gives its default */
    int net_layers;
    int cond_channels;
    fg_rng *rng;
} fg_coupling_setup;
fg_flow *fg_coupling_build(const fg_coupling_setup *s);

/* The invertible 1x1 convolutions share this head. */
typedef struct fg_invconv_head {
    fg_flow base;
    int channels;
    int lu;
} fg_invconv_head;
fg_flow *fg_invconv_lu_create(int channels, const double *w);
/* FG_ERR naming `what` unless w (c x c, float) is finite and invertible to
 * fg_inverse and fg_slogdet. */
int fg_invconv_check_matrix(const char *what, int c, const float *w);
int fg_invconv_lu_check(fg_flow *f, const char *prefix);
void fg_invconv_lu_weight(const fg_flow *f, double *w);
int fg_invconv_out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out);
int fg_invconv_check_state(fg_flow *f, const char *prefix);

#endif
