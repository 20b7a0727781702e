/* flowgrad autograd layer: a reverse-mode tape over tensor kernels.
 *
 * A graph owns a per-step arena and the tape. Every differentiable op takes
 * the graph first, allocates its output from the arena and, when gradients
 * are enabled and an input requires them, records a node whose backward rule
 * lives next to the forward in the op's source file. fg_backward walks the
 * tape in reverse and accumulates into every variable's grad. fg_graph_reset
 * ends a step: the tape and all intermediates go away in O(1).
 *
 * Leaves (parameters) are heap variables with a persistent grad buffer that
 * backward accumulates into; zero it between steps (optimizers do). */
#ifndef FLOWGRAD_AUTOGRAD_H
#define FLOWGRAD_AUTOGRAD_H

#include "tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fg_graph fg_graph;
typedef struct fg_node fg_node;

typedef struct fg_var {
    fg_tensor t;        /* value */
    float *grad;        /* same numel as t; NULL until backward reaches it
                           (leaves: allocated at creation) */
    fg_node *node;      /* the op that produced it, NULL for leaves/constants */
    int requires_grad;
    int is_leaf;        /* heap variable owned by its creator */
} fg_var;

/* ---------------------------------------------------------------- graph */
FG_API fg_graph *fg_graph_create(void);
FG_API void fg_graph_destroy(fg_graph *g);
/* End of a step: forget the tape, reset the arena (O(1)). */
FG_API void fg_graph_reset(fg_graph *g);
/* A reset that gives the arenas' memory beyond their first chunks back
 * (fg_arena_trim): after a step larger than those to come. */
FG_API void fg_graph_trim(fg_graph *g);
FG_API fg_arena *fg_graph_arena(fg_graph *g);
/* Transient kernel workspace (im2col columns, GEMM-side buffers); its peak
 * adds to the arena's in a step's memory. */
FG_API fg_arena *fg_graph_scratch(fg_graph *g);
/* No-grad mode records nothing; returns the previous setting. */
FG_API int fg_set_grad_enabled(fg_graph *g, int enabled);
FG_API int fg_grad_enabled(const fg_graph *g);
/* Number of nodes recorded since the last reset. */
FG_API size_t fg_graph_nodes(const fg_graph *g);
/* Parts of one batch differentiated at once, each on its own graph and
 * thread, cannot all add into the leaves' gradient buffers. A graph told to
 * keep leaf gradients (on: 1) gives every leaf that backward reaches a
 * buffer of its own for the step, kept across steps so that a steady state
 * maps no new memory; fg_graph_add_leaf_grads then adds them into the
 * leaves' buffers, in the order the leaves were first reached, and the
 * next fg_graph_reset starts them from zero again. */
FG_API void fg_graph_keep_leaf_grads(fg_graph *g, int on);
FG_API void fg_graph_add_leaf_grads(fg_graph *g);

/* Segments of a step. A mark is the tape's end and the arena's position;
 * fg_backward_since walks only the nodes recorded after it, and
 * fg_graph_rewind forgets them and gives their memory (values and
 * gradients allocated since) back, so that a step can rebuild and
 * differentiate one piece of a model at a time in the same bytes. */
typedef struct fg_graph_mark {
    fg_arena_mark arena;
    fg_node *tail;
    size_t n_nodes;
} fg_graph_mark;
FG_API fg_graph_mark fg_graph_mark_now(const fg_graph *g);
FG_API void fg_graph_rewind(fg_graph *g, const fg_graph_mark *m);
/* Reverse pass over the nodes recorded since m, seeded with the gradient
 * seeds[i] (numel of outs[i]) of each outs[i]; outs that do not require a
 * gradient, and NULL seeds, are skipped. Leaves accumulate as usual. */
FG_API void fg_backward_since(fg_graph *g, const fg_graph_mark *m, fg_var **outs,
                              const float **seeds, int n);

/* An op whose backward rule is the caller's: outs (arena vars whose values
 * the caller computed, e.g. without recording) become outputs that later
 * ops can differentiate through. When the reverse pass reaches the op, bw
 * runs once with the accumulated gradient of every out in out->grad (NULL
 * where none flowed) and must itself put the gradients into whatever the
 * outs depend on, typically with fg_backward_since on segments it records
 * and rewinds. Records nothing when gradients are disabled. */
typedef void (*fg_custom_backward_fn)(fg_graph *g, void *ctx, fg_var **outs, int n_outs);
FG_API void fg_custom_op(fg_graph *g, const char *op, fg_var **outs, int n_outs,
                         fg_custom_backward_fn bw, void *ctx);

