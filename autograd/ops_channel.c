/* Per-channel broadcasts and channel layout ops on (N, C, ...) tensors. */
#include "autograd/internal.h"
#include "tensor/parallel_internal.h"
#include "tensor/kernels/row_affine.h"
#include <math.h>
#include <string.h>

/* The library is built for any x86-64, where these loops get 4-wide SSE.
 * The per-channel passes of a coupling network's layers, the step's
 * largest outside the products, are built for AVX-512 and AVX2 as well,
 * and the loader picks the widest the CPU has. Their float partial sums
 * then depend on the vector width (not on the thread count). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define WIDE_VECTORS \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define WIDE_VECTORS
#endif

static size_t spatial(const fg_var *v)
{
    size_t n = 1;
    for (int d = 2; d < v->t.ndim; d++) n *= (size_t)v->t.shape[d];
    return n;
}

static void require_channels(const char *op, const fg_var *x)
{
    FG_CHECK(x->t.ndim >= 2, op, "needs (N, C, ...), got %d dimensions", x->t.ndim);
}

static void require_vector(const char *op, const fg_var *x, const fg_var *v)
{
    require_channels(op, x);
    char sx[FG_SHAPE_STR_LEN], sv[FG_SHAPE_STR_LEN];
    FG_CHECK(fg_var_numel(v) == (size_t)x->t.shape[1], op, "x %s needs %d channel values, got %s",
             fg_shape_str(&x->t, sx, sizeof sx), x->t.shape[1], fg_shape_str(&v->t, sv, sizeof sv));
}

/* ------------------------------------------------------------- add_channel */
static void add_channel_backward(fg_graph *g, fg_node *nd)
{
    fg_var *x = nd->in[0], *v = nd->in[1];
    const float *gy = nd->out->grad;
    size_t n = fg_var_numel(x);
    if (x->requires_grad) { float *gx = fg_grad(g, x); fg_k_add(n, gx, gy, gx); }
    if (v->requires_grad) {
        int N = x->t.shape[0], C = x->t.shape[1];
        double *acc = fg_arena_alloc(fg_graph_arena(g), (size_t)C * sizeof(double));
        fg_k_sum_per_channel(N, C, (int)spatial(x), gy, acc, NULL);
        float *gv = fg_grad(g, v);
        for (int c = 0; c < C; c++) gv[c] += (float)acc[c];
    }
}

fg_var *fg_add_channel(fg_graph *g, fg_var *x, fg_var *v)
{
    FG_OP_BEGIN(g);
    require_vector("add_channel", x, v);
    fg_var *y = fg_var_like(g, x);
    fg_k_add_channel(x->t.shape[0], x->t.shape[1], (int)spatial(x), x->t.data, v->t.data, y->t.data);
    fg_record(g, "add_channel", add_channel_backward, y, 2, x, v, NULL);
    return y;
}

/* ------------------------------------------------------------- mul_channel */
/* Channel c of mul_channel's backward: one pass over its planes does both
 * sides. */
static inline void mul_channel_backward_channel(int c, int N, int C, size_t HW, const float *gy,
                                                const float *X, const float *V, float *gx,
                                                float *gv)
{
    double s = 0.0;
    for (int n = 0; n < N; n++) {
        const size_t off = ((size_t)n * C + c) * HW;
        const float *restrict d = gy + off, *restrict xp = X + off;
        if (gx) {
            float *restrict o = gx + off;
            const float vc = V[c];
            #pragma omp simd
            for (size_t i = 0; i < HW; i++) o[i] += vc * d[i];
        }
        if (gv) {
            float part = 0.0f;   /* one plane in float, planes summed in double */
            #pragma omp simd reduction(+:part)
            for (size_t i = 0; i < HW; i++) part += d[i] * xp[i];
            s += part;
        }
    }
    if (gv) gv[c] += (float)s;
}

static void mul_channel_backward(fg_graph *g, fg_node *nd)
{
    fg_var *x = nd->in[0], *v = nd->in[1];
    const int N = x->t.shape[0], C = x->t.shape[1];
    const size_t HW = spatial(x);
    const float *gy = nd->out->grad, *X = x->t.data, *V = v->t.data;
    float *gx = x->requires_grad ? fg_grad(g, x) : NULL;
    float *gv = v->requires_grad ? fg_grad(g, v) : NULL;
    /* Channels are independent, so they split across threads without
     * reductions. */
    FG_FOR_ITEMS((size_t)N * C * HW, c, C,
                 mul_channel_backward_channel((int)c, N, C, HW, gy, X, V, gx, gv));
}

