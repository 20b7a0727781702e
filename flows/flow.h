/* flowgrad flows layer: the invertible-layer interface and the generic flow
 * layers, all built from autograd ops (their gradients come from the tape).
 *
 * Direction convention, the same for every layer and never varied:
 *
 *   forward  maps data x -> latent z and ADDS      log|det dz/dx| to logdet;
 *   inverse  maps latent z -> data x and SUBTRACTS log|det dz/dx| from it.
 *
 * logdet is per sample, an fg_var of shape [N]. Layers take it by address:
 * they replace *logdet with the new sum; *logdet == NULL starts from zeros;
 * a NULL address means "do not track".
 *
 * Shapes are full tensor shapes, (N, C, H, W) for images. Every layer knows
 * its output shape from an input shape before any op runs, so a model built
 * from a config is validated first (fg_flow_out_shape returns FG_ERR with a
 * message naming the layer and the shapes). forward/inverse on a shape that
 * was not validated is an internal error and stops (fg_fatal).
 *
 * State names: each layer visits its parameters and buffers under
 * "<prefix>.<kind>.<name>"; a sequence puts the layer index in between, so a
 * Glow coupling weight reads "flow.3.coupling.nn.0.weight". The names are
 * stable (checkpoints and the PyTorch reference use them):
 *
 *   actnorm.bias [C], actnorm.logs [C]                      y = (x + bias) e^logs
 *   actnorm.initialized [1] (buffer: 1 once data-initialized)
 *   invconv.weight [C, C]                                   plain
 *   invconv.p [C] (buffer), invconv.sign [C] (buffer),       LU: W = P L (U + diag(sign e^log_s))
 *   invconv.l [C, C], invconv.u [C, C], invconv.log_s [C]    with W[r, :] = (L U')[p[r], :];
 *                                                            l, u are masked to their strict
 *                                                            lower/upper parts (L has unit diag)
 *   permute.perm [C] (buffer, shuffle only)                  z[:, i] = x[:, perm[i]]
 *   coupling.nn.0.weight [H, C/2, 3, 3]                      conv3x3, no bias
 *                        ([H, C, 3, 3] with a checkerboard mask)
 *   coupling.nn.1.{bias,logs,initialized}                    actnorm
 *   coupling.nn.3.weight [H, H, 1, 1]                        conv1x1, no bias
 *   coupling.nn.4.{bias,logs,initialized}                    actnorm
 *   coupling.nn.6.{weight,bias,logs}                         zero conv3x3 (x e^{3 logs})
 *     (indices follow a torch.nn.Sequential: 2 and 5 are the ReLUs; a
 *     coupling given its own network names its modules nn.<i> alike)
 *   split.conv.{weight,bias,logs}                            zero conv3x3, C/2 -> 2 (C - C/2)
 *                                                            (C/2 + Cc in with a condition)
 *   prior.learn_top.{weight,bias,logs}                       zero conv3x3, 2C -> 2C
 *                                                            (2C + Cc in with a condition)
 *   prior.project_y.{weight,bias}                            linear n_classes -> 2C, zeros
 *
 * Latents that leave the chain (split's z2) travel in an fg_flow_ctx: forward
 * appends them in the order produced and adds their prior log-density to
 * ctx->logp; inverse pops them from the end, or draws them at
 * ctx->temperature when none are left. */
#ifndef FLOWGRAD_FLOW_H
#define FLOWGRAD_FLOW_H

#include "nn/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- shapes */

typedef struct fg_flow_shape {
    int ndim;
    int dim[FG_MAX_DIMS];
} fg_flow_shape;

FG_API fg_flow_shape fg_flow_shape4(int n, int c, int h, int w);
FG_API fg_flow_shape fg_flow_shape_of(const fg_var *v);
/* "(2, 4, 8, 8)" into buf; returns buf. */
FG_API const char *fg_flow_shape_str(const fg_flow_shape *s, char *buf, size_t n);

/* ---------------------------------------------------------------- context */

#define FG_FLOW_MAX_LATENTS 32

typedef struct fg_flow_ctx {
    fg_var *latents[FG_FLOW_MAX_LATENTS]; /* arena vars, valid until reset */
    int n_latents;
    fg_var *logp;        /* [N] log-density of split-off latents (forward) */
    float temperature;   /* inverse: scale of the std when drawing latents */
    fg_rng *rng;         /* inverse: source of draws; may be NULL at T = 0 */
    fg_var *condition;   /* NULL, or the condition of the batch: (N, Cc) vectors or (N, Cc, Hc, Wc) images; read by couplings' conditioners and by priors */
} fg_flow_ctx;

FG_API void fg_flow_ctx_init(fg_flow_ctx *ctx);