/* Reverse pass from a scalar (numel 1) loss: seeds d loss = 1. */
FG_API void fg_backward(fg_graph *g, fg_var *loss);
/* Reverse pass seeded with a given output gradient (numel of out). */
FG_API void fg_backward_with(fg_graph *g, fg_var *out, const float *seed);

/* ---------------------------------------------------------------- variables */
/* Heap leaf; zeroed value; grad buffer allocated when requires_grad. */
FG_API fg_var *fg_leaf_new(int ndim, const int *shape, int requires_grad);
FG_API void fg_leaf_free(fg_var *v);
FG_API void fg_zero_grad(fg_var *v);
/* Arena constant (no grad), data zeroed. */
FG_API fg_var *fg_const(fg_graph *g, int ndim, const int *shape);
/* Arena constant that views a caller's buffer (no copy). */
FG_API fg_var *fg_const_wrap(fg_graph *g, float *data, int ndim, const int *shape);
FG_API fg_var *fg_const_scalar(fg_graph *g, float v);
/* Copy of v's value that no gradient flows through. */
FG_API fg_var *fg_detach(fg_graph *g, fg_var *v);

/* ---------------------------------------------------------------- ops
 * Binary ops take b of a's shape, or b with one element (broadcast). */
FG_API fg_var *fg_add(fg_graph *g, fg_var *a, fg_var *b);
FG_API fg_var *fg_sub(fg_graph *g, fg_var *a, fg_var *b);
FG_API fg_var *fg_mul(fg_graph *g, fg_var *a, fg_var *b);
FG_API fg_var *fg_div(fg_graph *g, fg_var *a, fg_var *b);
FG_API fg_var *fg_neg(fg_graph *g, fg_var *a);
FG_API fg_var *fg_scale(fg_graph *g, fg_var *a, float s);
FG_API fg_var *fg_add_scalar(fg_graph *g, fg_var *a, float s);
FG_API fg_var *fg_exp(fg_graph *g, fg_var *a);
FG_API fg_var *fg_log(fg_graph *g, fg_var *a);
FG_API fg_var *fg_sigmoid(fg_graph *g, fg_var *a);
FG_API fg_var *fg_log_sigmoid(fg_graph *g, fg_var *a);
FG_API fg_var *fg_relu(fg_graph *g, fg_var *a);
FG_API fg_var *fg_square(fg_graph *g, fg_var *a);

/* Reductions (double accumulation). all -> [1]; per sample: (N, ...) -> [N];
 * per channel: (N, C, ...) -> [C], over N and the trailing dimensions. */
FG_API fg_var *fg_sum(fg_graph *g, fg_var *a);
FG_API fg_var *fg_mean(fg_graph *g, fg_var *a);
FG_API fg_var *fg_sum_per_sample(fg_graph *g, fg_var *a);
FG_API fg_var *fg_mean_per_sample(fg_graph *g, fg_var *a);
FG_API fg_var *fg_sum_per_channel(fg_graph *g, fg_var *a);
FG_API fg_var *fg_mean_per_channel(fg_graph *g, fg_var *a);

/* Per-channel broadcast: x (N, C, ...) with v of C elements. */
FG_API fg_var *fg_add_channel(fg_graph *g, fg_var *x, fg_var *v);
FG_API fg_var *fg_mul_channel(fg_graph *g, fg_var *x, fg_var *v);
/* max(0, (x + bias[c]) exp(logs[c])): an actnorm and its ReLU in one op
 * (one output tensor, one backward pass); bias and logs of C elements. */
FG_API fg_var *fg_channel_affine_relu(fg_graph *g, fg_var *x, fg_var *bias, fg_var *logs);

/* 2-D product op(a) op(b); trans flags transpose the stored matrix. */
FG_API fg_var *fg_matmul(fg_graph *g, fg_var *a, fg_var *b, int trans_a, int trans_b);
/* x (N, Ci, H, W), w (Co, Ci, k, k), bias (Co) or NULL: stride 1, same pad. */
FG_API fg_var *fg_conv2d(fg_graph *g, fg_var *x, fg_var *w, fg_var *bias);

/* Channel-major batches (autograd/ops_channel_major.c): (N, C, H, W) stored
 * as (1, C, N*H, W), each channel of the batch one row, so that a
 * convolution is one GEMM over the batch. Per-channel ops apply as they
 * are; fg_conv2d_cm is fg_conv2d on such a batch of N images. */
