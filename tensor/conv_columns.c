/* Column matrices for conv2d: im2col and its adjoint, grouping samples
 * side by side, and the scratch the column buffers come from. */
#include "tensor/conv_internal.h"
#include "tensor/parallel_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Scratch for one column matrix: from the caller's arena when given (freed
 * at the caller's step end), else from the heap and freed by release(). */
float *fg_conv_scratch_get(fg_arena *scratch, size_t count)
{
    if (scratch)
        return fg_arena_alloc(scratch, count * sizeof(float));
    return fg_aligned_alloc(count * sizeof(float), "conv2d column buffer");
}

void fg_conv_scratch_release(fg_arena *scratch, float *p)
{
    if (!scratch)
        fg_aligned_free(p);
}

/* Row r = (c, ki, kj) of im2col_ld. */
static inline void im2col_ld_row(int r, int H, int W, int k, const float *x, float *col,
                                 size_t ld)
{
    const int pad = k / 2;
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

/* im2col into columns with row stride ld, so that several samples can sit
 * side by side in one column matrix. */
void fg_conv_im2col_ld(int Ci, int H, int W, int k, const float *x, float *col, size_t ld)
{
    const int rows = Ci * k * k;
    const size_t P = (size_t)H * W;
    FG_FOR_ITEMS((size_t)rows * P, r, rows, im2col_ld_row((int)r, H, W, k, x, col, ld));
}

void fg_im2col(int Ci, int H, int W, int k, const float *x, float *col)
{
    fg_conv_im2col_ld(Ci, H, W, k, x, col, (size_t)H * W);
}

/* Input channel c of col2im_ld: the rows of channel c only touch x[c]. */
static inline void col2im_ld_channel(int c, int H, int W, int k, const float *col, size_t ld,
                                     float *x)
{
    const int pad = k / 2;
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

/* Adjoint of im2col_ld: accumulates columns of row stride ld into x,
 * threads owning whole input channels. */
void fg_conv_col2im_ld(int Ci, int H, int W, int k, const float *col, size_t ld, float *x)
{
    const size_t P = (size_t)H * W;
    FG_FOR_ITEMS((size_t)Ci * k * k * P, c, Ci, col2im_ld_channel((int)c, H, W, k, col, ld, x));
}

void fg_col2im(int Ci, int H, int W, int k, const float *col, float *x)
{
    fg_conv_col2im_ld(Ci, H, W, k, col, (size_t)H * W, x);
}

/* Samples per GEMM. A small image gives a GEMM of few columns, which BLIS
 * runs below its peak, so the columns of several samples are laid side by
 * side until a GEMM has about this many. Measured on one core (batch 16,
 * 3x3): 4x4 images with 256 channels run 25% faster grouped; at 8x8 it is
 * even; at 16x16 grouping 4 samples was 15% slower (larger buffers, extra
 * copies), hence the low target. */
enum { CONV_TARGET_COLUMNS = 256 };

int fg_conv_group_size(int N, int P)
{
    int g = CONV_TARGET_COLUMNS / P;
    if (g < 1)
        g = 1;
    return g < N ? g : (N > 0 ? N : 1);
}

/* (G, C, P) samples <-> (C, G*P) columns */
void fg_conv_gather_columns(int G, int C, int P, const float *src, float *dst)
{
    for (int g = 0; g < G; g++)
        for (int c = 0; c < C; c++)
            memcpy(dst + (size_t)c * G * P + (size_t)g * P,
                   src + ((size_t)g * C + c) * P, (size_t)P * sizeof(float));
}

void fg_conv_scatter_columns(int G, int C, int P, const float *src, float *dst,
                             int accumulate)
{
    for (int g = 0; g < G; g++)
        for (int c = 0; c < C; c++) {
            float *d = dst + ((size_t)g * C + c) * P;
            const float *s = src + (size_t)c * G * P + (size_t)g * P;
            if (accumulate)
                fg_k_add((size_t)P, d, s, d);
            else
                memcpy(d, s, (size_t)P * sizeof(float));
        }
}

/* Threads split the groups of samples between them, each with its own
 * column buffers, and every GEMM runs on its calling thread (fg_gemm_ex
 * does not fork inside a parallel region). The products of one sample are
 * small (e.g. 128 x 196 x 1152 for a 14x14 Glow layer): threading inside
 * each of them costs a barrier per GEMM and gains little, while whole
 * samples need no synchronization at all. */
/* (Profile counters are thread-seconds divided by T: wall time, as the
 * static schedule gives every thread the same share.) */
int fg_conv_sample_threads(int n_groups)
{
    int t = fg_get_threads();
    return t < n_groups ? t : n_groups;
}


void fg_conv_flip_weights(int Co, int Ci, int kk, const float *w, float *wr)
{
    for (int o = 0; o < Co; o++)
        for (int t = 0; t < kk; t++) {
            float *row = wr + ((size_t)o * kk + t) * Ci;
            for (int c = 0; c < Ci; c++)
                row[c] = w[((size_t)o * Ci + c) * kk + (kk - 1 - t)];
        }
}

void fg_conv_unflip_add(int Co, int Ci, int kk, const float *a, float *dw)
{
    const size_t R = (size_t)Co * kk;
    for (int o = 0; o < Co; o++)
        for (int c = 0; c < Ci; c++)
            for (int t = 0; t < kk; t++)
                dw[((size_t)o * Ci + c) * kk + t] += a[(size_t)c * R + (size_t)o * kk + (kk - 1 - t)];
}
