/* The rational-quadratic spline (Durkan et al. 2019) elementwise, forward,
 * inverse and their gradients (see tensor.h for the parameterization).
 *
 * Per element the knots are rebuilt from the raw parameters, in double:
 * widths w_k = m + (1 - m K) softmax(u)_k (m = FG_RQ_MIN_BIN), knots
 * x_k = -B + 2B sum_{j<k} w_j with x_K = B exactly, the same for heights,
 * and derivatives d_0 = d_K = 1 (so the spline meets the identity tails
 * with a continuous slope), d_k = FG_RQ_MIN_DERIVATIVE + softplus(r_k + c)
 * with c chosen so that r_k = 0 gives d_k = 1: all-zero parameters (a
 * conditioner whose last layer starts at zero) give the identity.
 * Nothing is saved between the forward and the backward pass: the knots
 * cost O(K) per element, about what reading the 3K - 1 parameters costs.
 *
 * In bin k, with xi = (x - x_k) / W_k, s = H_k / W_k, t = xi (1 - xi):
 *   y       = y_k + H_k (s xi^2 + d_k t) / (s + (d_{k+1} + d_k - 2 s) t)
 *   log y'  = 2 log s + log(d_{k+1} xi^2 + 2 s t + d_k (1 - xi)^2)
 *             - 2 log(s + (d_{k+1} + d_k - 2 s) t)
 * The backward pass differentiates these by hand (bin_grad) with respect to
 * x and the bin's six numbers, then carries the bin's numbers back through
 * the cumulative sums, the softmaxes and the softplus to the raw
 * parameters. The inverse's gradients follow from the forward's by the
 * implicit function theorem: dx/dy = 1 / y'(x), dx/dtheta = -(dy/dtheta) /
 * y'(x). */
#include "tensor/tensor.h"

#include <math.h>

typedef struct knots {
    int K;
    const float *raw;   /* the element's parameters, stride apart */
    size_t stride;
    double pw[FG_RQ_MAX_BINS], ph[FG_RQ_MAX_BINS]; /* the softmaxes */
    double x[FG_RQ_MAX_BINS + 1], y[FG_RQ_MAX_BINS + 1];
} knots;

/* One bin's numbers; dd0 and dd1 are d d_k / d r_k = sigmoid(r_k) at its
 * two knots (unused at the outer knots, whose derivative is fixed). */
typedef struct bin {
    int k;
    double x0, w, y0, h, d0, d1, dd0, dd1;
} bin;

int fg_rq_spline_params(const fg_rq_spline *s)
{
    return 3 * s->bins - 1;
}

static void softmax(const float *u, size_t stride, int K, double *p)
{
    double top = -INFINITY, sum = 0.0;
    for (int k = 0; k < K; k++)
        top = fmax(top, (double)u[k * stride]);
    for (int k = 0; k < K; k++) {
        p[k] = exp((double)u[k * stride] - top);
        sum += p[k];
    }
    for (int k = 0; k < K; k++)
        p[k] /= sum;
}

/* softplus(DERIVATIVE_SHIFT) + FG_RQ_MIN_DERIVATIVE = 1. */
#define DERIVATIVE_SHIFT log(expm1(1.0 - FG_RQ_MIN_DERIVATIVE))

static double softplus(double r)
{
    return r > 0.0 ? r + log1p(exp(-r)) : log1p(exp(r));
}

/* Cumulative knots from the probabilities; the last is the bound itself,
 * not a sum that rounds near it. */
static void cumulate(const double *p, int K, double B, double *knot)
{
    const double floor_scale = 1.0 - FG_RQ_MIN_BIN * K;
    double c = 0.0;
    knot[0] = -B;
    for (int k = 0; k < K; k++) {
        c += FG_RQ_MIN_BIN + floor_scale * p[k];
        knot[k + 1] = -B + 2.0 * B * c;
    }
    knot[K] = B;
}

/* raw: the element's first parameter; successive ones are stride apart.
 * Only the knot positions: a value needs the derivatives of its own bin's
 * two knots alone, and they are most of the transcendental calls, so
 * find_bin computes just those two. */
static void build(const fg_rq_spline *s, const float *raw, size_t stride, knots *kn)
{
    const int K = s->bins;
    const double B = s->bound;
    kn->K = K;
    kn->raw = raw;
    kn->stride = stride;
    softmax(raw, stride, K, kn->pw);
    softmax(raw + (size_t)K * stride, stride, K, kn->ph);
    cumulate(kn->pw, K, B, kn->x);
    cumulate(kn->ph, K, B, kn->y);
}

/* d_k at knot k, and *dd = d d_k / d r_k there. */
static double derivative(const knots *kn, int k, double *dd)
{
    if (k == 0 || k == kn->K) {
        *dd = 0.0;
        return 1.0;
    }
    double r = kn->raw[(size_t)(2 * kn->K + k - 1) * kn->stride] + DERIVATIVE_SHIFT;
    *dd = 1.0 / (1.0 + exp(-r));
    return FG_RQ_MIN_DERIVATIVE + softplus(r);
}

