/* conv2d, stride 1, 'same' zero padding, odd square kernel k, as im2col +
 * GEMM. For k = 1 the input already is its column matrix.
 *
 * Per sample n, with K = Ci*k*k and P = H*W:
 *   forward          y_n (Co, P)  = w (Co, K) . col_n (K, P) + bias
 *   backward input   dcol (K, P)  = w^T . dy_n (Co, P); dx_n += col2im(dcol)
 *   backward weight  dw (Co, K)  += dy_n . col_n^T
 * For small images the columns of several samples share one GEMM (see
 * fg_conv_group_size); the products are the same with P replaced by G*P.
 *
 * The column matrix has Ci*k*k rows. When the output has fewer channels
 * than the input (Glow's last coupling layer maps 512 channels to 6), the
 * narrow formulation of conv_narrow.c shifts the output side instead and
 * its columns have Co*k*k rows. A 1x1 convolution between few channels
 * runs as direct loops (conv_pointwise.c). */
#include "tensor/conv_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* The narrow formulation packs and shifts Co*k*k rows where this one
 * handles Ci*k*k; for k = 1 nothing is shifted and this one copies nothing. */
static int use_narrow(int Ci, int Co, int k)
{
    return k > 1 && Co < Ci;
}

static void check_args(const char *op, int N, int Ci, int H, int W, int Co, int k)
{
    FG_CHECK(N >= 0 && Ci > 0 && H > 0 && W > 0 && Co > 0, op,
             "bad shape N=%d Ci=%d H=%d W=%d Co=%d", N, Ci, H, W, Co);
    FG_CHECK(k > 0 && k % 2 == 1, op, "kernel size %d is not odd (x (%d, %d, %d, %d))",
             k, N, Ci, H, W);
}

void fg_conv2d_forward(int N, int Ci, int H, int W, int Co, int k,
                       const float *x, const float *w, const float *bias,
                       float *y, fg_arena *scratch)
{
    check_args("conv2d_forward", N, Ci, H, W, Co, k);
    if (fg_conv_pointwise_applies(Ci, Co, k)) {
        fg_conv_pointwise_forward(N, Ci, H * W, Co, x, w, bias, y);
        return;
    }
    if (use_narrow(Ci, Co, k)) {
        fg_conv_narrow_forward(N, Ci, H, W, Co, k, x, w, bias, y, scratch);
        return;
    }
    const int K = Ci * k * k, P = H * W, G = fg_conv_group_size(N, P);
    const int n_groups = (N + G - 1) / G, T = fg_conv_sample_threads(n_groups);
    const int direct = G == 1 && k == 1;   /* a sample is its own column matrix */
    const size_t cols = (size_t)G * P;
    float *col_all = direct ? NULL : fg_conv_scratch_get(scratch, (size_t)T * K * cols);
    float *out_all = G > 1 ? fg_conv_scratch_get(scratch, (size_t)T * Co * cols) : NULL;
    double t_im2col = 0.0;
    const int timed = fg_profile_enabled();
    #pragma omp parallel for num_threads(T) if (T > 1) schedule(static) reduction(+:t_im2col)
    for (int gi = 0; gi < n_groups; gi++) {
        const int t = omp_get_thread_num();
        const int n0 = gi * G, g = N - n0 < G ? N - n0 : G;
        const size_t ld = (size_t)g * P;
        const float *b = x + (size_t)n0 * Ci * P;
        if (!direct) {
            float *col = col_all + (size_t)t * K * cols;
            double t0 = timed ? fg_profile_now() : 0.0;
            for (int i = 0; i < g; i++)
                fg_conv_im2col_ld(Ci, H, W, k, x + (size_t)(n0 + i) * Ci * P, col + (size_t)i * P, ld);
            if (timed) t_im2col += fg_profile_now() - t0;
            b = col;
        }
        float *yg = y + (size_t)n0 * Co * P;
        float *dst = G > 1 ? out_all + (size_t)t * Co * cols : yg;
        fg_gemm(0, 0, Co, (int)ld, K, 1.0f, w, K, b, (int)ld, 0.0f, dst, (int)ld);
        if (G > 1)
            fg_conv_scatter_columns(g, Co, P, dst, yg, 0);
        if (bias)
            fg_k_add_channel(g, Co, P, yg, bias, yg);
    }
    if (timed && !direct) fg_profile_add_shared("kernel:im2col", t_im2col / T);
    if (out_all)
        fg_conv_scratch_release(scratch, out_all);
    if (col_all)
        fg_conv_scratch_release(scratch, col_all);
}