/* ---------------------------------------------------------------- conditions
 * A conditional flow (a cINN) reads a condition of the batch, ctx->condition:
 * vectors (N, Cc) or images (N, Cc, Hc, Wc). Each conditional layer
 * concatenates it, shaped by fg_condition_for, to a tensor of its own
 * along the channel axis (flows/condition.c). like is that tensor:
 *   like (N, C, H, W): a vector condition is repeated over H x W; an image
 *     condition whose Hc, Wc are whole multiples of H, W is averaged over
 *     each (Hc/H) x (Wc/W) cell (as is when equal);
 *   like (N, D): a vector condition as is, an image one flattened to
 *     (N, Cc Hc Wc).
 * Any other pair: NULL, with fg_error naming `layer` and both shapes (a
 * conditional layer then stops with that message). Differentiable:
 * gradients reach the condition. */
FG_API fg_var *fg_condition_for(fg_graph *g, const fg_var *condition, const fg_var *like,
                                const char *layer);

/* ---------------------------------------------------------------- observer
 * Debugging: fn sees, as forward computes them, each layer's log-determinant
 * term ("logdet", [N] or [1], signed as added), the prior log-scales
 * ("prior.logs") and each prior's per-sample log-density ("prior.logp", [N]),
 * in forward order. Values are valid only during the call. NULL (the
 * default) observes nothing; one observer per process. */
typedef void (*fg_flow_observer_fn)(void *ctx, const char *what, const fg_var *v);
FG_API void fg_flow_set_observer(fg_flow_observer_fn fn, void *ctx);
FG_API void fg_flow_observe(const char *what, const fg_var *v);
/* Appends a latent; stops if more than FG_FLOW_MAX_LATENTS. */
FG_API void fg_flow_ctx_push(fg_flow_ctx *ctx, fg_var *z);
/* The last latent pushed and not yet popped, or NULL. */
FG_API fg_var *fg_flow_ctx_pop(fg_flow_ctx *ctx);

/* ---------------------------------------------------------------- interface */

typedef struct fg_flow fg_flow;

typedef struct fg_flow_ops {
    const char *kind;    /* "actnorm", "invconv", ...: the name prefix */
    /* FG_OK and *out, or FG_ERR with fg_error naming the layer and shapes. */
    int (*out_shape)(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out);
    fg_var *(*forward)(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx);
    fg_var *(*inverse)(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                       fg_flow_ctx *ctx);
    /* Visits state as "<prefix>.<kind>.<name>" (prefix may be NULL/""). */
    void (*visit)(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx);
    void (*destroy)(fg_flow *f);
    /* Optional, for memory by inversion: given the output z, the input as
     * a fresh variable that requires a gradient (*x) and the output of the
     * forward recorded from it (returned, with *logdet and ctx as forward
     * fills them), the same values as inverse then forward, with less work
     * (a coupling runs its network once, as both need it on the same half).
     * NULL, or a NULL return: inverse then forward. */
    fg_var *(*invert_record)(fg_flow *f, fg_graph *g, fg_var *z, fg_var **x,
                             fg_var **logdet, fg_flow_ctx *ctx);
    /* What code that walks a chain needs to know of the layer, without
     * going by its kind's name: FG_FLOW_ROLE_* bits, 0 for none. */
    unsigned roles;
    /* Optional, for a layer with data-dependent initialization or one that
     * holds such layers (actnorm; a coupling's network; a sequence): with
     * rearm = 1 it first forgets that initialization, so that the next
     * forward in training does it again; returns how many of its parts
     * still wait for it. NULL: nothing is initialized from data. */
    int (*data_init)(fg_flow *f, int rearm);
    /* Optional, for a layer whose loaded state must satisfy more than its
     * shapes (an invconv's W invertible, its LU signs +-1) or that holds
     * such layers: FG_OK, or FG_ERR naming the tensor under prefix (as
     * visit names it). NULL: any values of the right shape will run. */
    int (*check_state)(fg_flow *f, const char *prefix);
} fg_flow_ops;

/* forward splits off one latent (pushes it onto ctx, adds its density to
 * ctx->logp) and inverse takes it back: a multi-scale chain counts them. */
#define FG_FLOW_ROLE_SPLIT 1u
/* A sequence: fg_sequence_length and fg_sequence_layer walk its layers. */
#define FG_FLOW_ROLE_SEQUENCE 2u

/* Every layer struct begins with this. */
struct fg_flow {
    const fg_flow_ops *ops;
};

FG_API int fg_flow_out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out);
/* ctx may be NULL unless the layer (or a layer inside it) splits. */
FG_API fg_var *fg_flow_forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                        fg_flow_ctx *ctx);
/* Runs with gradients disabled (restoring the graph's setting after). */
FG_API fg_var *fg_flow_inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                        fg_flow_ctx *ctx);
/* Same, recording on the tape when the graph has gradients enabled. */
FG_API fg_var *fg_flow_inverse_grad(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                             fg_flow_ctx *ctx);
FG_API void fg_flow_visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx);
FG_API void fg_flow_destroy(fg_flow *f);   /* NULL is fine */
FG_API const char *fg_flow_kind(const fg_flow *f);