fg_var *fg_mul_channel(fg_graph *g, fg_var *x, fg_var *v)
{
    FG_OP_BEGIN(g);
    require_vector("mul_channel", x, v);
    fg_var *y = fg_var_like(g, x);
    fg_k_mul_channel(x->t.shape[0], x->t.shape[1], (int)spatial(x), x->t.data, v->t.data, y->t.data);
    fg_record(g, "mul_channel", mul_channel_backward, y, 2, x, v, NULL);
    return y;
}

/* ------------------------------------------------------------- channel_affine_relu
 * y = max(0, (x + bias[c]) e^logs[c]): actnorm followed by ReLU as one op,
 * so one output tensor and one backward pass instead of three of each.
 * Where y > 0 it equals the pre-activation, and 0 elsewhere, so y alone
 * gives the mask and the logs gradient; x is not kept. nd->saved holds
 * e^logs as the forward used it. */
/* One plane of fg_affine_relu_planes_backward. Always inlined and called
 * with constant mode and relu, so that every variant is its own loop
 * without branches, which the compiler vectorizes (with the choices inside
 * the loop it emitted scalar code, a sixth of the step's non-GEMM time). */
enum { PLANE_STORE, PLANE_ADD, PLANE_SUMS_ONLY };

static inline __attribute__((always_inline)) void
plane_backward(const float *restrict d, const float *restrict yp, float *restrict o, size_t HW,
               float s, int mode, int relu, float *sum_b, float *sum_l)
{
    float pb = 0.0f, pl = 0.0f;
    #pragma omp simd reduction(+:pb, pl)
    for (size_t i = 0; i < HW; i++) {
        const float m = relu ? (yp[i] > 0.0f ? d[i] : 0.0f) : d[i];
        if (mode == PLANE_STORE)
            o[i] = m * s;
        else if (mode == PLANE_ADD)
            o[i] += m * s;
        pb += m;
        pl += d[i] * yp[i];
    }
    *sum_b = pb;
    *sum_l = pl;
}

/* Channel c of fg_affine_relu_planes_backward. */
/* Inlined, so that it is built for each of the caller's vector widths. */
static inline __attribute__((always_inline)) void
affine_relu_channel_backward(int c, int N, int C, size_t HW, const float *gy, const float *Y,
                             const float *S, float *gx, int mode, float *gb, float *gl,
                             int relu)
{
    const float s = S[c];
    double sb = 0.0, sl = 0.0;
    for (int n = 0; n < N; n++) {
        const size_t off = ((size_t)n * C + c) * HW;
        const float *d = gy + off, *yp = Y + off;
        float *o = gx ? gx + off : NULL;
        float pb, pl;   /* one plane in float, planes summed in double */
        if (relu) {
            if (mode == PLANE_STORE)
                plane_backward(d, yp, o, HW, s, PLANE_STORE, 1, &pb, &pl);
            else if (mode == PLANE_ADD)
                plane_backward(d, yp, o, HW, s, PLANE_ADD, 1, &pb, &pl);
            else
                plane_backward(d, yp, o, HW, s, PLANE_SUMS_ONLY, 1, &pb, &pl);
        } else {
            if (mode == PLANE_STORE)
                plane_backward(d, yp, o, HW, s, PLANE_STORE, 0, &pb, &pl);
            else if (mode == PLANE_ADD)
                plane_backward(d, yp, o, HW, s, PLANE_ADD, 0, &pb, &pl);
            else
                plane_backward(d, yp, o, HW, s, PLANE_SUMS_ONLY, 0, &pb, &pl);
        }
        sb += pb;
        sl += pl;
    }
    if (gb) gb[c] += (float)(s * sb);
    if (gl) gl[c] += (float)sl;
}

WIDE_VECTORS void fg_affine_relu_planes_backward(int N, int C, size_t HW, const float *gy,
                                                 const float *Y, const float *S, float *gx,
                                                 int store, float *gb, float *gl, int relu)
{
    const int mode = !gx ? PLANE_SUMS_ONLY : store ? PLANE_STORE : PLANE_ADD;
    /* Channels are independent, so they split across threads without
     * reductions and the sums do not depend on the thread count. One pass
     * over each plane produces gx and both sums; gx is not read when it is
     * stored (it is not initialized then). */
    FG_FOR_ITEMS((size_t)N * C * HW, c, C,
                 affine_relu_channel_backward((int)c, N, C, HW, gy, Y, S, gx, mode, gb, gl,
                                              relu));
}

