/* Pieces shared by the conv2d formulations (tensor/conv.c,
 * tensor/conv_narrow.c, tensor/conv_cm.c) and, for the channel-major
 * passes on a caller's buffers, the convolution chain
 * (autograd/ops_conv_chain.c); not installed, not exported. */
#ifndef FLOWGRAD_CONV_INTERNAL_H
#define FLOWGRAD_CONV_INTERNAL_H

#include "tensor/tensor.h"
#include "tensor/gemm_internal.h"   /* fg_row_affine */

#define FG_HIDDEN __attribute__((visibility("hidden")))

/* im2col of one sample (C, H, W) into rows of stride ld: row (c, t) holds
 * x[c] shifted by kernel tap t, zero outside the image. Several samples
 * sit side by side when ld is a multiple of H*W. */
FG_HIDDEN void fg_conv_im2col_ld(int C, int H, int W, int k, const float *x, float *col,
                                 size_t ld);
/* The adjoint: accumulates such columns back into x (C, H, W). */
FG_HIDDEN void fg_conv_col2im_ld(int C, int H, int W, int k, const float *col, size_t ld,
                                 float *x);
/* Samples per GEMM for images of P pixels (see conv.c). */
FG_HIDDEN int fg_conv_group_size(int N, int P);
/* Threads that split n_groups groups of samples. */
FG_HIDDEN int fg_conv_sample_threads(int n_groups);
/* (G, C, P) samples -> (C, G*P) columns, and back (overwrite or add). */
FG_HIDDEN void fg_conv_gather_columns(int G, int C, int P, const float *src, float *dst);
FG_HIDDEN void fg_conv_scatter_columns(int G, int C, int P, const float *src, float *dst,
                                       int accumulate);
/* Column scratch from the caller's arena, or from the heap when it is NULL. */
FG_HIDDEN float *fg_conv_scratch_get(fg_arena *scratch, size_t count);
FG_HIDDEN void fg_conv_scratch_release(fg_arena *scratch, float *p);

/* Direct 1x1 convolution for few channels (conv_pointwise.c): whether it
 * serves (Ci, Co, k), and the three passes on (N, C, P) tensors with the
 * contracts of the public functions. */
FG_HIDDEN int fg_conv_pointwise_applies(int Ci, int Co, int k);
FG_HIDDEN void fg_conv_pointwise_forward(int N, int Ci, int P, int Co, const float *x,
                                         const float *w, const float *bias, float *y);
FG_HIDDEN void fg_conv_pointwise_backward_input(int N, int Ci, int P, int Co, const float *dy,
                                                const float *w, float *dx);
FG_HIDDEN void fg_conv_pointwise_backward_weight(int N, int Ci, int P, int Co, const float *dy,
                                                 const float *x, float *dw);

/* The narrow formulation's weights: Wr (Co k k, Ci) with
 * Wr[(o, t), c] = w[o, c, k k - 1 - t], and its gradient A (Ci, Co k k)
 * added back into dw (Co, Ci, k, k). */
FG_HIDDEN void fg_conv_flip_weights(int Co, int Ci, int kk, const float *w, float *wr);
FG_HIDDEN void fg_conv_unflip_add(int Co, int Ci, int kk, const float *a, float *dw);

/* The narrow formulation, for convolutions with fewer output than input
 * channels and k > 1: the same contract as the public functions. */
FG_HIDDEN void fg_conv_narrow_forward(int N, int Ci, int H, int W, int Co, int k,
                                      const float *x, const float *w, const float *bias,
                                      float *y, fg_arena *scratch);
FG_HIDDEN void fg_conv_narrow_backward_input(int N, int Ci, int H, int W, int Co, int k,
                                             const float *dy, const float *w, float *dx,
                                             fg_arena *scratch);
FG_HIDDEN void fg_conv_narrow_backward_weight(int N, int Ci, int H, int W, int Co, int k,
                                              const float *dy, const float *x, float *dw,
                                              fg_arena *scratch);

/* The channel-major convolution (conv_cm.c) on a caller's work buffer
 * instead of an arena, for callers that run several at once (one per
 * thread) and must not share an arena: the same contracts as
 * fg_conv2d_cm_forward, _backward_input and _backward_weight (without the
 * bias gradient), the column matrices built for runs of `run` images in
 * `work` of fg_conv_cm_work_floats(run, ...) floats (0 for k = 1). The
 * weights (and their gradient) are rows of Ci k k values ldw floats apart:
 * a weight with more input channels than x has (a condition's, after x's)
 * is used for x's channels alone. Narrow convolutions (k > 1, Co < Ci)
 * take contiguous weights only (ldw = Ci k k). The forward applies ep (or
 * NULL) to each output channel after the bias, as its products store
 * their output where they can (fg_gemm_row_affine). */
FG_HIDDEN size_t fg_conv_cm_work_floats(int run, int Ci, int H, int W, int Co, int k);
/* A convolution's weights made ready once for the forward products of many
 * runs of images (a chain's chunks): the product's op(A) prepared
 * (fg_gemm_prepare_a), for a narrow convolution from its taps' rows
 * (fg_conv_flip_weights), both in buf of fg_conv_cm_prepare_floats floats.
 * Valid while w is unchanged. */
FG_HIDDEN size_t fg_conv_cm_prepare_floats(int Ci, int Co, int k);
FG_HIDDEN fg_gemm_prepared fg_conv_cm_prepare(int Ci, int Co, int k, const float *w, int ldw,
                                              float *buf);
/* pw (or NULL): w made ready by fg_conv_cm_prepare, the same Ci, Co, k, w
 * and ldw; the result is the same to the bit either way. */
FG_HIDDEN void fg_conv_cm_forward_work(int N, int Ci, int H, int W, int Co, int k,
                                       const float *x, const float *w, int ldw,
                                       const float *bias, float *y, int run, float *work,
                                       const fg_gemm_prepared *pw, const fg_row_affine *ep);
FG_HIDDEN void fg_conv_cm_backward_input_work(int N, int Ci, int H, int W, int Co, int k,
                                              const float *dy, const float *w, int ldw,
                                              float *dx, int accumulate, int run, float *work);
FG_HIDDEN void fg_conv_cm_backward_weight_work(int N, int Ci, int H, int W, int Co, int k,
                                               const float *dy, const float *x, float *dw,
                                               int ldw, int run, float *work);
/* Whether fg_conv_cm_*_work takes the narrow path (contiguous weights). */
FG_HIDDEN int fg_conv_cm_is_narrow(int Ci, int Co, int k);

/* A convolution of an input that is constant over each image (a condition
 * vector repeated at every pixel), zero padded like an image
 * (conv_constant.c). mask (k k, H W): 1 where tap t lands inside the
 * image. fg_conv_constant_add adds to each pixel of image n the sum over
 * those taps of v[n][o][t], v (N, Co, k k) holding each tap's weights
 * already multiplied by the image's values; y (Co, N H W), channel-major. */
FG_HIDDEN void fg_conv_constant_mask(int H, int W, int k, float *mask);
FG_HIDDEN void fg_conv_constant_add(int N, int H, int W, int Co, int k, const float *v,
                                    const float *mask, float *y);
/* Its adjoint: s[n][o][t] = the sum of dy (Co, N H W) over the pixels of
 * image n where tap t lands inside the image. */
FG_HIDDEN void fg_conv_constant_tap_sums(int N, int H, int W, int Co, int k, const float *dy,
                                         const float *mask, float *s);

#endif