/* Sets every actnorm's initialized flag inside f to 0 (through the layers'
 * data_init), so the next forward in training initializes them again. */
FG_API void fg_flow_rearm_actnorm(fg_flow *f);
/* How many parts of f still wait for their data-dependent initialization
 * (0 when none has any). */
FG_API int fg_flow_init_pending(fg_flow *f);

/* ---------------------------------------------------------------- layers
 * Create functions return NULL with fg_error on bad options. */

/* actnorm: y = (x + bias) * exp(logs) per channel; logdet += H W sum(logs).
 * The first forward with gradients enabled and initialized == 0 sets
 * bias = -mean, logs = log(scale / (std + 1e-6)) from the batch, in double. */
typedef struct fg_actnorm_options {
    int channels;
    float scale;         /* 0 means the default, 1.0 */
} fg_actnorm_options;
FG_API fg_flow *fg_actnorm_create(const fg_actnorm_options *o);
/* Data-dependent init on a given batch x (N, C, ...), flag set to 1. */
FG_API void fg_actnorm_initialize(fg_flow *actnorm, const fg_tensor *x);
FG_API int fg_actnorm_is_initialized(const fg_flow *actnorm);
/* Data-parallel training: a reducer sums values[0..n) in place over the
 * processes that each hold a part of the batch. actnorm's data-dependent init
 * passes its per-channel sums through it, so every process starts from the
 * statistics of the whole batch. NULL, the default: this process's batch
 * alone. Process-wide; fg_dist_sum (nn.h) fits. */
typedef void (*fg_sum_reducer)(double *values, int n, void *ctx);
FG_API void fg_actnorm_set_reducer(fg_sum_reducer fn, void *ctx);

/* invconv: z[:, i] = sum_j W[i, j] x[:, j]; logdet += H W log|det W|. Plain
 * keeps W; LU keeps its factors. W starts as init_w when given, else as a
 * random orthogonal matrix from rng (then LU-decomposed for lu = 1). */
typedef struct fg_invconv_options {
    int channels;
    int lu;
    const double *init_w;   /* channels x channels, row-major, or NULL */
    fg_rng *rng;            /* used when init_w is NULL */
} fg_invconv_options;
FG_API fg_flow *fg_invconv_create(const fg_invconv_options *o);
/* The current W (c x c, double), composed from the factors for LU. */
FG_API void fg_invconv_weight(const fg_flow *invconv, double *w);
/* FG_OK when the layer's state (as loaded) gives a W that forward and
 * inverse can use: for LU a permutation p, signs of +-1, and a composed W
 * that is finite and invertible; else FG_ERR naming the tensor under prefix
 * (the layer's "<prefix>.invconv"). */
FG_API int fg_invconv_check(fg_flow *invconv, const char *prefix);

/* permute: z[:, i] = x[:, perm[i]], logdet unchanged. Reverse (perm[i] =
 * C-1-i), or shuffle: a random permutation drawn at creation and saved. */
typedef struct fg_permute_options {
    int channels;
    int shuffle;            /* 0: reverse, 1: shuffle */
    fg_rng *rng;            /* shuffle: draws the permutation */
} fg_permute_options;
FG_API fg_flow *fg_permute_create(const fg_permute_options *o);

/* ---------------------------------------------------------------- conditioner networks
 * The network of a coupling (h = NN(conditioning part)) as a list of
 * modules, run on images (N, C, H, W) or on vectors (N, D)
 * (flows/conditioner.c). On images, a network of conv, actnorm, relu and
 * zero_conv modules runs as one op, chunk of images by chunk, one chunk
 * per thread (fg_conv_chain); any other runs in channel-major layout, so
 * every convolution is one GEMM over the batch, and an actnorm followed by
 * a ReLU is one fused op. The list ends in its output module, whose width is
 * the coupling's (changed entries x the map's width) and which starts at
 * zero, so the coupling starts as the identity (or a constant scale).
 *
 *   relu, tanh, elu (alpha 1), leaky_relu (slope 0.01)   no state
 *   conv        images: kernel 1 or 3 (0: 3), width outputs, bias when
 *               set; weights N(0, 0.05^2)             <name>.{weight,bias}
 *   dense       vectors: width outputs, bias when set; He-initialized
 *   actnorm     per-channel (x + bias) e^logs, data-initialized
 *                                                     <name>.{bias,logs,initialized}
 *   residual    x + B(act(A(x))): A, B convs of `kernel` (images) or
 *               dense layers (vectors) with bias, A of `width` outputs
 *               (0: x's), B back to x's width and zero at the start, so
 *               the block begins as the identity; act = `activation`
 *               (relu, tanh, elu or leaky_relu)       <name>.0.*, <name>.2.*
 *   zero_conv   images, the output: Glow's zero conv (x e^{3 logs}) of
 *               `kernel`                              <name>.{weight,bias,logs}
 *   zero_dense  vectors, the output: a zero dense layer  <name>.{weight,bias}
 *
 * A module is named "nn.<i>", i its index in the list (activations count,
 * as in a torch.nn.Sequential), unless its spec gives a name. */