FG_API fg_var *fg_to_channel_major(fg_graph *g, fg_var *x);
FG_API fg_var *fg_from_channel_major(fg_graph *g, fg_var *x, int N);
FG_API fg_var *fg_conv2d_cm(fg_graph *g, fg_var *x, fg_var *w, fg_var *bias, int N);
/* relu(actnorm(conv)) in one op: max(0, (conv2d_cm(x, w) + bias[c])
 * e^logs[c]) with a convolution without bias, the values and gradients of
 * those ops in sequence, without keeping the pre-activation (see
 * autograd/ops_conv_affine_relu.c). */
FG_API fg_var *fg_conv2d_cm_affine_relu(fg_graph *g, fg_var *x, fg_var *w, fg_var *bias,
                                        fg_var *logs, int N);

/* A chain of convolutions and per-channel stages on images, run chunk by
 * chunk of whole images, each chunk through every stage on one thread
 * (autograd/ops_conv_chain.c): a coupling's conditioner network as one op.
 * Each stage computes what the op of the same arithmetic does:
 *   CONV               weight (Co, Ci, k, k), k odd, bias (Co) or NULL: fg_conv2d;
 *                      with cond (N, Cc), a vector per image, the weight is
 *                      (Co, Ci + Cc, k, k) and its last Cc input channels
 *                      read cond repeated at every pixel (zero padded like
 *                      the image): fg_conv2d of x with cond broadcast and
 *                      concatenated after its channels, without forming
 *                      that input (not for k > 1 with Co < Ci);
 *   AFFINE_RELU        max(0, (x + bias[c]) e^logs[c]): fg_channel_affine_relu;
 *   AFFINE             (x + bias[c]) e^logs[c], actnorm without the ReLU;
 *   RELU               max(0, x);
 *   CHANNEL_SCALE_EXP  x e^(factor logs[c]), a zero conv's learned scale.
 * x (N, C, H, W) -> (N, Co, H, W). Values and gradients do not depend on
 * the number of threads. */
typedef enum fg_chain_kind {
    FG_CHAIN_CONV,
    FG_CHAIN_AFFINE_RELU,
    FG_CHAIN_AFFINE,
    FG_CHAIN_RELU,
    FG_CHAIN_CHANNEL_SCALE_EXP,
} fg_chain_kind;
typedef struct fg_chain_stage {
    fg_chain_kind kind;
    fg_var *weight;   /* CONV */
    fg_var *cond;     /* CONV: (N, Cc) per image, or NULL */
    fg_var *bias;     /* CONV (or NULL), AFFINE_RELU, AFFINE */
    fg_var *logs;     /* AFFINE_RELU, AFFINE, CHANNEL_SCALE_EXP */
    float factor;     /* CHANNEL_SCALE_EXP */
} fg_chain_stage;
FG_API fg_var *fg_conv_chain(fg_graph *g, fg_var *x, const fg_chain_stage *stages, int n);
/* Whether a convolution stage from `in` to `out` channels with a k x k
 * kernel takes a condition (it does unless it narrows: k > 1, out < in). */
FG_API int fg_conv_chain_takes_condition(int in, int out, int k);
/* Images per chunk for images of P pixels: FLOWGRAD_CHAIN_COLUMNS (read
 * once; default 784) columns' worth, at least one. */
FG_API int fg_conv_chain_chunk_images(int P);

/* Glow's affine coupling map on v (N, C, ...) given h (N, 2C, ...) whose
 * even channels are the shift and odd channels r the raw log-scale, with
 * s = sigmoid(r + 2): y = (v + shift) s for dir > 0, y = v / s - shift for
 * dir < 0. *logscale (when not NULL) receives the per-sample sum of log s,
 * [N]. Two ops in all (autograd/ops_coupling.c). */
FG_API fg_var *fg_affine_coupling(fg_graph *g, fg_var *v, fg_var *h, int dir, fg_var **logscale);

/* The rational-quadratic spline (tensor.h, fg_k_rq_spline) on v (N, C, ...)
 * with raw parameters h (N, C (3K - 1), ...): y = s(v) for dir > 0,
 * y = s^-1(v) for dir < 0; mask (v's shape, a constant) or NULL: identity
 * where 0. *lad_sum (when not NULL) receives the per-sample sum [N] of
 * log s'(x) at the forward side's x (v for dir > 0, y for dir < 0), so a
 * flow adds it going forward and subtracts it going back. Both are
 * differentiable in v and h (autograd/ops_spline.c). */
