/* conv2d, stride 1, 'same' zero padding, odd square kernel k, as im2col +
 * GEMM. For k = 1 the input already is its column matrix.
 *
 * Per sample n, with K = Ci*k*k and P = H*W:
 *   forward          y_n (Co, P)  = w (Co, K) . col_n (K, P) + bias
 *   backward input   dcol (K, P)  = w^T . dy_n (Co, P); dx_n += col2im(dcol)
 *   backward weight  dw (Co, K)  += dy_n . col_n^T
 * For small images the columns of several samples share one GEMM (see
 * group_size); the products are the same with P replaced by G*P. */
#include "tensor/tensor.h"

#include <stdlib.h>
#include <string.h>

static void check_args(const char *op, int N, int Ci, int H, int W, int Co, int k)
{
    FG_CHECK(N >= 0 && Ci > 0 && H > 0 && W > 0 && Co > 0, op,
             "bad shape N=%d Ci=%d H=%d W=%d Co=%d", N, Ci, H, W, Co);
    FG_CHECK(k > 0 && k % 2 == 1, op, "kernel size %d is not odd (x (%d, %d, %d, %d))",
             k, N, Ci, H, W);
}

/* Scratch for one column matrix: from the caller's arena when given (freed
 * at the caller's step end), else from the heap and freed by release(). */
static float *scratch_get(fg_arena *scratch, size_t count)
{
    if (scratch)
        return fg_arena_alloc(scratch, count * sizeof(float));
    return fg_aligned_alloc(count * sizeof(float), "conv2d column buffer");
}

static void scratch_release(fg_arena *scratch, float *p)
{
    if (!scratch)
        fg_aligned_free(p);
}

/* im2col into columns with row stride ld, so that several samples can sit
 * side by side in one column matrix. */
static void im2col_ld(int Ci, int H, int W, int k, const float *x, float *col, size_t ld)
{
    const int pad = k / 2;
    const int rows = Ci * k * k;
    const size_t P = (size_t)H * W;
    #pragma omp parallel for if((size_t)rows * P > FG_PARALLEL_THRESHOLD)
    for (int r = 0; r < rows; r++) {
        const int c = r / (k * k), ki = (r / k) % k, kj = r % k;
        const int dx = kj - pad;
        /* Output columns w in [w0, w1) read x inside the image. */
        const int w0 = dx < 0 ? -dx : 0;
        const int w1 = dx > 0 ? W - dx : W;
        float *dst = col + (size_t)r * ld;
        for (int h = 0; h < H; h++) {
            const int hs = h + ki - pad;
            float *d = dst + (size_t)h * W;
            if (hs < 0 || hs >= H || w1 <= w0) {
                memset(d, 0, (size_t)W * sizeof(float));
                continue;
            }
            const float *s = x + ((size_t)c * H + hs) * W + dx;
            for (int w = 0; w < w0; w++)
                d[w] = 0.0f;
            memcpy(d + w0, s + w0, (size_t)(w1 - w0) * sizeof(float));
            for (int w = w1; w < W; w++)
                d[w] = 0.0f;
        }
    }
}

void fg_im2col(int Ci, int H, int W, int k, const float *x, float *col)
{
    im2col_ld(Ci, H, W, k, x, col, (size_t)H * W);
}

/* Adjoint of im2col_ld: accumulates columns of row stride ld into x. */
static void col2im_ld(int Ci, int H, int W, int k, const float *col, size_t ld, float *x)
{
    const int pad = k / 2;
    const size_t P = (size_t)H * W;
    /* Parallel over input channels: the rows of channel c only touch x[c]. */
    #pragma omp parallel for if((size_t)Ci * k * k * P > FG_PARALLEL_THRESHOLD)
    for (int c = 0; c < Ci; c++) {
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                const int dx = kj - pad;
                const int w0 = dx < 0 ? -dx : 0;
                const int w1 = dx > 0 ? W - dx : W;
                const float *src = col + ((size_t)(c * k + ki) * k + kj) * ld;
                for (int h = 0; h < H; h++) {
                    const int hs = h + ki - pad;
                    if (hs < 0 || hs >= H)
                        continue;
                    const float *s = src + (size_t)h * W;
                    float *d = x + ((size_t)c * H + hs) * W + dx;
                    #pragma omp simd
                    for (int w = w0; w < w1; w++)
                        d[w] += s[w];
                }
            }
    }
}