typedef enum {
    FG_NET_RELU = 0,
    FG_NET_TANH,
    FG_NET_ELU,
    FG_NET_LEAKY_RELU,
    FG_NET_CONV,
    FG_NET_DENSE,
    FG_NET_ACTNORM,
    FG_NET_RESIDUAL,
    FG_NET_ZERO_CONV,
    FG_NET_ZERO_DENSE
} fg_net_kind;
#define FG_NET_KINDS (FG_NET_ZERO_DENSE + 1)
typedef struct fg_net_layer {
    fg_net_kind kind;
    int width;              /* conv, dense: outputs; residual: A's outputs (0: the input's) */
    int kernel;             /* conv, residual on images, zero_conv: 1 or 3 (0: 3) */
    int bias;               /* conv, dense: 1 for a bias */
    fg_net_kind activation; /* residual: an activation kind (0: relu) */
    const char *name;       /* NULL: "nn.<index>" */
} fg_net_layer;
typedef struct fg_net fg_net;
/* A network from in channels (entries) to out, for images or vectors;
 * NULL with fg_error naming owner and the module when the list does not
 * fit (an image module on vectors, a width <= 0, no output module last). */
FG_API fg_net *fg_net_create(const char *owner, const fg_net_layer *layers, int n, int in,
                             int out, int images, fg_rng *rng);
FG_API void fg_net_destroy(fg_net *net);   /* NULL is fine */
/* (N, in, H, W) -> (N, out, H, W) for an image network, (N, in) -> (N, out)
 * for a vector one. */
FG_API fg_var *fg_net_apply(fg_net *net, fg_graph *g, fg_var *x);
/* The same for an image network whose last Cc input channels are a
 * condition vector cond (N, Cc) repeated at every pixel: what fg_net_apply
 * gives for x with cond broadcast and concatenated after its channels, but
 * with the condition's part of the first convolution computed in closed
 * form (fg_conv_chain's condition) instead of as Cc more channels. NULL,
 * with nothing recorded, when the network cannot take it that way (its
 * first module is not a convolution that fits, it does not run as one
 * chain, or its actnorms still wait for their data-dependent init): then
 * concatenate and call fg_net_apply. */
FG_API fg_var *fg_net_apply_vector_condition(fg_net *net, fg_graph *g, fg_var *x,
                                             fg_var *cond);
FG_API void fg_net_visit(fg_net *net, const char *prefix, fg_visit_fn fn, void *vctx);
/* As fg_flow_ops.data_init, over the network's actnorms. */
FG_API int fg_net_data_init(fg_net *net, int rearm);
/* The name of a module kind as configs write it ("conv", "zero_dense"). */
FG_API const char *fg_net_kind_name(fg_net_kind k);

/* coupling: one part of x passes through unchanged and conditions an
 * invertible map of the rest through h = NN(conditioning part).
 *
 * Masks (which part conditions):
 *   channel            x1 = x[:, :C/2] conditions x2 = x[:, C/2:];
 *                      z = cat(x1, z2). NN sees C/2 channels. C even.
 *   channel_flip       x[:, C/2:] conditions x[:, :C/2]; z = cat(z2, x1).
 *   checkerboard       m[h, w] = 1 where (h + w) is even, the same for every
 *                      channel; NN sees the masked full input x * m (C
 *                      channels) and only entries where m = 0 change.
 *   checkerboard_flip  m[h, w] = 1 where (h + w) is odd.
 * With a checkerboard mask, shift and log-scale are multiplied by (1 - m),
 * so the formulas below hold elementwise on the whole tensor.
 *
 * Additive: z2 = x2 + h. Affine: shift = h[:, 0::2], r = h[:, 1::2],
 *   log scale = log sigmoid(r + 2)            (scale sigmoid, Glow)
 *   log scale = tanh(r)                       (scale tanh, RealNVP: the
 *                                              scale exp(tanh(r)) lies in
 *                                              (1/e, e))
 * z2 = (x2 + shift) * exp(log scale), logdet += sum of log scale.
 * Spline (Durkan et al. 2019): z2 = s(x2) elementwise, s the monotonic
 *   rational-quadratic spline of `bins` bins on [-bound, bound] and the
 *   identity outside (tensor.h, fg_k_rq_spline), its 3 bins - 1 raw
 *   parameters per entry the channels c (3K-1) .. c (3K-1) + 3K-2 of h
 *   (widths, heights, inner derivatives); logdet += sum log s'(x2).
 * The NN's last conv starts at zero: additive, tanh and spline couplings
 * begin as the identity, sigmoid ones as the scale sigmoid(2) ~ 0.88.
 * A spline coupling whose input holds NaN or Inf passes NaN on and leaves
 * fg_last_error() naming the layer, the sample and the entry (the trainer
 * quotes it when the loss is not finite). */
