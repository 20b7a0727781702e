/* conv2d on a batch stored channel-major: x (Ci, N, H, W), y (Co, N, H, W).
 *
 * In this layout channel c of the whole batch is one row of N*H*W values,
 * so the batch is one matrix (Ci, N P) and every convolution is one GEMM
 * over the whole batch: a 1x1 convolution is y = w . x with no copy, and
 * BLIS splits the large product between threads itself. Per sample (conv.c)
 * the same layer is N small products that BLIS blocks poorly.
 *
 * For k > 1 the shifted copies are made as in conv.c and conv_narrow.c, on
 * the side with fewer channels: im2col of the input when Ci <= Co, a small
 * output-side matrix of Co k k rows when Co < Ci. Column matrices are built
 * for a run of samples at a time, so that they stay within the column
 * budget however large the batch; each run is one GEMM whose output is a
 * column range of the (Co, N P) result.
 *
 * The same three passes also run on work buffers the caller provides
 * (fg_conv_cm_*_work, conv_internal.h), for the convolution chain
 * (autograd/ops_conv_chain.c), whose threads each run them on their own
 * chunk of images and must not share an arena. */
#include "tensor/conv_internal.h"
#include "tensor/parallel_internal.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* 32 MiB: a run of 64 samples of 14x14 pixels with 2304 column rows (a
 * 256-channel 3x3 layer) in two runs; Glow's small-side matrices (at most
 * a few dozen rows) always in one. */
static _Atomic size_t column_budget = (size_t)32 << 20;

size_t fg_conv_set_column_budget(size_t bytes)
{
    return atomic_exchange(&column_budget, bytes > 0 ? bytes : 1);
}

/* Samples per run for a column matrix of `rows` rows. */
static int run_length(int N, int rows, int P)
{
    size_t per_sample = (size_t)rows * P * sizeof(float);
    size_t n = atomic_load(&column_budget) / (per_sample ? per_sample : 1);
    if (n < 1)
        n = 1;
    return n < (size_t)N ? (int)n : N;
}

/* Tap t of a k x k kernel reads the pixel (di, dj) away. In a row of whole
 * images that is the value `off` = di W + dj positions further, except
 * where the tap reaches outside its image; those positions are zeroed. */
typedef struct {
    int di, dj;
    long off;
} tap;

static tap tap_of(int W, int k, int t)
{
    tap a = {t / k - k / 2, t % k - k / 2, 0};
    a.off = (long)a.di * W + a.dj;
    return a;
}

/* Zeroes the positions of a row of nc images whose tap falls outside the
 * image: |di| rows at the top or bottom, |dj| columns at the left or right. */
static void zero_border(int H, int W, tap a, int nc, float *row)
{
    const size_t P = (size_t)H * W;
    const int r0 = a.di < 0 ? 0 : H - a.di, r1 = a.di < 0 ? -a.di : H;
    const int c0 = a.dj < 0 ? 0 : W - a.dj, c1 = a.dj < 0 ? -a.dj : W;
    for (int n = 0; n < nc; n++) {
        float *img = row + (size_t)n * P;
        if (a.di != 0)
            memset(img + (size_t)r0 * W, 0, (size_t)(r1 - r0) * W * sizeof(float));
        if (a.dj != 0)
            for (int h = 0; h < H; h++)
                for (int w = c0; w < c1; w++)
                    img[(size_t)h * W + w] = 0.0f;
    }
}

/* The range of positions q whose source q + off lies inside a row of L. */
static void valid_range(long L, long off, long *q0, long *q1)
{
    *q0 = off < 0 ? -off : 0;
    *q1 = off > 0 ? L - off : L;
    if (*q0 > L) *q0 = L;
    if (*q1 < *q0) *q1 = *q0;
}

/* im2col of samples [n0, n0 + nc) of a channel-major (C, N, H, W) batch:
 * row (c, t) is channel c's row of the run shifted by tap t, one copy of
 * the whole row and then its borders zeroed, so that small images cost no
 * call per image row. */
