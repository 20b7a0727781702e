/* flowgrad nn layer: named parameters, modules built from autograd ops,
 * initializers, optimizers and schedules, checkpoints, data and images. */
#ifndef FLOWGRAD_NN_H
#define FLOWGRAD_NN_H

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
const char *fg_name_join(char *buf, size_t n, const char *prefix, const char *name);
#define FG_NAME_LEN 256

/* ---------------------------------------------------------------- modules */

/* 2-D convolution, stride 1, same padding. weight (co, ci, k, k), bias (co)
 * or NULL. Weights drawn N(0, init_std^2); init_std 0 means zeros. */
typedef struct fg_conv {
    fg_var *weight, *bias;
    int ci, co, k;
} fg_conv;
void fg_conv_init(fg_conv *c, int ci, int co, int k, int with_bias,
                  float init_std, fg_rng *rng);
fg_var *fg_conv_apply(fg_graph *g, fg_conv *c, fg_var *x);
void fg_conv_visit(fg_conv *c, const char *prefix, fg_visit_fn fn, void *ctx);
void fg_conv_free(fg_conv *c);

/* Glow's zero-initialized convolution: conv(x) * exp(logscale_factor * logs)
 * with weight, bias and logs (co) all zero at creation, so its output starts
 * at exactly zero. */
typedef struct fg_zero_conv {
    fg_conv conv;
    fg_var *logs;
    float logscale_factor;   /* 3 in Glow */
} fg_zero_conv;
void fg_zero_conv_init(fg_zero_conv *z, int ci, int co, int k, float logscale_factor);
fg_var *fg_zero_conv_apply(fg_graph *g, fg_zero_conv *z, fg_var *x);
void fg_zero_conv_visit(fg_zero_conv *z, const char *prefix, fg_visit_fn fn, void *ctx);
void fg_zero_conv_free(fg_zero_conv *z);

/* Dense layer on (N, in) -> (N, out): x W^T + b. weight (out, in). */
typedef struct fg_linear {
    fg_var *weight, *bias;
    int in, out;
} fg_linear;
void fg_linear_init(fg_linear *l, int in, int out, int with_bias,
                    float init_std, fg_rng *rng);
fg_var *fg_linear_apply(fg_graph *g, fg_linear *l, fg_var *x);
void fg_linear_visit(fg_linear *l, const char *prefix, fg_visit_fn fn, void *ctx);
void fg_linear_free(fg_linear *l);

#ifdef __cplusplus
}
#endif
#endif