typedef enum {
    FG_COUPLING_MASK_CHANNEL = 0,
    FG_COUPLING_MASK_CHANNEL_FLIP,
    FG_COUPLING_MASK_CHECKERBOARD,
    FG_COUPLING_MASK_CHECKERBOARD_FLIP
} fg_coupling_mask;
typedef enum { FG_COUPLING_SCALE_SIGMOID = 0, FG_COUPLING_SCALE_TANH } fg_coupling_scale;
/* The map of the changing part; also the transform of the autoregressive
 * layers below. */
typedef enum {
    FG_TRANSFORM_ADDITIVE = 0,
    FG_TRANSFORM_AFFINE,
    FG_TRANSFORM_SPLINE
} fg_transform_kind;
typedef struct fg_coupling_options {
    int channels;
    int hidden;             /* width of the NN */
    fg_transform_kind transform; /* additive, affine or spline */
    fg_rng *rng;            /* NN conv weights ~ N(0, 0.05^2) */
    fg_coupling_mask mask;  /* default (0): channel */
    fg_coupling_scale scale;/* default (0): sigmoid; affine only */
    int bins;               /* spline only: 2..FG_RQ_MAX_BINS */
    float bound;            /* spline only: > 0 */
    /* The network, or NULL for Glow's: conv3x3 (hidden, no bias), actnorm,
     * relu, conv1x1 (hidden, no bias), actnorm, relu, zero_conv. Its input
     * is the conditioning part with the condition's channels after it. */
    const fg_net_layer *net;
    int net_layers;
    int cond_channels;   /* 0: unconditional; else Cc, the condition's channels (vector entries) the conditioner takes as extra input */
} fg_coupling_options;
FG_API fg_flow *fg_coupling_create(const fg_coupling_options *o);

/* squeeze: (N, C, H, W) -> (N, 4C, H/2, W/2) in Glow's channel order;
 * unsqueeze is its inverse as a layer. Volume preserving. */
FG_API fg_flow *fg_squeeze_create(void);
FG_API fg_flow *fg_unsqueeze_create(void);

/* split: forward keeps z1 = x[:, :C/2], pushes z2 = x[:, C/2:] onto ctx and
 * adds log N(z2; mean, e^logs) to ctx->logp, with h = zero_conv3x3(z1),
 * mean = h[:, 0::2], logs = h[:, 1::2]. logdet unchanged (x -> (z1, z2) is
 * a relabelling). Inverse pops z2 from ctx, or draws
 * mean + T e^logs eps. C must be even. With standard = 1 the prior of z2
 * is N(0, I) instead (mean = 0, logs = 0; no conv, no state).
 *
 * logs_floor = F > 0 keeps the learned log-std above -F, softly:
 * logs = softplus(h_odd + F) - F, which exceeds h_odd by
 * log(1 + e^-(h_odd + F)), little wherever h_odd is well above -F (at the
 * zero start, logs = log(1 + e^F) - F). Unbounded, the prior learns to
 * predict Fashion-MNIST's background to a standard deviation of e^-9 and
 * less, and one image of a texture it has never seen then scores millions
 * of bits/dim (BENCHMARKS.md, "One image can carry a test mean"). */
typedef struct fg_split_options {
    int channels;
    int standard;           /* 0: learned conditional Gaussian, 1: N(0, I) */
    int cond_channels;      /* learned only: 0, or Cc: the conv also sees the batch's
                               condition (ctx->condition, fg_condition_for), C/2 + Cc
                               channels in; a standard prior ignores it */
    float logs_floor;       /* learned only: 0 (Glow's, unbounded) or F > 0, above */
} fg_split_options;
FG_API fg_flow *fg_split_create(const fg_split_options *o);
/* The conditional Gaussian of z2 given z1 (each (N, C/2, H, W)), and given
 * the condition for a conditional split (NULL otherwise). */
FG_API void fg_split_prior_params(fg_flow *split, fg_graph *g, fg_var *z1, fg_var **mean,
                           fg_var **logs);