static inline void im2col_row(int r, int N, int H, int W, int k, int n0, int nc,
                              const float *x, float *col)
{
    const size_t P = (size_t)H * W;
    const long L = (long)nc * (long)P;
    const int kk = k * k;
    const int c = r / kk;
    const tap a = tap_of(W, k, r % kk);
    const float *src = x + ((size_t)c * N + n0) * P;
    float *dst = col + (size_t)r * L;
    long q0, q1;
    valid_range(L, a.off, &q0, &q1);
    memset(dst, 0, (size_t)q0 * sizeof(float));
    memcpy(dst + q0, src + q0 + a.off, (size_t)(q1 - q0) * sizeof(float));
    memset(dst + q1, 0, (size_t)(L - q1) * sizeof(float));
    zero_border(H, W, a, nc, dst);
}

static void im2col_run(int C, int N, int H, int W, int k, int n0, int nc, const float *x,
                       float *col)
{
    const size_t P = (size_t)H * W;
    const long L = (long)nc * (long)P;
    const int kk = k * k;
    FG_FOR_ITEMS((size_t)C * kk * L, r, C * kk,
                 im2col_row((int)r, N, H, W, k, n0, nc, x, col));
}

/* The adjoint: adds every row (c, t) back into channel c, shifted the
 * other way. The column matrix is scratch and is consumed: its border
 * positions are zeroed in place so that whole rows can be added. Threads
 * own whole channels. */
static inline void col2im_channel(int c, int N, int H, int W, int k, int n0, int nc,
                                  float *col, float *x)
{
    const size_t P = (size_t)H * W;
    const long L = (long)nc * (long)P;
    const int kk = k * k;
    float *dst = x + ((size_t)c * N + n0) * P;
    for (int t = 0; t < kk; t++) {
        const tap a = tap_of(W, k, t);
        float *src = col + ((size_t)c * kk + t) * L;
        long q0, q1;
        valid_range(L, a.off, &q0, &q1);
        zero_border(H, W, a, nc, src);
        float *restrict d = dst + q0 + a.off;
        const float *restrict sp = src + q0;
        #pragma omp simd
        for (long i = 0; i < q1 - q0; i++)
            d[i] += sp[i];
    }
}

static void col2im_run(int C, int N, int H, int W, int k, int n0, int nc, float *col,
                       float *x)
{
    const size_t P = (size_t)H * W;
    const long L = (long)nc * (long)P;
    const int kk = k * k;
    FG_FOR_ITEMS((size_t)C * kk * L, c, C, col2im_channel((int)c, N, H, W, k, n0, nc, col, x));
}

static int narrow(int Ci, int Co, int k)
{
    return k > 1 && Co < Ci;
}

int fg_conv_cm_is_narrow(int Ci, int Co, int k)
{
    return narrow(Ci, Co, k);
}

static void check(const char *op, int N, int Ci, int H, int W, int Co, int k)
{
    FG_CHECK(N > 0 && Ci > 0 && H > 0 && W > 0 && Co > 0, op,
             "bad shape N=%d Ci=%d H=%d W=%d Co=%d", N, Ci, H, W, Co);
    FG_CHECK(k > 0 && k % 2 == 1, op, "kernel size %d is not odd", k);
    FG_CHECK((size_t)N * H * W <= (size_t)1 << 30, op,
             "a batch of %d images of %dx%d is too large for one matrix row", N, H, W);
}

/* Wall time: inside a parallel region (a convolution chain's chunks) each
 * thread's seconds count divided by the team's size, as fg_gemm_ex counts
 * its own. */
#define TIMED_COLUMNS(name, stmt) do { \
        double t0_ = fg_profile_enabled() ? fg_profile_now() : 0.0; \
        stmt; \
        if (t0_ != 0.0) \
            fg_profile_add_shared("kernel:" name, fg_profile_now() - t0_); \
    } while (0)

