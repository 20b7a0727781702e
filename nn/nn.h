/* flowgrad nn layer: named parameters, modules built from autograd ops,
 * initializers, optimizers, schedules and weight averages. Files, data and
 * images are in nn/io.h; data parallelism in nn/distributed.h. */
#ifndef FLOWGRAD_NN_H
#define FLOWGRAD_NN_H

#include <stdio.h>
#include "autograd/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- naming
 * Every module exposes its state by visiting (name, variable, kind). A
 * parameter is trained; a buffer is saved with the model but never trained
 * (actnorm's init flag, a fixed permutation, LU's P and sign). Names are
 * dotted paths: "flow.3.coupling.nn.0.weight". */
typedef enum { FG_PARAM = 0, FG_BUFFER = 1 } fg_state_kind;
typedef void (*fg_visit_fn)(void *ctx, const char *name, fg_var *v, fg_state_kind kind);

/* Joins prefix and name with a dot into buf (prefix may be NULL or ""). */
FG_API const char *fg_name_join(char *buf, size_t n, const char *prefix, const char *name);
#define FG_NAME_LEN 256

/* ---------------------------------------------------------------- modules */

/* 2-D convolution, stride 1, same padding. weight (co, ci, k, k), bias (co)
 * or NULL. Weights drawn N(0, init_std^2); init_std 0 means zeros. */
typedef struct fg_conv {
    fg_var *weight, *bias;
    int ci, co, k;
} fg_conv;
FG_API void fg_conv_init(fg_conv *c, int ci, int co, int k, int with_bias,
                  float init_std, fg_rng *rng);
FG_API fg_var *fg_conv_apply(fg_graph *g, fg_conv *c, fg_var *x);
/* The same on a channel-major batch of N images (see fg_to_channel_major). */
FG_API fg_var *fg_conv_apply_cm(fg_graph *g, fg_conv *c, fg_var *x, int N);
FG_API void fg_conv_visit(fg_conv *c, const char *prefix, fg_visit_fn fn, void *ctx);
FG_API void fg_conv_free(fg_conv *c);

/* Glow's zero-initialized convolution: conv(x) * exp(logscale_factor * logs)
 * with weight, bias and logs (co) all zero at creation, so its output starts
 * at exactly zero. */
typedef struct fg_zero_conv {
    fg_conv conv;
    fg_var *logs;
    float logscale_factor;   /* 3 in Glow */
} fg_zero_conv;
FG_API void fg_zero_conv_init(fg_zero_conv *z, int ci, int co, int k, float logscale_factor);
FG_API fg_var *fg_zero_conv_apply(fg_graph *g, fg_zero_conv *z, fg_var *x);
FG_API fg_var *fg_zero_conv_apply_cm(fg_graph *g, fg_zero_conv *z, fg_var *x, int N);
FG_API void fg_zero_conv_visit(fg_zero_conv *z, const char *prefix, fg_visit_fn fn, void *ctx);
FG_API void fg_zero_conv_free(fg_zero_conv *z);

/* Dense layer on (N, in) -> (N, out): x W^T + b. weight (out, in). */
typedef struct fg_linear {
    fg_var *weight, *bias;
    int in, out;
} fg_linear;
FG_API void fg_linear_init(fg_linear *l, int in, int out, int with_bias,
                    float init_std, fg_rng *rng);
FG_API fg_var *fg_linear_apply(fg_graph *g, fg_linear *l, fg_var *x);
FG_API void fg_linear_visit(fg_linear *l, const char *prefix, fg_visit_fn fn, void *ctx);
FG_API void fg_linear_free(fg_linear *l);

/* ---------------------------------------------------------------- state lists
 * A flat list of a model's named state, filled by its visit function:
 *     fg_state_list l; fg_state_list_init(&l);
 *     model_visit(model, "", fg_state_list_add, &l);
 * Entries borrow the variables; the list owns only its array. */
typedef struct fg_state_entry {
    char name[FG_NAME_LEN];
    fg_var *var;
    fg_state_kind kind;
} fg_state_entry;
typedef struct fg_state_list {
    fg_state_entry *items;
    int n, cap;
} fg_state_list;

FG_API void fg_state_list_init(fg_state_list *l);
FG_API void fg_state_list_free(fg_state_list *l);
/* An fg_visit_fn (ctx is the list). A repeated name is a wiring bug: fatal. */
FG_API void fg_state_list_add(void *list, const char *name, fg_var *v, fg_state_kind kind);
FG_API fg_state_entry *fg_state_list_find(const fg_state_list *l, const char *name);
/* Number of trainable scalars (FG_PARAM entries only). */
FG_API size_t fg_state_list_param_count(const fg_state_list *l);
FG_API void fg_state_list_zero_grad(const fg_state_list *l);
/* sqrt of the sum of squared gradients of all FG_PARAM entries (double). */
FG_API double fg_state_list_grad_norm(const fg_state_list *l);
/* Scales all parameter gradients so their global norm is at most max_norm;
 * returns the norm before clipping. */