FG_API void fg_split_prior_params_cond(fg_flow *split, fg_graph *g, fg_var *z1,
                                       fg_var *condition, fg_var **mean, fg_var **logs);

/* ---------------------------------------------------------------- vectors
 * A batch of D-vectors is an (N, D) tensor. The channel-wise layers
 * (actnorm, invconv plain and LU, permute, scale_diag) and the priors take
 * it with D as channels (H = W = 1); the vector layers below (dense
 * couplings, MAF, IAF) take it or (N, D, 1, 1), what flatten gives; the
 * image layers (squeeze, split, conv couplings, flatten) refuse it with an
 * error from out_shape. The multi-scale container without splits is then a
 * sequential flow over vectors (input (N, D)); models/vector_flow.h wraps
 * it with a trainer.
 *
 * flatten: (N, C, H, W) -> (N, C H W, 1, 1) in memory order; the inverse
 * restores the image. Volume preserving. */
typedef struct fg_flatten_options {
    int channels, height, width;
} fg_flatten_options;
FG_API fg_flow *fg_flatten_create(const fg_flatten_options *o);

/* dense_coupling: the coupling of flow.h on vectors (N, D), D even,
 * with mask channel (x[:, :D/2] conditions x[:, D/2:]) or channel_flip,
 * additive, affine with the same scale bounds, or spline, and a fully connected
 * network h = out(relu(hidden_{L-1}(... relu(hidden_0(x1))))): L = layers
 * hidden layers of width hidden (He-initialized, with bias), then `out`
 * (zero-initialized, so the layer starts as the identity). State:
 *   dense_coupling.hidden.<i>.{weight,bias}, dense_coupling.out.{weight,bias} */
typedef struct fg_dense_coupling_options {
    int dim;                /* D */
    int hidden;
    int layers;             /* hidden layers, >= 1 */
    fg_transform_kind transform;
    fg_coupling_mask mask;  /* channel or channel_flip */
    fg_coupling_scale scale;
    fg_rng *rng;
    int bins;               /* spline only */
    float bound;            /* spline only */
    /* The network, or NULL for the ReLU network above (hidden, layers).
     * Its input is the conditioning half with the condition after it. */
    const fg_net_layer *net;
    int net_layers;
    int cond_channels;   /* 0: unconditional; else Cc, the condition's channels (vector entries) the conditioner takes as extra input */
} fg_dense_coupling_options;
FG_API fg_flow *fg_dense_coupling_create(const fg_dense_coupling_options *o);

/* Autoregressive flows on vectors (N, D), D >= 2: each entry i is
 * transformed (affine or spline, as a coupling's changing part) with
 * parameters from a MADE network (Germain et al. 2015) of the entries
 * before it: masked dense layers in -> hidden (-> hidden)* -> D params,
 * input i of degree i + 1, hidden units of degrees cycling 1..D-1, a hidden
 * unit seeing the inputs and units of lower or equal degree, and the
 * outputs of entry i only units of degree <= i. The Jacobian is then
 * triangular and log|det| the sum of the entries' log-derivatives.
 *
 *   MAF (Papamakarios et al. 2017): z = t(x; MADE(x)). forward (density)
 *       is one pass of the network; inverse (sampling) takes D passes,
 *       each fixing one more entry of x.
 *   IAF (Kingma et al. 2016): x = t(z; MADE(z)). inverse (sampling) is one
 *       pass; forward (density) takes D passes.
 * The order is the vector's own; put a permute between layers to vary it.
 * The output layer starts at zero (affine: scale sigmoid(2) or 1 for tanh;
 * spline: the identity). State:
 *   <kind>.hidden.<i>.{weight,bias}, <kind>.out.{weight,bias}
 * with kind "maf" or "iaf"; weights are stored whole and masked when used,
 * so the masked-out entries of a weight never change. */
typedef struct fg_autoregressive_options {
    int dim;                /* D >= 2 */
    int hidden;             /* width of the MADE's hidden layers, >= 1 */
    int layers;             /* hidden layers, >= 1 */
    int inverse;            /* 0: MAF, 1: IAF */
    fg_transform_kind transform; /* affine or spline */
    fg_coupling_scale scale;/* affine only */
    int bins;               /* spline only */
    float bound;            /* spline only */
    fg_rng *rng;
} fg_autoregressive_options;
FG_API fg_flow *fg_autoregressive_create(const fg_autoregressive_options *o);

/* scale_diag: NICE's diagonal scaling, z = x * exp(logs) per channel,
 * logdet += H W sum(logs); state scale_diag.logs [C], zeros at creation. */
FG_API fg_flow *fg_scale_diag_create(int channels);

/* A sequence is itself a layer; it owns its layers. The array is copied.
 * Returns NULL (and destroys the layers) on bad arguments. */