size_t fg_conv_cm_work_floats(int run, int Ci, int H, int W, int Co, int k)
{
    const size_t P = (size_t)H * W, kk = (size_t)k * k;
    if (k == 1)
        return 0;
    if (!narrow(Ci, Co, k))
        return (size_t)Ci * kk * run * P;
    /* Wr or the weight-side gradient A, then the (Co k k, run P) matrix */
    return (size_t)Co * kk * Ci + (size_t)Co * kk * run * P;
}

size_t fg_conv_cm_prepare_floats(int Ci, int Co, int k)
{
    const int kk = k * k;
    if (k > 1 && narrow(Ci, Co, k))
        return (size_t)Co * kk * Ci + fg_gemm_prepared_floats(Co * kk, Ci);
    return fg_gemm_prepared_floats(Co, Ci * kk);
}

fg_gemm_prepared fg_conv_cm_prepare(int Ci, int Co, int k, const float *w, int ldw, float *buf)
{
    const int kk = k * k;
    if (k > 1 && narrow(Ci, Co, k)) {
        FG_CHECK(ldw == Ci * kk, "conv2d_cm_prepare", "a narrow convolution's weights must "
                 "be contiguous (row stride %d, not %d)", Ci * kk, ldw);
        const int R = Co * kk;
        float *wr = buf;
        fg_conv_flip_weights(Co, Ci, kk, w, wr);
        return fg_gemm_prepare_a(0, R, Ci, wr, Ci, buf + (size_t)R * Ci);
    }
    return fg_gemm_prepare_a(0, Co, Ci * kk, w, ldw, buf);
}

/* C = ep(op(A) B) for the forward products, from pw's prepared op(A) when
 * there is one. */
static void forward_product(const fg_gemm_prepared *pw, int M, int N, int K, const float *a,
                            long lda, const float *b, long ldb, float *c, long ldc,
                            const fg_row_affine *ep)
{
    if (pw)
        fg_gemm_row_affine_prepared(pw, N, 1.0f, b, ldb, 0.0f, c, ldc, ep);
    else
        fg_gemm_row_affine(0, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, ldc, ep);
}

/* The cores below take their column matrices in `work`, sized by
 * fg_conv_cm_work_floats for runs of `run` images, so that a caller that
 * runs many of them side by side (one per thread) can hand each its own. */
void fg_conv_cm_forward_work(int N, int Ci, int H, int W, int Co, int k, const float *x,
                             const float *w, int ldw, const float *bias, float *y, int run,
                             float *work, const fg_gemm_prepared *pw,
                             const fg_row_affine *ep)
{
    const int P = H * W, NP = N * P, kk = k * k;
    /* The products apply ep as they store their output, unless a bias
     * must come first. */
    const fg_row_affine *ep_gemm = bias ? NULL : ep;
    if (k == 1) {
        forward_product(pw, Co, NP, Ci, w, ldw, x, NP, y, NP, ep_gemm);
    } else if (!narrow(Ci, Co, k)) {
        const int K = Ci * kk;
        float *col = work;
        for (int n0 = 0; n0 < N; n0 += run) {
            const int nc = N - n0 < run ? N - n0 : run;
            TIMED_COLUMNS("im2col", im2col_run(Ci, N, H, W, k, n0, nc, x, col));
            forward_product(pw, Co, nc * P, K, w, ldw, col, nc * P, y + (size_t)n0 * P, NP,
                            ep_gemm);
        }
    } else {
        FG_CHECK(ldw == Ci * kk, "conv2d_cm_forward", "a narrow convolution's weights must be "
                 "contiguous (row stride %d, not %d)", Ci * kk, ldw);
        /* Z (Co k k, run P) = Wr . x, then its rows shifted into y. */
        const int R = Co * kk;
        float *wr = work, *z = work + (size_t)R * Ci;
        if (!pw)
            fg_conv_flip_weights(Co, Ci, kk, w, wr);
        memset(y, 0, (size_t)Co * NP * sizeof(float));
        for (int n0 = 0; n0 < N; n0 += run) {
            const int nc = N - n0 < run ? N - n0 : run;
            forward_product(pw, R, nc * P, Ci, wr, Ci, x + (size_t)n0 * P, NP, z,
                            (long)nc * P, NULL);
            TIMED_COLUMNS("col2im", col2im_run(Co, N, H, W, k, n0, nc, z, y));
        }
        ep_gemm = NULL;   /* y was summed from shifted rows: ep comes after */
    }
    if (bias)
        fg_k_add_channel(1, Co, NP, y, bias, y);
    if (ep && !ep_gemm)
        fg_row_affine_apply(Co, NP, y, NP, ep);
}

