/* 2-D toy densities (two moons, eight Gaussians, checkerboard) and a small
 * flow of dense couplings or MAF layers, affine or spline, that learns them
 * with the library trainer (what examples/toy2d runs): a vector flow
 * (models/vector_flow.h) over points stored row-major, n x 2. */
#ifndef FLOWGRAD_MODELS_TOY2D_H
#define FLOWGRAD_MODELS_TOY2D_H

#include "models/vector_flow.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { FG_TOY2D_MOONS = 0, FG_TOY2D_8GAUSSIANS, FG_TOY2D_CHECKERBOARD } fg_toy2d_density;

/* FG_ERR with fg_error for a name that is none of "moons", "8gaussians",
 * "checkerboard". */
FG_API int fg_toy2d_density_parse(const char *name, fg_toy2d_density *d);
FG_API const char *fg_toy2d_density_name(fg_toy2d_density d);
/* n fresh points of the target density into x (n x 2). */
FG_API void fg_toy2d_sample(fg_toy2d_density d, fg_rng *rng, int n, float *x);
/* The target's own log-density at x (n x 2) into out; returns 0 (and
 * writes nothing) where it has no closed form (two moons). */
FG_API int fg_toy2d_true_log_prob(fg_toy2d_density d, const float *x, int n, double *out);

typedef struct fg_toy2d_options {
    int layers;             /* coupling blocks */
    int hidden;             /* width of each coupling network */
    int depth;              /* hidden layers per coupling network */
    int actnorm;            /* 1: an actnorm in front of every coupling */
    int maf;                /* 1: MAF layers (flow.h) instead of couplings */
    int spline;             /* 1: spline transforms instead of affine (tanh) */
    int bins;               /* spline: bins, 0 for 8 */
    float bound;            /* spline: bound, 0 for 4 */
} fg_toy2d_options;

typedef struct fg_toy2d_model {
    fg_vector_flow flow;    /* D = 2, a standard Gaussian prior, Adam; each step sets
                               the trainer's base rate */
} fg_toy2d_model;

/* FG_ERR with fg_error on bad options. */
FG_API int fg_toy2d_model_init(fg_toy2d_model *m, const fg_toy2d_options *o, fg_rng *rng);
FG_API void fg_toy2d_model_free(fg_toy2d_model *m);
/* One trainer step on -mean log p(x) over x (n x 2) at learning rate lr;
 * returns that loss. */
FG_API double fg_toy2d_train_step(fg_toy2d_model *m, const float *x, int n, double lr);
/* log p(x) of the model (no-grad, batched) into out[n]. */
FG_API void fg_toy2d_log_prob(fg_toy2d_model *m, const float *x, int n, double *out);
/* Mean of log p(x) over the n points. */
FG_API double fg_toy2d_mean_log_prob(fg_toy2d_model *m, const float *x, int n);
/* log p at the centres of a res x res grid over [lo, hi]^2, row r from the
 * top (y = hi) down, column c from x = lo: out[r * res + c]. */
FG_API void fg_toy2d_grid_log_prob(fg_toy2d_model *m, int res, double lo, double hi, double *out);
/* Riemann sum of exp(log p) over that grid: close to the mass the model
 * puts inside [lo, hi]^2. */
FG_API double fg_toy2d_grid_mass(const double *grid_logp, int res, double lo, double hi);
/* n samples of the model at temperature 1 into x (n x 2). */
FG_API void fg_toy2d_model_sample(fg_toy2d_model *m, int n, fg_rng *rng, float *x);

#ifdef __cplusplus
}
#endif
#endif