void fg_col2im(int Ci, int H, int W, int k, const float *col, float *x)
{
    col2im_ld(Ci, H, W, k, col, (size_t)H * W, x);
}

/* Samples per GEMM. A small image gives a GEMM of few columns, which BLIS
 * runs below its peak, so the columns of several samples are laid side by
 * side until a GEMM has about this many. Measured on one core (batch 16,
 * 3x3): 4x4 images with 256 channels run 25% faster grouped; at 8x8 it is
 * even; at 16x16 grouping 4 samples was 15% slower (larger buffers, extra
 * copies), hence the low target. */
enum { CONV_TARGET_COLUMNS = 256 };

static int group_size(int N, int P)
{
    int g = CONV_TARGET_COLUMNS / P;
    if (g < 1)
        g = 1;
    return g < N ? g : (N > 0 ? N : 1);
}

/* (G, C, P) samples <-> (C, G*P) columns */
static void gather_columns(int G, int C, int P, const float *src, float *dst)
{
    for (int g = 0; g < G; g++)
        for (int c = 0; c < C; c++)
            memcpy(dst + (size_t)c * G * P + (size_t)g * P,
                   src + ((size_t)g * C + c) * P, (size_t)P * sizeof(float));
}

static void scatter_columns(int G, int C, int P, const float *src, float *dst)
{
    for (int g = 0; g < G; g++)
        for (int c = 0; c < C; c++)
            memcpy(dst + ((size_t)g * C + c) * P,
                   src + (size_t)c * G * P + (size_t)g * P, (size_t)P * sizeof(float));
}

void fg_conv2d_forward(int N, int Ci, int H, int W, int Co, int k,
                       const float *x, const float *w, const float *bias,
                       float *y, fg_arena *scratch)
{
    check_args("conv2d_forward", N, Ci, H, W, Co, k);
    const int K = Ci * k * k, P = H * W, G = group_size(N, P);
    if (G == 1 && k == 1) {
        /* Each sample already is its own column matrix. */
        for (int n = 0; n < N; n++) {
            float *yn = y + (size_t)n * Co * P;
            float beta = 0.0f;
            if (bias) {
                for (int o = 0; o < Co; o++)
                    fg_k_fill((size_t)P, bias[o], yn + (size_t)o * P);
                beta = 1.0f;
            }
            fg_gemm(0, 0, Co, P, K, 1.0f, w, K, x + (size_t)n * Ci * P, P, beta, yn, P);
        }
        return;
    }
    const size_t cols = (size_t)G * P;
    float *col = scratch_get(scratch, (size_t)K * cols);
    float *out = G > 1 ? scratch_get(scratch, (size_t)Co * cols) : NULL;
    for (int n0 = 0; n0 < N; n0 += G) {
        const int g = N - n0 < G ? N - n0 : G;
        const size_t ld = (size_t)g * P;
        FG_TIMED("kernel:im2col", for (int i = 0; i < g; i++)
            im2col_ld(Ci, H, W, k, x + (size_t)(n0 + i) * Ci * P, col + (size_t)i * P, ld));
        float *dst = G > 1 ? out : y + (size_t)n0 * Co * P;
        fg_gemm(0, 0, Co, (int)ld, K, 1.0f, w, K, col, (int)ld, 0.0f, dst, (int)ld);
        if (G > 1)
            scatter_columns(g, Co, P, out, y + (size_t)n0 * Co * P);
        if (bias)
            fg_k_add_channel(g, Co, P, y + (size_t)n0 * Co * P, bias, y + (size_t)n0 * Co * P);
    }
    if (out)
        scratch_release(scratch, out);
    scratch_release(scratch, col);
}