void fg_conv_cm_backward_input_work(int N, int Ci, int H, int W, int Co, int k,
                                    const float *dy, const float *w, int ldw, float *dx,
                                    int accumulate, int run, float *work)
{
    const int P = H * W, NP = N * P, kk = k * k;
    const float beta = accumulate ? 1.0f : 0.0f;   /* beta 0 never reads dx */
    if (k == 1) {
        fg_gemm(1, 0, Ci, NP, Co, 1.0f, w, ldw, dy, NP, beta, dx, NP);
    } else if (!narrow(Ci, Co, k)) {
        /* dcol (Ci k k, run P) = w^T . dy, added back into dx by col2im. */
        const int K = Ci * kk;
        float *dcol = work;
        if (!accumulate)
            memset(dx, 0, (size_t)Ci * NP * sizeof(float));
        for (int n0 = 0; n0 < N; n0 += run) {
            const int nc = N - n0 < run ? N - n0 : run;
            fg_gemm_ex(1, 0, K, nc * P, Co, 1.0f, w, ldw, 1, dy + (size_t)n0 * P, NP, 1, 0.0f,
                       dcol, (long)nc * P, 1);
            TIMED_COLUMNS("col2im", col2im_run(Ci, N, H, W, k, n0, nc, dcol, dx));
        }
    } else {
        FG_CHECK(ldw == Ci * kk, "conv2d_cm_backward_input", "a narrow convolution's weights "
                 "must be contiguous (row stride %d, not %d)", Ci * kk, ldw);
        /* dx += Wr^T . im2col(dy) */
        const int R = Co * kk;
        float *wr = work, *dcol = work + (size_t)R * Ci;
        fg_conv_flip_weights(Co, Ci, kk, w, wr);
        for (int n0 = 0; n0 < N; n0 += run) {
            const int nc = N - n0 < run ? N - n0 : run;
            TIMED_COLUMNS("im2col", im2col_run(Co, N, H, W, k, n0, nc, dy, dcol));
            fg_gemm(1, 0, Ci, nc * P, R, 1.0f, wr, Ci, dcol, nc * P, beta,
                    dx + (size_t)n0 * P, NP);
        }
    }
}

