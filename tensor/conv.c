/* conv2d, stride 1, 'same' zero padding, odd square kernel k, as im2col +
 * GEMM per sample. For k = 1 the input already is its column matrix.
 *
 * Per sample n, with K = Ci*k*k and P = H*W:
 *   forward          y_n (Co, P)  = w (Co, K) . col_n (K, P) + bias
 *   backward input   dcol (K, P)  = w^T . dy_n (Co, P); dx_n += col2im(dcol)
 *   backward weight  dw (Co, K)  += dy_n . col_n^T */
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

void fg_im2col(int Ci, int H, int W, int k, const float *x, float *col)
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
        float *dst = col + (size_t)r * P;
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

void fg_col2im(int Ci, int H, int W, int k, const float *col, float *x)
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
                const float *src = col + ((size_t)(c * k + ki) * k + kj) * P;
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

void fg_conv2d_forward(int N, int Ci, int H, int W, int Co, int k,
                       const float *x, const float *w, const float *bias,
                       float *y, fg_arena *scratch)
{
    check_args("conv2d_forward", N, Ci, H, W, Co, k);
    const int K = Ci * k * k, P = H * W;
    float *col = k == 1 ? NULL : scratch_get(scratch, (size_t)K * P);
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * Ci * P;
        float *yn = y + (size_t)n * Co * P;
        const float *b_in = xn;
        if (k > 1) {
            fg_im2col(Ci, H, W, k, xn, col);
            b_in = col;
        }
        /* The bias enters as the initial C of an accumulating GEMM. */
        float beta = 0.0f;
        if (bias) {
            for (int o = 0; o < Co; o++)
                fg_k_fill((size_t)P, bias[o], yn + (size_t)o * P);
            beta = 1.0f;
        }
        fg_gemm(0, 0, Co, P, K, 1.0f, w, K, b_in, P, beta, yn, P);
    }
    if (col)
        scratch_release(scratch, col);
}

void fg_conv2d_backward_input(int N, int Ci, int H, int W, int Co, int k,
                              const float *dy, const float *w, float *dx,
                              fg_arena *scratch)
{
    check_args("conv2d_backward_input", N, Ci, H, W, Co, k);
    const int K = Ci * k * k, P = H * W;
    float *dcol = k == 1 ? NULL : scratch_get(scratch, (size_t)K * P);
    for (int n = 0; n < N; n++) {
        const float *dyn = dy + (size_t)n * Co * P;
        float *dxn = dx + (size_t)n * Ci * P;
        if (k == 1) {
            fg_gemm(1, 0, Ci, P, Co, 1.0f, w, K, dyn, P, 1.0f, dxn, P);
        } else {
            fg_gemm(1, 0, K, P, Co, 1.0f, w, K, dyn, P, 0.0f, dcol, P);
            fg_col2im(Ci, H, W, k, dcol, dxn);
        }
    }
    if (dcol)
        scratch_release(scratch, dcol);
}

void fg_conv2d_backward_weight(int N, int Ci, int H, int W, int Co, int k,
                               const float *dy, const float *x, float *dw,
                               float *db, fg_arena *scratch)
{
    check_args("conv2d_backward_weight", N, Ci, H, W, Co, k);
    const int K = Ci * k * k, P = H * W;
    float *col = k == 1 ? NULL : scratch_get(scratch, (size_t)K * P);
    for (int n = 0; n < N; n++) {
        const float *dyn = dy + (size_t)n * Co * P;
        const float *xn = x + (size_t)n * Ci * P;
        const float *b_in = xn;
        if (k > 1) {
            fg_im2col(Ci, H, W, k, xn, col);
            b_in = col;
        }
        fg_gemm(0, 1, Co, K, P, 1.0f, dyn, P, b_in, P, 1.0f, dw, K);
    }
    if (col)
        scratch_release(scratch, col);
    if (db) {
        double *sums = fg_xmalloc((size_t)Co * sizeof(double), "conv2d bias gradient");
        fg_k_sum_per_channel(N, Co, P, dy, sums, NULL);
        for (int o = 0; o < Co; o++)
            db[o] += (float)sums[o];
        free(sums);
    }
}