void fg_conv2d_backward_input(int N, int Ci, int H, int W, int Co, int k,
                              const float *dy, const float *w, float *dx,
                              fg_arena *scratch)
{
    check_args("conv2d_backward_input", N, Ci, H, W, Co, k);
    if (fg_conv_pointwise_applies(Ci, Co, k)) {
        fg_conv_pointwise_backward_input(N, Ci, H * W, Co, dy, w, dx);
        return;
    }
    if (use_narrow(Ci, Co, k)) {
        fg_conv_narrow_backward_input(N, Ci, H, W, Co, k, dy, w, dx, scratch);
        return;
    }
    const int K = Ci * k * k, P = H * W, G = fg_conv_group_size(N, P);
    const int n_groups = (N + G - 1) / G, T = fg_conv_sample_threads(n_groups);
    const int direct = G == 1 && k == 1;
    const size_t cols = (size_t)G * P;
    float *dcol_all = direct ? NULL : fg_conv_scratch_get(scratch, (size_t)T * K * cols);
    float *dyg_all = G > 1 ? fg_conv_scratch_get(scratch, (size_t)T * Co * cols) : NULL;
    double t_col2im = 0.0;
    const int timed = fg_profile_enabled();
    #pragma omp parallel for num_threads(T) if (T > 1) schedule(static) reduction(+:t_col2im)
    for (int gi = 0; gi < n_groups; gi++) {
        const int t = omp_get_thread_num();
        const int n0 = gi * G, g = N - n0 < G ? N - n0 : G;
        const size_t ld = (size_t)g * P;
        const float *b_in = dy + (size_t)n0 * Co * P;
        if (direct) {
            /* dx_n += w^T dy_n straight into the sample's gradient */
            fg_gemm(1, 0, Ci, P, Co, 1.0f, w, K, b_in, P, 1.0f, dx + (size_t)n0 * Ci * P, P);
            continue;
        }
        if (G > 1) {
            float *dyg = dyg_all + (size_t)t * Co * cols;
            fg_conv_gather_columns(g, Co, P, b_in, dyg);
            b_in = dyg;
        }
        float *dcol = dcol_all + (size_t)t * K * cols;
        fg_gemm(1, 0, K, (int)ld, Co, 1.0f, w, K, b_in, (int)ld, 0.0f, dcol, (int)ld);
        double t0 = timed ? fg_profile_now() : 0.0;
        for (int i = 0; i < g; i++)
            fg_conv_col2im_ld(Ci, H, W, k, dcol + (size_t)i * P, ld, dx + (size_t)(n0 + i) * Ci * P);
        if (timed) t_col2im += fg_profile_now() - t0;
    }
    if (timed && !direct) fg_profile_add_shared("kernel:col2im", t_col2im / T);
    if (dyg_all)
        fg_conv_scratch_release(scratch, dyg_all);
    if (dcol_all)
        fg_conv_scratch_release(scratch, dcol_all);
}

static void wide_backward_weight(int N, int Ci, int H, int W, int Co, int k,
                                 const float *dy, const float *x, float *dw,
                                 fg_arena *scratch)
{
    const int K = Ci * k * k, P = H * W, G = fg_conv_group_size(N, P);
    const int n_groups = (N + G - 1) / G, T = fg_conv_sample_threads(n_groups);
    const int direct = G == 1 && k == 1;
    const size_t cols = (size_t)G * P;
    float *col_all = direct ? NULL : fg_conv_scratch_get(scratch, (size_t)T * K * cols);
    float *dyg_all = G > 1 ? fg_conv_scratch_get(scratch, (size_t)T * Co * cols) : NULL;
    /* Thread 0 accumulates into dw itself, the others into zeroed copies
     * summed at the end (a fixed order, so results repeat for a given
     * thread count). */
    float *acc = T > 1 ? fg_conv_scratch_get(scratch, (size_t)(T - 1) * Co * K) : NULL;
    if (acc)
        memset(acc, 0, (size_t)(T - 1) * Co * K * sizeof(float));
    double t_im2col = 0.0;
    const int timed = fg_profile_enabled();
    #pragma omp parallel for num_threads(T) if (T > 1) schedule(static) reduction(+:t_im2col)
    for (int gi = 0; gi < n_groups; gi++) {
        const int t = omp_get_thread_num();
        float *dwt = t == 0 ? dw : acc + (size_t)(t - 1) * Co * K;
        const int n0 = gi * G, g = N - n0 < G ? N - n0 : G;
        const size_t ld = (size_t)g * P;
        const float *a_in = dy + (size_t)n0 * Co * P;
        if (direct) {
            fg_gemm(0, 1, Co, K, P, 1.0f, a_in, P, x + (size_t)n0 * Ci * P, P, 1.0f, dwt, K);
            continue;
        }
        if (G > 1) {
            float *dyg = dyg_all + (size_t)t * Co * cols;
            fg_conv_gather_columns(g, Co, P, a_in, dyg);
            a_in = dyg;
        }
        float *col = col_all + (size_t)t * K * cols;
        double t0 = timed ? fg_profile_now() : 0.0;
        for (int i = 0; i < g; i++)
            fg_conv_im2col_ld(Ci, H, W, k, x + (size_t)(n0 + i) * Ci * P, col + (size_t)i * P, ld);
        if (timed) t_im2col += fg_profile_now() - t0;
        fg_gemm(0, 1, Co, K, (int)ld, 1.0f, a_in, (int)ld, col, (int)ld, 1.0f, dwt, K);
    }
    if (timed && !direct) fg_profile_add_shared("kernel:im2col", t_im2col / T);
    for (int t = 1; t < T; t++)
        fg_k_add((size_t)Co * K, dw, acc + (size_t)(t - 1) * Co * K, dw);
    if (acc)
        fg_conv_scratch_release(scratch, acc);
    if (dyg_all)
        fg_conv_scratch_release(scratch, dyg_all);
    if (col_all)
        fg_conv_scratch_release(scratch, col_all);
}

void fg_conv2d_backward_weight(int N, int Ci, int H, int W, int Co, int k,
                               const float *dy, const float *x, float *dw,
                               float *db, fg_arena *scratch)
{
    check_args("conv2d_backward_weight", N, Ci, H, W, Co, k);
    if (fg_conv_pointwise_applies(Ci, Co, k))
        fg_conv_pointwise_backward_weight(N, Ci, H * W, Co, dy, x, dw);
    else if (use_narrow(Ci, Co, k))
        fg_conv_narrow_backward_weight(N, Ci, H, W, Co, k, dy, x, dw, scratch);
    else
        wide_backward_weight(N, Ci, H, W, Co, k, dy, x, dw, scratch);
    if (db) {
        double *sums = fg_xmalloc((size_t)Co * sizeof(double), "conv2d bias gradient");
        fg_k_sum_per_channel(N, Co, H * W, dy, sums, NULL);
        for (int o = 0; o < Co; o++)
            db[o] += (float)sums[o];
        free(sums);
    }
}