/* The bin whose knots in `at` (x or y) hold v: the last k with at[k] <= v,
 * so a value on an inner knot starts the bin above it and the bound
 * itself belongs to the last bin. */
static bin find_bin(const knots *kn, const double *at, double v)
{
    int lo = 0, hi = kn->K - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (at[mid] <= v)
            lo = mid;
        else
            hi = mid - 1;
    }
    bin b = {lo, kn->x[lo], kn->x[lo + 1] - kn->x[lo], kn->y[lo], kn->y[lo + 1] - kn->y[lo],
             0.0, 0.0, 0.0, 0.0};
    b.d0 = derivative(kn, lo, &b.dd0);
    b.d1 = derivative(kn, lo + 1, &b.dd1);
    return b;
}

static double clamp01(double v)
{
    return v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v);
}

/* y(x) in the bin; *lad = log y'(x). */
static double bin_eval(const bin *b, double x, double *lad)
{
    const double xi = clamp01((x - b->x0) / b->w), s = b->h / b->w, t = xi * (1.0 - xi);
    const double den = s + (b->d1 + b->d0 - 2.0 * s) * t;
    const double num = b->h * (s * xi * xi + b->d0 * t);
    const double A = b->d1 * xi * xi + 2.0 * s * t + b->d0 * (1.0 - xi) * (1.0 - xi);
    *lad = 2.0 * log(s) + log(A) - 2.0 * log(den);
    return b->y0 + num / den;
}

/* x with y(x) = y in the bin: the root in [0, 1] of a xi^2 + b xi + c = 0
 * taken as 2c / (-b - sqrt(b^2 - 4ac)); b > 0 near the bin's left end,
 * where the textbook form would subtract two nearly equal numbers. */
static double bin_invert(const bin *b, double y)
{
    const double s = b->h / b->w, e = b->d1 + b->d0 - 2.0 * s, dy = y - b->y0;
    const double qa = b->h * (s - b->d0) + dy * e;
    const double qb = b->h * b->d0 - dy * e;
    const double qc = -s * dy;
    const double den = -qb - sqrt(fmax(qb * qb - 4.0 * qa * qc, 0.0));
    const double xi = den != 0.0 ? 2.0 * qc / den : 0.0;
    return b->x0 + clamp01(xi) * b->w;
}

/* The gradient of wy y(x) + wl log y'(x) with respect to x and the bin's
 * x0, w, y0, h, d0, d1, in that order, into g. */
static void bin_grad(const bin *b, double x, double wy, double wl, double g[7])
{
    const double W = b->w, H = b->h, d0 = b->d0, d1 = b->d1;
    const double xi = clamp01((x - b->x0) / W), s = H / W, t = xi * (1.0 - xi);
    const double e = d1 + d0 - 2.0 * s;
    const double den = s + e * t, num = H * (s * xi * xi + d0 * t);
    const double A = d1 * xi * xi + 2.0 * s * t + d0 * (1.0 - xi) * (1.0 - xi);
    const double gnum = wy / den, gden = -wy * num / (den * den) - 2.0 * wl / den;
    const double gA = wl / A;
    double gs = 2.0 * wl / s, gxi = 0.0, gt = 0.0, gh = 0.0, gd0 = 0.0, gd1 = 0.0, gw = 0.0;
    /* num = H (s xi^2 + d0 t) */
    gh += gnum * (s * xi * xi + d0 * t);
    gs += gnum * H * xi * xi;
    gxi += gnum * H * 2.0 * s * xi;
    gd0 += gnum * H * t;
    gt += gnum * H * d0;
    /* den = s + (d1 + d0 - 2 s) t */
    gs += gden * (1.0 - 2.0 * t);
    gd0 += gden * t;
    gd1 += gden * t;
    gt += gden * e;
    /* A = d1 xi^2 + 2 s t + d0 (1 - xi)^2 */
    gd1 += gA * xi * xi;
    gxi += gA * (2.0 * d1 * xi - 2.0 * d0 * (1.0 - xi));
    gs += gA * 2.0 * t;
    gt += gA * 2.0 * s;
    gd0 += gA * (1.0 - xi) * (1.0 - xi);
    /* t = xi (1 - xi), s = H / W, xi = (x - x0) / W */
    gxi += gt * (1.0 - 2.0 * xi);
    gh += gs / W;
    gw -= gs * s / W;
    gw -= gxi * xi / W;
    g[0] = gxi / W;
    g[1] = -gxi / W;
    g[2] = gw;
    g[3] = wy;
    g[4] = gh;
    g[5] = gd0;
    g[6] = gd1;
}

/* Adds to the raw widths (or heights) the gradient that reaches knot k's
 * position (g_at, through the sums before it) and bin k's size (g_size). */
