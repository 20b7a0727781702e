/* Glow's affine coupling map as two ops instead of about ten.
 *
 * The coupling network's output h (N, 2C, ...) holds the shift in its even
 * channels and the raw log-scale r in its odd ones; with z = r + 2 and
 * s = sigmoid(z):
 *   forward   y = (v + shift) s
 *   inverse   y = v / s - shift = v (1 + e^-z) - shift
 *   log-determinant per sample  sum log s = sum log_sigmoid(z)
 * Composed from slices, sigmoid, exp, products and a reduction, each of
 * these is a pass over memory and a node with its own backward; here the
 * map is one pass forward and one backward, and the log-determinant one
 * more. Nothing is saved: s is recomputed from h in the backward. The
 * sigmoids and exponentials are tensor/simd_math.h's, so each pass runs
 * vectorized instead of one libm call per element. */
#include "autograd/internal.h"
#include "tensor/simd_math.h"

#include <math.h>
#include <string.h>

static size_t spatial(const fg_var *v)
{
    size_t n = 1;
    for (int d = 2; d < v->t.ndim; d++) n *= (size_t)v->t.shape[d];
    return n;
}

/* ------------------------------------------------------------- the map */
/* Gradients of one plane's map in blocks of BLOCK elements: first the
 * three partials, in a loop free of the branches below, so that it
 * vectorizes; then each is stored or added where it is wanted. */
enum { BLOCK = 256 };

static void map_backward_plane(int dir, size_t P, const float *gy, const float *x,
                               const float *sh, const float *r, float *gv, int fresh_v,
                               float *gsh, float *gr, int fresh_h)
{
    float dv[BLOCK], dsh[BLOCK], dr[BLOCK];
    for (size_t i0 = 0; i0 < P; i0 += BLOCK) {
        const size_t m = P - i0 < BLOCK ? P - i0 : BLOCK;
        const float *d = gy + i0, *xv = x + i0, *shv = sh + i0, *rv = r + i0;
        if (dir > 0) {
            #pragma omp simd
            for (size_t i = 0; i < m; i++) {
                const float s = fg_simd_sigmoidf(rv[i] + 2.0f);
                dv[i] = d[i] * s;
                dsh[i] = dv[i];
                dr[i] = d[i] * (xv[i] + shv[i]) * s * (1.0f - s);
            }
        } else {
            #pragma omp simd
            for (size_t i = 0; i < m; i++) {
                const float e = fg_simd_expf(-(rv[i] + 2.0f));
                dv[i] = d[i] * (1.0f + e);
                dsh[i] = -d[i];
                dr[i] = -d[i] * xv[i] * e;
            }
        }
        if (gv) {
            float *o = gv + i0;
            if (fresh_v)
                memcpy(o, dv, m * sizeof *o);
            else
                for (size_t i = 0; i < m; i++) o[i] += dv[i];
        }
        if (gsh) {
            float *os = gsh + i0, *or = gr + i0;
            if (fresh_h) {
                memcpy(os, dsh, m * sizeof *os);
                memcpy(or, dr, m * sizeof *or);
            } else {
                for (size_t i = 0; i < m; i++) os[i] += dsh[i];
                for (size_t i = 0; i < m; i++) or[i] += dr[i];
            }
        }
    }
}

static void map_backward(fg_graph *g, fg_node *nd)
{
    fg_var *v = nd->in[0], *h = nd->in[1];
    const int dir = nd->i[0], N = v->t.shape[0], C = v->t.shape[1];
    const size_t P = spatial(v);
    const float *gy = nd->out->grad, *V = v->t.data, *Hd = h->t.data;
    int fresh_v = 0, fresh_h = 0;
    float *gv = v->requires_grad ? fg_grad_for_write(g, v, &fresh_v) : NULL;
    float *gh = h->requires_grad ? fg_grad_for_write(g, h, &fresh_h) : NULL;
    #pragma omp parallel for collapse(2) if ((size_t)N * C * P > FG_PARALLEL_THRESHOLD)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const size_t o = ((size_t)n * C + c) * P;
            const size_t os = ((size_t)n * 2 * C + 2 * c) * P, or = os + P;
            map_backward_plane(dir, P, gy + o, V + o, Hd + os, Hd + or, gv ? gv + o : NULL,
                               fresh_v, gh ? gh + os : NULL, gh ? gh + or : NULL, fresh_h);
        }
}