static void channel_affine_relu_backward(fg_graph *g, fg_node *nd)
{
    fg_var *x = nd->in[0], *b = nd->in[1], *l = nd->in[2], *y = nd->out;
    int fresh = 0;
    float *gx = x->requires_grad ? fg_grad_for_write(g, x, &fresh) : NULL;
    fg_affine_relu_planes_backward(x->t.shape[0], x->t.shape[1], spatial(x), y->grad,
                                   y->t.data, nd->saved, gx, fresh,
                                   b->requires_grad ? fg_grad(g, b) : NULL,
                                   l->requires_grad ? fg_grad(g, l) : NULL, 1);
}

/* No restrict: the fused convolution applies it in place (y == x), which
 * the same-index loop allows. */
/* Plane p = n C + c of fg_affine_relu_planes (inlined, as above). */
static inline __attribute__((always_inline)) void
affine_relu_plane(long p, int C, size_t HW, const float *X, const float *B, const float *S,
                  float *Y, int relu)
{
    const size_t off = (size_t)p * HW;
    const float *xp = X + off;
    float *yp = Y + off;
    const float bc = B[p % C], s = S[p % C];
    #pragma omp simd
    for (size_t i = 0; i < HW; i++)
        yp[i] = fg_row_affine_value(xp[i], bc, s, relu);   /* as a product's epilogue */
}

WIDE_VECTORS void fg_affine_relu_planes(int N, int C, size_t HW, const float *X,
                                        const float *B, const float *S, float *Y, int relu)
{
    FG_FOR_ITEMS((size_t)N * C * HW, p, (long)N * C,
                 affine_relu_plane(p, C, HW, X, B, S, Y, relu));
}

fg_var *fg_channel_affine_relu(fg_graph *g, fg_var *x, fg_var *bias, fg_var *logs)
{
    FG_OP_BEGIN(g);
    require_vector("channel_affine_relu", x, bias);
    require_vector("channel_affine_relu", x, logs);
    const int C = x->t.shape[1];
    float *S = fg_arena_alloc(fg_graph_arena(g), (size_t)C * sizeof(float));
    for (int c = 0; c < C; c++) S[c] = expf(logs->t.data[c]);
    fg_var *y = fg_var_like(g, x);
    fg_affine_relu_planes(x->t.shape[0], C, spatial(x), x->t.data, bias->t.data, S, y->t.data,
                          1);
    fg_node *nd = fg_record(g, "channel_affine_relu", channel_affine_relu_backward, y, 3, x,
                            bias, logs);
    if (nd) nd->saved = S;
    return y;
}

/* ------------------------------------------------------------- gather
 * Every layout op below copies whole channel planes: output channel j of
 * sample n comes from input channel src[j]. The backward adds the planes
 * back, so slice, even/odd and permute share one rule. */
/* Output plane p = n Cout + j and the input plane it comes from. The
 * sources of one op are distinct, so planes split across threads. */
static inline size_t source_plane(long p, int Cin, int Cout, const int *src)
{
    return (size_t)(p / Cout) * Cin + src[p % Cout];
}

static void gather_planes(int N, int Cin, int Cout, size_t HW, const int *src,
                          const float *x, float *y)
{
    FG_FOR_ITEMS((size_t)N * Cout * HW, p, (long)N * Cout,
                 memcpy(y + (size_t)p * HW, x + source_plane(p, Cin, Cout, src) * HW,
                        HW * sizeof(float)));
}

static void gather_backward(fg_graph *g, fg_node *nd)
{
    fg_var *x = nd->in[0], *y = nd->out;
    int N = x->t.shape[0], Cin = x->t.shape[1], Cout = y->t.shape[1];
    size_t HW = spatial(x);
    const int *src = nd->saved;
    const float *gy = y->grad;
    float *gx = fg_grad(g, x);
    FG_FOR_ITEMS((size_t)N * Cout * HW, p, (long)N * Cout,
                 float *d = gx + source_plane(p, Cin, Cout, src) * HW;
                 fg_k_add(HW, d, gy + (size_t)p * HW, d));
}

static fg_var *gather(fg_graph *g, const char *op, fg_var *x, int Cout, int *src)
{
    FG_OP_BEGIN(g);
    fg_var *y;
    int shape[FG_MAX_DIMS];
    memcpy(shape, x->t.shape, sizeof shape);
    shape[1] = Cout;
    y = fg_var_new(g, x->t.ndim, shape);
    gather_planes(x->t.shape[0], x->t.shape[1], Cout, spatial(x), src, x->t.data, y->t.data);
    fg_node *nd = fg_record(g, op, gather_backward, y, 1, x, NULL, NULL);
    if (nd) nd->saved = src;
    return y;
}

static int *index_buf(fg_graph *g, int n)
{
    return fg_arena_alloc(fg_graph_arena(g), (size_t)(n > 0 ? n : 1) * sizeof(int));
}

