/* flowgrad models: a flow model built from a validated config.
 *
 * fg_model_build turns the expanded layer list of an fg_model_spec into the
 * multi-scale container of flows/, each layer made by its kind's entry
 * (models/layer_kind.h), with the top prior the spec asks for (learn_top,
 * y_condition). With y_condition the model also carries Glow's class head,
 * a zero-initialized linear map from the channel means of the top latent to
 * class logits, visited as "project_class.{weight,bias}".
 *
 * The training objective is the mean over the batch of bits per dimension
 * of the dequantized data,
 *     bpd = (-log p(x) + D log 2^n_bits) / (D log 2),
 * plus weight_y times the mean class cross-entropy when y_condition.
 *
 * A conditional model (model.condition, models/config.h) is p(x | c): the
 * condition c reaches every coupling, every learned split prior and the
 * top prior (flows/flow.h, "multi-scale"). The forms that take labels y
 * build c from them for condition: class (the one-hot of y,
 * fg_model_condition); the _cond forms take any c a program has, vectors
 * (N, Cc) or images (N, Cc, Hc, Wc), which condition: tensor needs. y still
 * goes to the y_condition prior shift and class head where those exist. */
#ifndef FLOWGRAD_MODELS_MODEL_H
#define FLOWGRAD_MODELS_MODEL_H

#include "flows/flow.h"
#include "models/config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fg_model {
    fg_multiscale *flow;
    int c, h, w;              /* image shape */
    int n_bits;
    int n_classes;            /* 0 unless y_condition */
    float weight_y;
    int has_class_head;
    fg_linear project_class;  /* top channels -> n_classes, zeros */
    fg_condition_kind condition;  /* what the flow is conditioned on */
    int cond_channels;        /* Cc, 0 without condition */
    int cond_classes;         /* classes of a class condition, else 0 */
    fg_state_list state;      /* every parameter and buffer, by name */
} fg_model;

/* Overrides for building a reduced instance of the same layer list (used to
 * check a model's log-determinant on a small input): 0 keeps the spec. */
typedef struct fg_model_build_options {
    int height, width;        /* input size instead of the spec's */
    int max_hidden;           /* cap on coupling widths */
} fg_model_build_options;

/* Builds the model; weights that are random at creation (invconv rotations,
 * shuffles, coupling convs) come from seed. FG_ERR with a message naming the
 * layer (and its config line) for options the layers cannot express. */
FG_API int fg_model_build(const fg_model_spec *spec, uint64_t seed, fg_model **out);
FG_API int fg_model_build_ex(const fg_model_spec *spec, uint64_t seed,
                      const fg_model_build_options *o, fg_model **out);
FG_API void fg_model_free(fg_model *m);
FG_API void fg_model_visit(fg_model *m, const char *prefix, fg_visit_fn fn, void *vctx);
/* Number of values per image, C*H*W. */
FG_API int fg_model_dims(const fg_model *m);

/* Per-sample bits/dim [N] of x (N, C, H, W) (y: labels or NULL). */
FG_API fg_var *fg_model_bits_per_dim(fg_model *m, fg_graph *g, fg_var *x, const int *y);
/* The scalar training loss (see above); *bpd (may be NULL) receives the
 * batch mean of bits/dim alone. */
FG_API fg_var *fg_model_loss(fg_model *m, fg_graph *g, fg_var *x, const int *y,
                      double *bpd);
/* The same with a memory mode (train.memory, models/config.h):
 * FG_MEMORY_STORE is fg_model_loss; FG_MEMORY_INVERT records the flow as
 * one op whose backward computes each layer's input again by its inverse
 * (fg_multiscale_encode_invert), filling *stats (may be NULL) then. The
 * prior, the split priors and the class head are recorded as usual. */
FG_API fg_var *fg_model_loss_ex(fg_model *m, fg_graph *g, fg_var *x, const int *y,
                                double *bpd, fg_memory_mode memory,
                                fg_invert_stats *stats);

/* The condition of a batch of n labels: their one-hot (n, classes), a
 * constant on g, for condition: class; NULL for a model without condition.
 * Stops for condition: tensor (give the tensor to the _cond forms), for
 * NULL labels of a class-conditional model and for a label out of range
 * (callers check labels from outside first). */
FG_API fg_var *fg_model_condition(fg_model *m, fg_graph *g, const int *y, int n);
/* The forms above given the condition c (NULL for a model without one). */
FG_API fg_var *fg_model_bits_per_dim_cond(fg_model *m, fg_graph *g, fg_var *x, const int *y,
                                          fg_var *condition);
FG_API fg_var *fg_model_loss_cond(fg_model *m, fg_graph *g, fg_var *x, const int *y,
                                  fg_var *condition, double *bpd, fg_memory_mode memory,
                                  fg_invert_stats *stats);
/* n samples at the temperature (no-grad) given labels y (class conditions
 * and y_condition priors) or a condition c (which wins when given). */
FG_API fg_var *fg_model_sample(fg_model *m, fg_graph *g, int n, const int *y,
                               fg_var *condition, float temperature, fg_rng *rng);
/* fg_model_sample on n images computed in parts at once, one per graph of
 * graphs[0..parts) and per thread, into out (n x C x H x W): the same
 * images, since each part draws its images' share of every draw
 * (fg_rng_part), and rng moves on as fg_model_sample moves it. Labels y
 * (n of them, or NULL) serve class conditions and y_condition priors; a
 * model with condition: tensor takes fg_model_sample. One part (parts 1,
 * or called from a parallel region) is fg_model_sample on graphs[0]. */
FG_API void fg_model_sample_parts(fg_model *m, fg_graph **graphs, int parts, int n,
                                  const int *y, float temperature, fg_rng *rng, float *out);

/* Condition number above which a plain invertible 1x1 convolution is
 * reported: float32 products lose about log10(cond) of their ~7 digits. */
#define FG_COND_WARN 1e4
/* Estimates cond_1 (fg_mat_condition_1) of every plain invconv weight of
 * l; prints a warning naming the layer for each above limit. Returns how
 * many were reported (a singular W counts as infinite). */
FG_API int fg_state_report_ill_conditioned(const fg_state_list *l, double limit, long step);

/* Forward multiply-adds x 2 per image of the model the spec describes
 * (convolutions, 1x1 invertible convolutions, the class head). */
FG_API double fg_model_spec_flops(const fg_model_spec *spec);

/* What the model a spec describes holds, counted without building it:
 * parameters and buffers (float values, as its state list has them), the
 * bytes of other per-layer constants, and build_bytes, what building it
 * allocates (values, gradients, constants). Counts are doubles so that no
 * config, however large, overflows them. */
typedef struct fg_model_size {
    double params, buffers;
    double extra_bytes;
    double build_bytes;
} fg_model_size;
FG_API void fg_model_spec_size(const fg_model_spec *spec, fg_model_size *out);

#ifdef __cplusplus
}
#endif
#endif