void fg_conv2d_backward_input(int N, int Ci, int H, int W, int Co, int k,
                              const float *dy, const float *w, float *dx,
                              fg_arena *scratch)
{
    check_args("conv2d_backward_input", N, Ci, H, W, Co, k);
    const int K = Ci * k * k, P = H * W, G = group_size(N, P);
    if (G == 1 && k == 1) {
        for (int n = 0; n < N; n++)
            fg_gemm(1, 0, Ci, P, Co, 1.0f, w, K, dy + (size_t)n * Co * P, P, 1.0f,
                    dx + (size_t)n * Ci * P, P);
        return;
    }
    const size_t cols = (size_t)G * P;
    float *dcol = scratch_get(scratch, (size_t)K * cols);
    float *dyg = G > 1 ? scratch_get(scratch, (size_t)Co * cols) : NULL;
    for (int n0 = 0; n0 < N; n0 += G) {
        const int g = N - n0 < G ? N - n0 : G;
        const size_t ld = (size_t)g * P;
        const float *b_in = dy + (size_t)n0 * Co * P;
        if (G > 1) {
            gather_columns(g, Co, P, b_in, dyg);
            b_in = dyg;
        }
        fg_gemm(1, 0, K, (int)ld, Co, 1.0f, w, K, b_in, (int)ld, 0.0f, dcol, (int)ld);
        FG_TIMED("kernel:col2im", for (int i = 0; i < g; i++)
            col2im_ld(Ci, H, W, k, dcol + (size_t)i * P, ld, dx + (size_t)(n0 + i) * Ci * P));
    }
    if (dyg)
        scratch_release(scratch, dyg);
    scratch_release(scratch, dcol);
}

void fg_conv2d_backward_weight(int N, int Ci, int H, int W, int Co, int k,
                               const float *dy, const float *x, float *dw,
                               float *db, fg_arena *scratch)
{
    check_args("conv2d_backward_weight", N, Ci, H, W, Co, k);
    const int K = Ci * k * k, P = H * W, G = group_size(N, P);
    if (G == 1 && k == 1) {
        for (int n = 0; n < N; n++)
            fg_gemm(0, 1, Co, K, P, 1.0f, dy + (size_t)n * Co * P, P,
                    x + (size_t)n * Ci * P, P, 1.0f, dw, K);
    } else {
        const size_t cols = (size_t)G * P;
        float *col = scratch_get(scratch, (size_t)K * cols);
        float *dyg = G > 1 ? scratch_get(scratch, (size_t)Co * cols) : NULL;
        for (int n0 = 0; n0 < N; n0 += G) {
            const int g = N - n0 < G ? N - n0 : G;
            const size_t ld = (size_t)g * P;
            const float *a_in = dy + (size_t)n0 * Co * P;
            if (G > 1) {
                gather_columns(g, Co, P, a_in, dyg);
                a_in = dyg;
            }
            FG_TIMED("kernel:im2col", for (int i = 0; i < g; i++)
                im2col_ld(Ci, H, W, k, x + (size_t)(n0 + i) * Ci * P, col + (size_t)i * P, ld));
            fg_gemm(0, 1, Co, K, (int)ld, 1.0f, a_in, (int)ld, col, (int)ld, 1.0f, dw, K);
        }
        if (dyg)
            scratch_release(scratch, dyg);
        scratch_release(scratch, col);
    }
    if (db) {
        double *sums = fg_xmalloc((size_t)Co * sizeof(double), "conv2d bias gradient");
        fg_k_sum_per_channel(N, Co, P, dy, sums, NULL);
        for (int o = 0; o < Co; o++)
            db[o] += (float)sums[o];
        free(sums);
    }
}
