/* 2-D toy densities (two moons, eight Gaussians, checkerboard) and a small
 * flow of dense affine couplings that learns them: shared by examples/toy2d
 * and its test. Points are a batch of 2-vectors stored row-major, n x 2,
 * which is the memory layout of the flow's (N, 2, 1, 1) tensors. */
#ifndef FLOWGRAD_TOY2D_LIB_H
#define FLOWGRAD_TOY2D_LIB_H

#include "flowgrad.h"

typedef enum { TOY2D_MOONS = 0, TOY2D_8GAUSSIANS, TOY2D_CHECKERBOARD } toy2d_density;

/* FG_ERR with fg_error for a name that is none of "moons", "8gaussians",
 * "checkerboard". */
int toy2d_density_parse(const char *name, toy2d_density *d);
const char *toy2d_density_name(toy2d_density d);
/* n fresh points of the target density into x (n x 2). */
void toy2d_sample(toy2d_density d, fg_rng *rng, int n, float *x);
/* The target's own log-density at x (n x 2) into out; returns 0 (and
 * writes nothing) where it has no closed form (two moons). */
int toy2d_true_log_prob(toy2d_density d, const float *x, int n, double *out);

typedef struct toy2d_options {
    int layers;             /* coupling blocks */
    int hidden;             /* width of each coupling network */
    int depth;              /* hidden layers per coupling network */
    int actnorm;            /* 1: an actnorm in front of every coupling */
} toy2d_options;

typedef struct toy2d_model {
    fg_multiscale *flow;    /* body and a standard Gaussian prior */
    fg_state_list state;
    fg_optim opt;
    fg_graph *g;
} toy2d_model;

/* FG_ERR with fg_error on bad options. */
int toy2d_model_init(toy2d_model *m, const toy2d_options *o, fg_rng *rng);
void toy2d_model_free(toy2d_model *m);
/* One Adam step on -mean log p(x) over x (n x 2); returns that loss. */
double toy2d_train_step(toy2d_model *m, const float *x, int n, double lr);
/* log p(x) of the model (no-grad, batched) into out[n]. */
void toy2d_log_prob(toy2d_model *m, const float *x, int n, double *out);
/* Mean of log p(x) over the n points. */
double toy2d_mean_log_prob(toy2d_model *m, const float *x, int n);
/* log p at the centres of a res x res grid over [lo, hi]^2, row r from the
 * top (y = hi) down, column c from x = lo: out[r * res + c]. */
void toy2d_grid_log_prob(toy2d_model *m, int res, double lo, double hi, double *out);
/* Riemann sum of exp(log p) over that grid: close to the mass the model
 * puts inside [lo, hi]^2. */
double toy2d_grid_mass(const double *grid_logp, int res, double lo, double hi);
/* n samples of the model at temperature 1 into x (n x 2). */
void toy2d_model_sample(toy2d_model *m, int n, fg_rng *rng, float *x);

/* One PNG, two panels of side pixels over [lo, hi]^2: the heat map of
 * exp(grid_logp) (a res x res grid, res >= 1, nearest neighbour) and a
 * scatter of n points. FG_ERR with fg_error when the file cannot be
 * written. */
int toy2d_write_png(const char *path, const double *grid_logp, int res, const float *pts,
                    int n, double lo, double hi, int side);

#endif