FG_API fg_flow *fg_sequence_create(fg_flow **layers, int n);
FG_API int fg_sequence_length(const fg_flow *seq);
FG_API fg_flow *fg_sequence_layer(fg_flow *seq, int i);

/* ---------------------------------------------------------------- loaded state
 * Values from outside (a checkpoint) must pass these before a layer runs on
 * them; the layers themselves stop on a broken one as an internal error.
 * `what` names the tensor in the message ("run/c.safetensors: tensor 'x'"). */

/* FG_ERR unless v holds each of 0..n-1 exactly once (as whole numbers). */
FG_API int fg_flow_check_permutation(const char *what, const float *v, int64_t n);
/* FG_ERR unless every entry is +1 or -1 (invconv_lu's sign buffer). */
FG_API int fg_flow_check_signs(const char *what, const float *v, int64_t n);
/* Every check_state inside f (an invconv's W, a sequence's layers; state
 * names as the visitors give them under prefix). */
FG_API int fg_flow_check_invertible(fg_flow *f, const char *prefix);
/* v as messages show it: "NaN", "+Inf", "-Inf" or %.9g, into buf. */
FG_API const char *fg_value_text(double v, char *buf, size_t n);

/* ---------------------------------------------------------------- priors */

/* Diagonal Gaussian over the top latent (N, C, H, W), or over vectors
 * (N, C) with `vectors` set (height and width are then 1). Standard normal
 * by default. learn_top: h = zero_conv3x3(zeros (N, 2C, H, W)), mean =
 * h[:, :C], logs = h[:, C:] (Glow's halves; for vectors the conv sees
 * (N, 2C, 1, 1), so its bias and logs are a learned mean and scale per
 * entry). n_classes > 0: a zero-initialized linear map of one-hot y gives
 * 2C values per sample added to h (broadcast over H, W) before the halves
 * are taken. cond_channels = Cc > 0 (needs learn_top): the conv's input is
 * concat(zeros, fg_condition_for(condition)), 2C + Cc channels, so mean and
 * log-std depend on the condition of the batch (the _cond forms take it;
 * the others are those with condition NULL, for unconditional priors). The
 * state is the same for vectors as for (N, C, 1, 1). */
typedef struct fg_prior_options {
    int channels, height, width;
    int learn_top;
    int n_classes;           /* 0: unconditional */
    int vectors;             /* 1: latents (N, C); height and width are ignored */
    int cond_channels;       /* 0, or Cc: the condition's channels (learn_top only) */
} fg_prior_options;
typedef struct fg_prior {
    int channels, height, width, learn_top, n_classes;
    fg_zero_conv top;        /* when learn_top */
    fg_linear project_y;     /* when n_classes > 0 */
    int vectors;
    int cond_channels;
} fg_prior;
FG_API fg_prior *fg_prior_create(const fg_prior_options *o);
FG_API void fg_prior_destroy(fg_prior *p);
/* mean, logs (N, C, H, W), or (N, C) for vectors; y: N labels in
 * [0, n_classes), or NULL when unconditional. */
FG_API void fg_prior_params(fg_prior *p, fg_graph *g, int n, const int *y,
                     fg_var **mean, fg_var **logs);
FG_API fg_var *fg_prior_logp(fg_prior *p, fg_graph *g, fg_var *z, const int *y); /* [N] */
/* mean + T e^logs eps; rng may be NULL at T = 0. */
FG_API fg_var *fg_prior_sample(fg_prior *p, fg_graph *g, int n, const int *y,
                        float temperature, fg_rng *rng);
/* The same given the batch's condition (N rows; NULL for an unconditional
 * prior; a conditional one stops without it). */
FG_API void fg_prior_params_cond(fg_prior *p, fg_graph *g, int n, const int *y,
                                 fg_var *condition, fg_var **mean, fg_var **logs);
FG_API fg_var *fg_prior_logp_cond(fg_prior *p, fg_graph *g, fg_var *z, const int *y,
                                  fg_var *condition);
FG_API fg_var *fg_prior_sample_cond(fg_prior *p, fg_graph *g, int n, const int *y,
                                    fg_var *condition, float temperature, fg_rng *rng);
FG_API void fg_prior_visit(fg_prior *p, const char *prefix, fg_visit_fn fn, void *vctx);

/* ---------------------------------------------------------------- multi-scale
 * A chain of layers (splits included) and a prior on the last output.
 * log p(x) = sum of the latents' log-densities + logdet of the chain.
 *
 * A conditional chain (cond_channels > 0; its couplings and learned split
 * priors made with the same cond_channels) models p(x | c): the _cond forms
 * take the batch's condition c ((N, Cc) or (N, Cc, Hc, Wc), N the batch's)
 * and hand it to every layer in fg_flow_ctx.condition and to the top prior,
 * in every pass (recorded, unit by unit, by inversion, inverse and
 * sampling). The forms without _cond are those with c = NULL, for
 * unconditional chains; a conditional chain stops without its condition. */