static void require_pair(const char *op, const fg_var *v, const fg_var *h)
{
    char sv[FG_SHAPE_STR_LEN], sh[FG_SHAPE_STR_LEN];
    int ok = v->t.ndim >= 2 && h->t.ndim == v->t.ndim && h->t.shape[0] == v->t.shape[0] &&
             h->t.shape[1] == 2 * v->t.shape[1];
    for (int d = 2; ok && d < v->t.ndim; d++) ok = h->t.shape[d] == v->t.shape[d];
    FG_CHECK(ok, op, "v %s needs h of the same shape with twice the channels, got %s",
             fg_shape_str(&v->t, sv, sizeof sv), fg_shape_str(&h->t, sh, sizeof sh));
}

static fg_var *affine_map(fg_graph *g, fg_var *v, fg_var *h, int dir)
{
    FG_OP_BEGIN(g);
    const int N = v->t.shape[0], C = v->t.shape[1];
    const size_t P = spatial(v);
    fg_var *y = fg_var_like(g, v);
    const float *V = v->t.data, *Hd = h->t.data;
    float *Y = y->t.data;
    #pragma omp parallel for collapse(2) if ((size_t)N * C * P > FG_PARALLEL_THRESHOLD)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const size_t o = ((size_t)n * C + c) * P;
            const float *sh = Hd + ((size_t)n * 2 * C + 2 * c) * P, *r = sh + P;
            const float *x = V + o;
            float *yo = Y + o;
            if (dir > 0) {
                #pragma omp simd
                for (size_t i = 0; i < P; i++)
                    yo[i] = (x[i] + sh[i]) * fg_simd_sigmoidf(r[i] + 2.0f);
            } else {
                #pragma omp simd
                for (size_t i = 0; i < P; i++)
                    yo[i] = x[i] * (1.0f + fg_simd_expf(-(r[i] + 2.0f))) - sh[i];
            }
        }
    fg_node *nd = fg_record(g, dir > 0 ? "affine_coupling" : "affine_coupling_inverse",
                            map_backward, y, 2, v, h, NULL);
    if (nd) nd->i[0] = dir;
    return y;
}

/* ------------------------------------------------------------- log-determinant */
static void logdet_backward(fg_graph *g, fg_node *nd)
{
    fg_var *h = nd->in[0];
    const int N = h->t.shape[0], C = h->t.shape[1] / 2;
    const size_t P = spatial(h);
    const float *gl = nd->out->grad, *Hd = h->t.data;
    float *gh = fg_grad(g, h);
    #pragma omp parallel for collapse(2) if ((size_t)N * C * P > FG_PARALLEL_THRESHOLD)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const size_t or = ((size_t)n * 2 * C + 2 * c + 1) * P;
            const float d = gl[n], *r = Hd + or;
            float *gr = gh + or;
            #pragma omp simd   /* d log_sigmoid(z) / dz = sigmoid(-z) */
            for (size_t i = 0; i < P; i++)
                gr[i] += d * fg_simd_sigmoidf(-(r[i] + 2.0f));
        }
}

static fg_var *logscale_sum(fg_graph *g, fg_var *h)
{
    FG_OP_BEGIN(g);
    const int N = h->t.shape[0], C = h->t.shape[1] / 2;
    const size_t P = spatial(h);
    int shape[1] = {N};
    fg_var *l = fg_var_new(g, 1, shape);
    const float *Hd = h->t.data;
    #pragma omp parallel for if ((size_t)N * C * P > FG_PARALLEL_THRESHOLD)
    for (int n = 0; n < N; n++) {
        double s = 0.0;
        for (int c = 0; c < C; c++) {
            const float *r = Hd + ((size_t)n * 2 * C + 2 * c + 1) * P;
            float part = 0.0f;   /* one plane in float, planes summed in double */
            #pragma omp simd reduction(+ : part)
            for (size_t i = 0; i < P; i++)
                part += fg_simd_log_sigmoidf(r[i] + 2.0f);
            s += part;
        }
        l->t.data[n] = (float)s;
    }
    fg_record(g, "affine_coupling_logdet", logdet_backward, l, 1, h, NULL, NULL);
    return l;
}

fg_var *fg_affine_coupling(fg_graph *g, fg_var *v, fg_var *h, int dir, fg_var **logscale)
{
    require_pair("affine_coupling", v, h);
    /* The log-determinant first: its backward then runs after the map's,
     * which stores h's whole gradient, and only adds to it. */
    if (logscale)
        *logscale = logscale_sum(g, h);
    return affine_map(g, v, h, dir);
}
