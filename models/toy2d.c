/* The 2-D toys: target densities sampled on the fly, and a flow of dense
 * couplings or MAF layers (affine or spline) over 2-vectors with a
 * standard Gaussian prior (models/vector_flow.h), trained by the library
 * trainer. */
#include "models/toy2d.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Eight Gaussians: unit-free constants of the usual benchmark (centres on a
 * circle of radius 4, points then divided by sqrt 2). */
#define G8_RADIUS (2.0 * M_SQRT2)
#define G8_STD (0.25 * M_SQRT2)
/* Checkerboard: 8 of the 16 squares of side 2 tiling [-4, 4]^2. */
#define CHECKER_LOG_DENSITY (-log(32.0))
#define MOONS_NOISE 0.1f

static const char *const names[] = {"moons", "8gaussians", "checkerboard"};

int fg_toy2d_density_parse(const char *name, fg_toy2d_density *d)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) {
            *d = (fg_toy2d_density)i;
            return FG_OK;
        }
    return fg_error("density '%s': expected moons, 8gaussians or checkerboard", name);
}

const char *fg_toy2d_density_name(fg_toy2d_density d) { return names[d]; }

static void g8_centre(int k, double *cx, double *cy)
{
    double a = k * (M_PI / 4.0);
    *cx = G8_RADIUS * cos(a);
    *cy = G8_RADIUS * sin(a);
}

/* Pre-scale coordinates u = x / 2 of the checkerboard lie in [-2, 2)^2;
 * the row pair a column may use shifts by one with the column's parity. */
static int checker_inside(double x, double y)
{
    double u1 = x / 2.0, u2 = y / 2.0;
    if (!(u1 >= -2.0 && u1 < 2.0))
        return 0;
    double v = u2 - (double)((int)floor(u1) & 1);
    return (v >= 0.0 && v < 1.0) || (v >= -2.0 && v < -1.0);
}

void fg_toy2d_sample(fg_toy2d_density d, fg_rng *rng, int n, float *x)
{
    float u[2];
    for (int i = 0; i < n; i++) {
        fg_rng_uniform(rng, u, 2);
        float *p = x + 2 * i;
        if (d == FG_TOY2D_MOONS) {
            float e[2], t = (float)M_PI * u[0];
            fg_rng_normal(rng, e, 2);
            int inner = u[1] < 0.5f;
            float mx = inner ? 1.0f - cosf(t) : cosf(t);
            float my = inner ? 0.5f - sinf(t) : sinf(t);
            p[0] = 2.0f * (mx + MOONS_NOISE * e[0]) - 1.0f;
            p[1] = 2.0f * (my + MOONS_NOISE * e[1]) - 0.2f;
        } else if (d == FG_TOY2D_8GAUSSIANS) {
            float e[2];
            fg_rng_normal(rng, e, 2);
            double cx, cy;
            g8_centre((int)(u[0] * 8.0f) & 7, &cx, &cy);
            p[0] = (float)(cx + G8_STD * e[0]);
            p[1] = (float)(cy + G8_STD * e[1]);
        } else {
            float u1 = 4.0f * u[0] - 2.0f;
            float u2 = u[1] - (fg_rng_u32(rng) & 1u ? 2.0f : 0.0f);
            u2 += (float)((int)floorf(u1) & 1);
            p[0] = 2.0f * u1;
            p[1] = 2.0f * u2;
        }
    }
}

int fg_toy2d_true_log_prob(fg_toy2d_density d, const float *x, int n, double *out)
{
    if (d == FG_TOY2D_MOONS)
        return 0;
    for (int i = 0; i < n; i++) {
        double px = x[2 * i], py = x[2 * i + 1];
        if (d == FG_TOY2D_CHECKERBOARD) {
            out[i] = checker_inside(px, py) ? CHECKER_LOG_DENSITY : -INFINITY;
            continue;
        }
        double e[8], top = -INFINITY, s = 0.0;
        for (int k = 0; k < 8; k++) {
            double cx, cy;
            g8_centre(k, &cx, &cy);
            e[k] = -((px - cx) * (px - cx) + (py - cy) * (py - cy)) / (2.0 * G8_STD * G8_STD);
            if (e[k] > top)
                top = e[k];
        }
        for (int k = 0; k < 8; k++)
            s += exp(e[k] - top);
        out[i] = top + log(s) - log(8.0) - log(2.0 * M_PI * G8_STD * G8_STD);
    }
    return 1;
}

/* ---------------------------------------------------------------- model */