typedef struct fg_multiscale_options {
    fg_flow **layers;        /* ownership passes to the container */
    int n_layers;
    fg_flow_shape input;     /* (N, C, H, W), or (N, D) for vectors; N is not checked */
    int learn_top;
    int n_classes;
    int cond_channels;       /* 0, or Cc: the top prior takes the condition */
} fg_multiscale_options;
typedef struct fg_multiscale {
    fg_flow *body;           /* a sequence, visited as "flow.<i>..." */
    fg_prior *prior;         /* visited as "prior..." */
    fg_flow_shape input, top;
    int n_latents;           /* split-off latents + the top one */
    int cond_channels;
} fg_multiscale;
/* Validates every shape first; on FG_ERR the layers are destroyed. */
FG_API int fg_multiscale_create(const fg_multiscale_options *o, fg_multiscale **out);
FG_API void fg_multiscale_destroy(fg_multiscale *m);
FG_API void fg_multiscale_visit(fg_multiscale *m, const char *prefix, fg_visit_fn fn,
                         void *vctx);
/* log p(x) per sample [N]; y may be NULL when unconditional. */
FG_API fg_var *fg_multiscale_log_prob(fg_multiscale *m, fg_graph *g, fg_var *x,
                               const int *y);
/* All latents in forward order (split-offs, then the top); returns the count
 * (m->n_latents). *logp (may be NULL) receives log p(x) [N]. */
FG_API int fg_multiscale_encode(fg_multiscale *m, fg_graph *g, fg_var *x, const int *y,
                         fg_var **latents, fg_var **logp);
/* Exact inverse of encode (no-grad). */
FG_API fg_var *fg_multiscale_decode(fg_multiscale *m, fg_graph *g, fg_var **latents,
                             int n_latents);
/* n samples at temperature T (no-grad); T = 0 maps the prior means back. */
FG_API fg_var *fg_multiscale_sample(fg_multiscale *m, fg_graph *g, int n, const int *y,
                             float temperature, fg_rng *rng);
/* The same given the condition of the batch (see above). */
FG_API fg_var *fg_multiscale_log_prob_cond(fg_multiscale *m, fg_graph *g, fg_var *x,
                                           const int *y, fg_var *condition);
FG_API int fg_multiscale_encode_cond(fg_multiscale *m, fg_graph *g, fg_var *x, const int *y,
                                     fg_var *condition, fg_var **latents, fg_var **logp);
FG_API fg_var *fg_multiscale_decode_cond(fg_multiscale *m, fg_graph *g, fg_var **latents,
                                         int n_latents, fg_var *condition);
FG_API fg_var *fg_multiscale_sample_cond(fg_multiscale *m, fg_graph *g, int n, const int *y,
                                         fg_var *condition, float temperature, fg_rng *rng);

/* ---------------------------------------------------------------- memory by inversion
 * Passes without a tape (encode with gradients disabled, decode, sample)
 * run the chain one layer at a time and give each layer's intermediates
 * back before the next (flows/multiscale_units.c): same values, a fraction
 * of the memory.
 *
 * fg_multiscale_encode_invert is fg_multiscale_encode for training without
 * stored activations (flows/multiscale_invert.c): the chain runs forward
 * without a tape, one custom op stands for it, and the backward pass
 * computes each layer's input again with its inverse from its output,
 * records that layer alone and propagates through it. Gradients equal
 * those of fg_multiscale_encode up to float rounding (the recomputed inputs
 * differ from the forward's in the last bits); the prior and anything after
 * it are recorded as usual. With gradients disabled it is
 * fg_multiscale_encode. */
typedef struct fg_invert_stats {
    double drift;       /* last backward: max |x recomputed - x| over the layers' inputs
                           (256 evenly spaced values of each; all of the chain's input) */
    double residual;    /* last backward: max over layers of |f(f^-1(z)) - z| */
    int units;          /* layers it walked */
    long backwards;     /* backward passes so far */
} fg_invert_stats;
/* stats may be NULL; else it is filled by the backward pass. */
FG_API int fg_multiscale_encode_invert(fg_multiscale *m, fg_graph *g, fg_var *x, const int *y,
                                       fg_var **latents, fg_var **logp,
                                       fg_invert_stats *stats);
/* The same given the condition: every unit sees it in the forward and
 * again when its backward records it; a condition that requires a
 * gradient receives it. */
FG_API int fg_multiscale_encode_invert_cond(fg_multiscale *m, fg_graph *g, fg_var *x,
                                            const int *y, fg_var *condition,
                                            fg_var **latents, fg_var **logp,
                                            fg_invert_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