FG_API double fg_state_list_clip_grad_norm(const fg_state_list *l, double max_norm);
/* Copies every value of src into the entry of dst with the same name.
 * FG_ERR if a name of dst is missing in src or the shapes differ. */
FG_API int fg_state_list_copy_values(const fg_state_list *dst, const fg_state_list *src);
/* FG_OK when every value (and, with grads, every parameter gradient) is
 * finite; else FG_ERR naming the first non-finite tensor. */
FG_API int fg_state_list_check_finite(const fg_state_list *l, int grads);

/* ---------------------------------------------------------------- optimizers
 * Adam (Kingma & Ba, Algorithm 1) and Adamax (Algorithm 2), with bias
 * correction, over the FG_PARAM entries of a state list. Moments are float32
 * leaves named "optim.m.<param>" and "optim.v.<param>" (Adamax keeps its
 * infinity norm u under "optim.v.<param>"). Adamax adds eps inside the max,
 * u = max(beta2 u, |g| + eps), as PyTorch does, so u is never zero. */
typedef enum { FG_ADAM = 0, FG_ADAMAX = 1 } fg_optim_kind;
typedef struct fg_optim {
    fg_optim_kind kind;
    double beta1, beta2, eps;
    long step;                 /* updates taken so far */
    int n;
    fg_var **params;           /* borrowed */
    fg_var **m, **v;           /* owned, no grad */
    char (*names)[FG_NAME_LEN];
} fg_optim;
/* Defaults: beta1 0.9, beta2 0.999, eps 1e-8 (pass them explicitly). */
FG_API void fg_optim_init(fg_optim *o, fg_optim_kind kind, const fg_state_list *l,
                   double beta1, double beta2, double eps);
FG_API void fg_optim_free(fg_optim *o);
/* One update with learning rate lr from the parameters' gradients. */
FG_API void fg_optim_step(fg_optim *o, double lr);
FG_API void fg_adam_update(size_t n, float *p, const float *g, float *m, float *v,
                    double lr, double beta1, double beta2, double eps, long t);
FG_API void fg_adamax_update(size_t n, float *p, const float *g, float *m, float *u,
                      double lr, double beta1, double beta2, double eps, long t);
/* Visits the moments as FG_BUFFER entries (prefix ignored if NULL). */
FG_API void fg_optim_visit(fg_optim *o, fg_visit_fn fn, void *ctx);
/* "adam" / "adamax"; parse returns FG_ERR for anything else. */
FG_API const char *fg_optim_kind_name(fg_optim_kind k);
FG_API int fg_optim_kind_parse(const char *s, fg_optim_kind *k);

/* Linear warmup: lr * min(1, step / warmup) for the update numbered step
 * (1-based); warmup <= 0 means no warmup. */
FG_API double fg_lr_warmup(double lr, long step, long warmup);
/* Warmup as fg_lr_warmup, then lr held (constant) or decayed towards 0 over
 * the updates warmup..total by a half cosine or a straight line; the update
 * numbered total still gets a small positive rate, not 0.
 * A function of its arguments only, so a resumed run needs no state. */
typedef enum { FG_SCHEDULE_CONSTANT = 0, FG_SCHEDULE_COSINE = 1,
               FG_SCHEDULE_LINEAR = 2 } fg_schedule_kind;
FG_API double fg_lr_schedule(fg_schedule_kind kind, double lr, long step, long warmup, long total);
FG_API const char *fg_schedule_name(fg_schedule_kind k);

/* Exponential moving average of the FG_PARAM values:
 * shadow = decay * shadow + (1 - decay) * value after each update. */
typedef struct fg_ema {
    double decay;
    int n;
    fg_var **params;           /* borrowed */
    fg_var **shadow;           /* owned, "ema.<param>" */
    char (*names)[FG_NAME_LEN];
    int swapped;               /* 1 while the averages sit in the model */
} fg_ema;
FG_API void fg_ema_init(fg_ema *e, const fg_state_list *l, double decay);
FG_API void fg_ema_free(fg_ema *e);
FG_API void fg_ema_update(fg_ema *e);
/* Exchanges model values and averages; call again to swap back. */
FG_API void fg_ema_swap(fg_ema *e);
FG_API void fg_ema_visit(fg_ema *e, fg_visit_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