int fg_toy2d_model_init(fg_toy2d_model *m, const fg_toy2d_options *o, fg_rng *rng)
{
    memset(m, 0, sizeof *m);
    if (o->layers < 1 || o->hidden < 1 || o->depth < 1)
        return fg_error("toy2d: layers %d, hidden %d and depth %d must be positive",
                        o->layers, o->hidden, o->depth);
    int per = 2 + (o->actnorm != 0), n = 0;
    fg_flow **layers = fg_xcalloc((size_t)o->layers * per, sizeof *layers, "toy2d");
    for (int i = 0; i < o->layers; i++) {
        if (o->actnorm)
            layers[n++] = fg_actnorm_create(&(fg_actnorm_options){.channels = 2});
        /* tanh keeps each scale within (1/e, e), so no single step of Adam
         * can blow a coupling up; depth supplies the total range. A spline
         * is bounded by its minimum bin size and derivative instead. */
        fg_transform_kind t = o->spline ? FG_TRANSFORM_SPLINE : FG_TRANSFORM_AFFINE;
        int bins = o->bins > 0 ? o->bins : 8;
        float bound = o->bound > 0.0f ? o->bound : 4.0f;
        if (o->maf) {
            fg_autoregressive_options ao = {.dim = 2, .hidden = o->hidden, .layers = o->depth,
                                            .transform = t, .scale = FG_COUPLING_SCALE_TANH,
                                            .bins = bins, .bound = bound, .rng = rng};
            layers[n++] = fg_autoregressive_create(&ao);
        } else {
            fg_dense_coupling_options co = {.dim = 2, .hidden = o->hidden, .layers = o->depth,
                                            .transform = t, .mask = FG_COUPLING_MASK_CHANNEL,
                                            .scale = FG_COUPLING_SCALE_TANH, .rng = rng,
                                            .bins = bins, .bound = bound};
            layers[n++] = fg_dense_coupling_create(&co);
        }
        /* Reversing swaps the halves, so the next coupling changes the
         * coordinate this one conditioned on. */
        if (i + 1 < o->layers)
            layers[n++] = fg_permute_create(&(fg_permute_options){.channels = 2});
    }
    fg_vector_flow_options vo = {.dim = 2, .layers = layers, .n_layers = n,
                                 .train = {.optimizer = FG_ADAM}};
    int rc = fg_vector_flow_init(&m->flow, &vo);
    free(layers);
    return rc;
}

void fg_toy2d_model_free(fg_toy2d_model *m)
{
    fg_vector_flow_free(&m->flow);
}

double fg_toy2d_train_step(fg_toy2d_model *m, const float *x, int n, double lr)
{
    /* The caller's schedule sets the base rate; the trainer adds none. */
    m->flow.tr.o.lr = lr;
    fg_step_report r;
    fg_vector_flow_train_step(&m->flow, x, NULL, n, &r);
    return r.loss;
}

void fg_toy2d_log_prob(fg_toy2d_model *m, const float *x, int n, double *out)
{
    fg_vector_flow_log_prob(&m->flow, x, NULL, n, out);
}

double fg_toy2d_mean_log_prob(fg_toy2d_model *m, const float *x, int n)
{
    double *lp = fg_xmalloc((size_t)n * sizeof *lp, "toy2d"), s = 0.0;
    fg_toy2d_log_prob(m, x, n, lp);
    for (int i = 0; i < n; i++)
        s += lp[i];
    free(lp);
    return s / n;
}

void fg_toy2d_grid_log_prob(fg_toy2d_model *m, int res, double lo, double hi, double *out)
{
    size_t cells = (size_t)res * res;
    float *x = fg_xmalloc(2 * cells * sizeof *x, "toy2d grid");
    double h = (hi - lo) / res;
    for (int r = 0; r < res; r++)
        for (int c = 0; c < res; c++) {
            x[2 * ((size_t)r * res + c)] = (float)(lo + (c + 0.5) * h);
            x[2 * ((size_t)r * res + c) + 1] = (float)(hi - (r + 0.5) * h);
        }
    fg_toy2d_log_prob(m, x, (int)cells, out);
    free(x);
}

double fg_toy2d_grid_mass(const double *grid_logp, int res, double lo, double hi)
{
    double h = (hi - lo) / res, s = 0.0;
    for (size_t i = 0; i < (size_t)res * res; i++)
        s += exp(grid_logp[i]);
    return s * h * h;
}

void fg_toy2d_model_sample(fg_toy2d_model *m, int n, fg_rng *rng, float *x)
{
    fg_vector_flow_sample(&m->flow, n, NULL, 1.0f, rng, x);
}