void fg_conv_cm_backward_weight_work(int N, int Ci, int H, int W, int Co, int k,
                                     const float *dy, const float *x, float *dw, int ldw,
                                     int run, float *work)
{
    const int P = H * W, NP = N * P, kk = k * k;
    if (k == 1) {
        fg_gemm(0, 1, Co, Ci, NP, 1.0f, dy, NP, x, NP, 1.0f, dw, ldw);
    } else if (!narrow(Ci, Co, k)) {
        /* dw += dy . im2col(x)^T */
        const int K = Ci * kk;
        float *col = work;
        for (int n0 = 0; n0 < N; n0 += run) {
            const int nc = N - n0 < run ? N - n0 : run;
            TIMED_COLUMNS("im2col", im2col_run(Ci, N, H, W, k, n0, nc, x, col));
            fg_gemm_ex(0, 1, Co, K, nc * P, 1.0f, dy + (size_t)n0 * P, NP, 1, col, (long)nc * P,
                       1, 1.0f, dw, ldw, 1);
        }
    } else {
        FG_CHECK(ldw == Ci * kk, "conv2d_cm_backward_weight", "a narrow convolution's weight "
                 "gradient must be contiguous (row stride %d, not %d)", Ci * kk, ldw);
        /* A (Ci, Co k k) = x . im2col(dy)^T, rearranged into dw. */
        const int R = Co * kk;
        float *a = work, *dcol = work + (size_t)R * Ci;
        for (int n0 = 0; n0 < N; n0 += run) {
            const int nc = N - n0 < run ? N - n0 : run;
            TIMED_COLUMNS("im2col", im2col_run(Co, N, H, W, k, n0, nc, dy, dcol));
            fg_gemm_ex(0, 1, Ci, R, nc * P, 1.0f, x + (size_t)n0 * P, NP, 1, dcol, (long)nc * P,
                       1, n0 == 0 ? 0.0f : 1.0f, a, R, 1);
        }
        fg_conv_unflip_add(Co, Ci, kk, a, dw);
    }
}

/* The rows of the largest column matrix the run needs. */
static int column_rows(int Ci, int Co, int k)
{
    return narrow(Ci, Co, k) ? Co * k * k : Ci * k * k;
}

/* The run of samples per column matrix and the work buffer of a whole-batch
 * pass (none for 1x1, whose products need no columns). */
static float *work_get(fg_arena *scratch, int N, int Ci, int H, int W, int Co, int k,
                       int *run)
{
    *run = run_length(N, column_rows(Ci, Co, k), H * W);
    return k > 1 ? fg_conv_scratch_get(scratch, fg_conv_cm_work_floats(*run, Ci, H, W, Co, k))
                 : NULL;
}

static void work_release(fg_arena *scratch, float *work)
{
    if (work)
        fg_conv_scratch_release(scratch, work);
}

void fg_conv2d_cm_forward(int N, int Ci, int H, int W, int Co, int k,
                          const float *x, const float *w, const float *bias,
                          float *y, fg_arena *scratch)
{
    check("conv2d_cm_forward", N, Ci, H, W, Co, k);
    int run;
    float *work = work_get(scratch, N, Ci, H, W, Co, k, &run);
    fg_conv_cm_forward_work(N, Ci, H, W, Co, k, x, w, Ci * k * k, bias, y, run, work, NULL,
                            NULL);
    work_release(scratch, work);
}

void fg_conv2d_cm_backward_input(int N, int Ci, int H, int W, int Co, int k,
                                 const float *dy, const float *w, float *dx, int accumulate,
                                 fg_arena *scratch)
{
    check("conv2d_cm_backward_input", N, Ci, H, W, Co, k);
    int run;
    float *work = work_get(scratch, N, Ci, H, W, Co, k, &run);
    fg_conv_cm_backward_input_work(N, Ci, H, W, Co, k, dy, w, Ci * k * k, dx, accumulate, run,
                                   work);
    work_release(scratch, work);
}

void fg_conv2d_cm_backward_weight(int N, int Ci, int H, int W, int Co, int k,
                                  const float *dy, const float *x, float *dw,
                                  float *db, fg_arena *scratch)
{
    check("conv2d_cm_backward_weight", N, Ci, H, W, Co, k);
    const int NP = N * H * W;
    int run;
    float *work = work_get(scratch, N, Ci, H, W, Co, k, &run);
    fg_conv_cm_backward_weight_work(N, Ci, H, W, Co, k, dy, x, dw, Ci * k * k, run, work);
    work_release(scratch, work);
    if (db) {
        double *sums = fg_xmalloc((size_t)Co * sizeof(double), "conv2d bias gradient");
        fg_k_sum_per_channel(1, Co, NP, dy, sums, NULL);
        for (int o = 0; o < Co; o++)
            db[o] += (float)sums[o];
        free(sums);
    }
}