fg_var *fg_channel_slice(fg_graph *g, fg_var *x, int c0, int c1)
{
    FG_OP_BEGIN(g);
    require_channels("channel_slice", x);
    FG_CHECK(0 <= c0 && c0 <= c1 && c1 <= x->t.shape[1], "channel_slice",
             "range [%d, %d) outside %d channels", c0, c1, x->t.shape[1]);
    int *src = index_buf(g, c1 - c0);
    for (int j = 0; j < c1 - c0; j++) src[j] = c0 + j;
    return gather(g, "channel_slice", x, c1 - c0, src);
}

static fg_var *every_other(fg_graph *g, const char *op, fg_var *x, int first)
{
    require_channels(op, x);
    int C = x->t.shape[1];
    int Cout = (C - first + 1) / 2;
    int *src = index_buf(g, Cout);
    for (int j = 0; j < Cout; j++) src[j] = first + 2 * j;
    return gather(g, op, x, Cout, src);
}

fg_var *fg_channel_even(fg_graph *g, fg_var *x) { return every_other(g, "channel_even", x, 0); }
fg_var *fg_channel_odd(fg_graph *g, fg_var *x) { return every_other(g, "channel_odd", x, 1); }

fg_var *fg_channel_permute(fg_graph *g, fg_var *x, const int *perm)
{
    FG_OP_BEGIN(g);
    require_channels("channel_permute", x);
    int C = x->t.shape[1];
    int *src = index_buf(g, C), *seen = index_buf(g, C);
    memset(seen, 0, (size_t)C * sizeof(int));
    for (int j = 0; j < C; j++) {
        FG_CHECK(perm[j] >= 0 && perm[j] < C, "channel_permute", "index %d outside %d channels",
                 perm[j], C);
        /* Distinct sources: the backward adds planes from several threads. */
        FG_CHECK(!seen[perm[j]]++, "channel_permute", "channel %d appears twice", perm[j]);
        src[j] = perm[j];
    }
    return gather(g, "channel_permute", x, C, src);
}

/* ------------------------------------------------------------- concat */
static void concat_backward(fg_graph *g, fg_node *nd)
{
    fg_var *a = nd->in[0], *b = nd->in[1], *y = nd->out;
    int N = y->t.shape[0], Ca = a->t.shape[1], Cb = b->t.shape[1], C = Ca + Cb;
    size_t HW = spatial(y);
    const float *gy = y->grad;
    float *ga = a->requires_grad ? fg_grad(g, a) : NULL;
    float *gb = b->requires_grad ? fg_grad(g, b) : NULL;
    FG_FOR_ITEMS((size_t)N * C * HW, n, N,
                 const float *gn = gy + (size_t)n * C * HW;
                 if (ga) fg_k_add((size_t)Ca * HW, ga + (size_t)n * Ca * HW, gn,
                                  ga + (size_t)n * Ca * HW);
                 if (gb) fg_k_add((size_t)Cb * HW, gb + (size_t)n * Cb * HW,
                                  gn + (size_t)Ca * HW, gb + (size_t)n * Cb * HW));
}

fg_var *fg_channel_concat(fg_graph *g, fg_var *a, fg_var *b)
{
    FG_OP_BEGIN(g);
    require_channels("channel_concat", a);
    char sa[FG_SHAPE_STR_LEN], sb[FG_SHAPE_STR_LEN];
    int ok = a->t.ndim == b->t.ndim && a->t.shape[0] == b->t.shape[0];
    for (int d = 2; ok && d < a->t.ndim; d++) ok = a->t.shape[d] == b->t.shape[d];
    FG_CHECK(ok, "channel_concat", "shapes %s and %s differ outside the channel dimension",
             fg_shape_str(&a->t, sa, sizeof sa), fg_shape_str(&b->t, sb, sizeof sb));
    int shape[FG_MAX_DIMS];
    memcpy(shape, a->t.shape, sizeof shape);
    int N = a->t.shape[0], Ca = a->t.shape[1], Cb = b->t.shape[1];
    shape[1] = Ca + Cb;
    fg_var *y = fg_var_new(g, a->t.ndim, shape);
    size_t HW = spatial(a);
    const float *A = a->t.data, *B = b->t.data;
    float *Y = y->t.data;
    FG_FOR_ITEMS((size_t)N * (Ca + Cb) * HW, n, N,
                 float *o = Y + (size_t)n * (Ca + Cb) * HW;
                 memcpy(o, A + (size_t)n * Ca * HW, (size_t)Ca * HW * sizeof(float));
                 memcpy(o + (size_t)Ca * HW, B + (size_t)n * Cb * HW,
                        (size_t)Cb * HW * sizeof(float)));
    fg_record(g, "channel_concat", concat_backward, y, 2, a, b, NULL);
    return y;
}