FG_API fg_var *fg_rq_spline_map(fg_graph *g, fg_var *v, fg_var *h, fg_var *mask,
                                const fg_rq_spline *s, int dir, fg_var **lad_sum);

/* Pooling on x (N, C, H, W). 2x2 windows, stride 2, H and W even ->
 * (N, C, H/2, W/2); max routes the gradient to the first maximum of each
 * window. Global average -> (N, C). */
FG_API fg_var *fg_max_pool2x2(fg_graph *g, fg_var *x);
FG_API fg_var *fg_avg_pool2x2(fg_graph *g, fg_var *x);
FG_API fg_var *fg_global_avg_pool(fg_graph *g, fg_var *x);

/* Channel layout: x[:, c0:c1], cat([a, b], dim 1), x[:, 0::2], x[:, 1::2]. */
FG_API fg_var *fg_channel_slice(fg_graph *g, fg_var *x, int c0, int c1);
FG_API fg_var *fg_channel_concat(fg_graph *g, fg_var *a, fg_var *b);
FG_API fg_var *fg_channel_even(fg_graph *g, fg_var *x);
FG_API fg_var *fg_channel_odd(fg_graph *g, fg_var *x);
/* x[:, perm] for a fixed permutation of the channels. */
FG_API fg_var *fg_channel_permute(fg_graph *g, fg_var *x, const int *perm);
FG_API fg_var *fg_reshape(fg_graph *g, fg_var *x, int ndim, const int *shape);
FG_API fg_var *fg_squeeze2d(fg_graph *g, fg_var *x);
FG_API fg_var *fg_unsqueeze2d(fg_graph *g, fg_var *x);

/* Small square matrix w (c, c): log|det w| -> [1], and w^-1, both in double. */
FG_API fg_var *fg_slogdet(fg_graph *g, fg_var *w);
FG_API fg_var *fg_inverse(fg_graph *g, fg_var *w);

/* Per-sample cross-entropy of log-softmax(logits) against labels: logits
 * (N, K), labels N ints in [0, K) -> [N]. */
FG_API fg_var *fg_log_softmax_cross_entropy(fg_graph *g, fg_var *logits, const int *labels);
/* Per-sample diagonal-Gaussian log-density of x under (mean, log-std), all
 * the same shape (N, ...) -> [N]. */
FG_API fg_var *fg_gaussian_logp(fg_graph *g, fg_var *x, fg_var *mean, fg_var *logs);

/* ---------------------------------------------------------------- checking */

/* A scalar function of some leaves, built on g (g is reset between calls). */
typedef fg_var *(*fg_loss_fn)(fg_graph *g, void *ctx);

typedef struct fg_gradcheck_result {
    double max_abs_err;   /* over all checked elements */
    double max_rel_err;   /* |a - n| / max(|a|, |n|, 1e-3) */
    int worst_leaf, worst_index;
    int n_checked, n_failed;
} fg_gradcheck_result;

/* Central differences on every element of every leaf (step eps, evaluated in
 * double-accumulated float32). An element fails when
 * |analytic - numeric| > atol + rtol * |numeric|. Returns n_failed == 0. */
FG_API int fg_gradcheck(fg_graph *g, fg_loss_fn fn, void *ctx, fg_var **leaves,
                 int n_leaves, double eps, double atol, double rtol,
                 fg_gradcheck_result *res);
/* One random direction u over all leaves: compares grad . u with
 * (f(p + eps u) - f(p - eps u)) / (2 eps). Cheap for whole models. Returns
 * the relative error; *analytic and *numeric receive the two sides. */
FG_API double fg_gradcheck_direction(fg_graph *g, fg_loss_fn fn, void *ctx,
                              fg_var **leaves, int n_leaves, double eps,
                              fg_rng *rng, double *analytic, double *numeric);
/* The same along a unit direction made of equal parts random and analytic
 * gradient: the derivative along it is at least about |grad| / 2, so it
 * stands far above the difference quotient's noise even where a random
 * direction is nearly orthogonal to the gradient, while a gradient wrong in
 * size or direction still disagrees with the numerical slope. */
FG_API double fg_gradcheck_direction_mixed(fg_graph *g, fg_loss_fn fn, void *ctx,
                                    fg_var **leaves, int n_leaves, double eps,
                                    fg_rng *rng, double *analytic, double *numeric);

#ifdef __cplusplus
}
#endif
#endif