static void softmax_back(const double *p, int K, int k, double B, double g_at, double g_size,
                         float *graw, size_t stride)
{
    double gwk[FG_RQ_MAX_BINS], dot = 0.0;
    for (int j = 0; j < K; j++) {
        gwk[j] = (j < k ? 2.0 * B * g_at : 0.0) + (j == k ? 2.0 * B * g_size : 0.0);
        dot += gwk[j] * p[j];
    }
    const double floor_scale = 1.0 - FG_RQ_MIN_BIN * K;
    for (int j = 0; j < K; j++)
        graw[j * stride] += (float)(floor_scale * p[j] * (gwk[j] - dot));
}

static void params_back(const knots *kn, const bin *b, double B, const double g[7],
                        float *graw, size_t stride)
{
    const int K = kn->K, k = b->k;
    softmax_back(kn->pw, K, k, B, g[1], g[2], graw, stride);
    softmax_back(kn->ph, K, k, B, g[3], g[4], graw + (size_t)K * stride, stride);
    if (k >= 1)
        graw[(size_t)(2 * K + k - 1) * stride] += (float)(g[5] * b->dd0);
    if (k + 1 <= K - 1)
        graw[(size_t)(2 * K + k) * stride] += (float)(g[6] * b->dd1);
}

static void require_spline(const fg_rq_spline *s)
{
    FG_CHECK(s->bins >= 1 && s->bins <= FG_RQ_MAX_BINS && s->bound > 0.0f &&
             isfinite(s->bound), "rq_spline", "needs 1..%d bins and a positive bound, got "
             "%d bins and bound %g", FG_RQ_MAX_BINS, s->bins, (double)s->bound);
}

/* Identity here: masked off, or outside [-B, B]. */
static int passes(const fg_rq_spline *s, const float *mask, size_t o, float v)
{
    return (mask && mask[o] == 0.0f) || (double)v < -(double)s->bound ||
           (double)v > (double)s->bound;
}

size_t fg_k_rq_spline(const fg_rq_spline *s, int dir, int N, int C, size_t P, const float *v,
                      const float *h, const float *mask, float *y, float *lad)
{
    require_spline(s);
    const int Q = fg_rq_spline_params(s);
    size_t bad = 0;
    #pragma omp parallel for collapse(2) reduction(+ : bad) \
        if ((size_t)N * C * P * Q > FG_PARALLEL_THRESHOLD)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const float *raw = h + ((size_t)n * C * Q + (size_t)c * Q) * P;
            for (size_t i = 0; i < P; i++) {
                const size_t o = ((size_t)n * C + c) * P + i;
                const float in = v[o];
                if (!isfinite(in)) {
                    y[o] = NAN;
                    if (lad) lad[o] = NAN;
                    bad++;
                    continue;
                }
                if (passes(s, mask, o, in)) {
                    y[o] = in;
                    if (lad) lad[o] = 0.0f;
                    continue;
                }
                knots kn;
                build(s, raw + i, P, &kn);
                double l, out;
                if (dir > 0) {
                    bin b = find_bin(&kn, kn.x, in);
                    out = bin_eval(&b, in, &l);
                } else {
                    bin b = find_bin(&kn, kn.y, in);
                    out = bin_invert(&b, in);
                    bin_eval(&b, out, &l);
                }
                y[o] = (float)out;
                if (lad) lad[o] = (float)l;
            }
        }
    return bad;
}

void fg_k_rq_spline_backward(const fg_rq_spline *s, int dir, int N, int C, size_t P,
                             const float *v, const float *h, const float *mask,
                             const float *gy, const float *gl, float *gv, float *gh)
{
    require_spline(s);
    const int Q = fg_rq_spline_params(s);
    const double B = s->bound;
    #pragma omp parallel for collapse(2) if ((size_t)N * C * P * Q > FG_PARALLEL_THRESHOLD)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const size_t po = ((size_t)n * C * Q + (size_t)c * Q) * P;
            for (size_t i = 0; i < P; i++) {
                const size_t o = ((size_t)n * C + c) * P + i;
                const float in = v[o];
                const double wy = gy ? gy[o] : 0.0, wl = gl ? gl[n] : 0.0;
                if (!isfinite(in) || passes(s, mask, o, in)) {
                    if (gv) gv[o] += (float)wy;
                    continue;
                }
                knots kn;
                build(s, h + po + i, P, &kn);
                double g[7], gx;
                bin b;
                if (dir > 0) {
                    b = find_bin(&kn, kn.x, in);
                    bin_grad(&b, in, wy, wl, g);
                    gx = g[0];
                } else {
                    /* Everything through x = s^-1(v): the adjoint a of x
                     * reaches v as a / s'(x) and each parameter as
                     * -a / s'(x) times y's derivative at fixed x. */
                    b = find_bin(&kn, kn.y, in);
                    double x = bin_invert(&b, in), l, dl[7];
                    bin_eval(&b, x, &l);
                    bin_grad(&b, x, 0.0, 1.0, dl);
                    const double slope = exp(l), a = wy + wl * dl[0];
                    gx = a / slope;
                    bin_grad(&b, x, -a / slope, wl, g);
                }
                if (gv) gv[o] += (float)gx;
                if (gh) params_back(&kn, &b, B, g, gh + po + i, P);
            }
        }
}
