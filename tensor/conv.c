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

#include <omp.h>
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

/* Threads split the groups of samples between them, each with its own
 * column buffers, and every GEMM runs on its calling thread (fg_gemm_ex
 * does not fork inside a parallel region). The products of one sample are
 * small (e.g. 128 x 196 x 1152 for a 14x14 Glow layer): threading inside
 * each of them costs a barrier per GEMM and gains little, while whole
 * samples need no synchronization at all. */
/* (Profile counters are thread-seconds divided by T: wall time, as the
 * static schedule gives every thread the same share.) */
static int sample_threads(int n_groups)
{
    int t = fg_get_threads();
    return t < n_groups ? t : n_groups;
}

void fg_conv2d_forward(int N, int Ci, int H, int W, int Co, int k,
                       const float *x, const float *w, const float *bias,
                       float *y, fg_arena *scratch)
{
    check_args("conv2d_forward", N, Ci, H, W, Co, k);
    const int K = Ci * k * k, P = H * W, G = group_size(N, P);
    const int n_groups = (N + G - 1) / G, T = sample_threads(n_groups);
    const int direct = G == 1 && k == 1;   /* a sample is its own column matrix */
    const size_t cols = (size_t)G * P;
    float *col_all = direct ? NULL : scratch_get(scratch, (size_t)T * K * cols);
    float *out_all = G > 1 ? scratch_get(scratch, (size_t)T * Co * cols) : NULL;
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
                im2col_ld(Ci, H, W, k, x + (size_t)(n0 + i) * Ci * P, col + (size_t)i * P, ld);
            if (timed) t_im2col += fg_profile_now() - t0;
            b = col;
        }
        float *yg = y + (size_t)n0 * Co * P;
        float *dst = G > 1 ? out_all + (size_t)t * Co * cols : yg;
        fg_gemm(0, 0, Co, (int)ld, K, 1.0f, w, K, b, (int)ld, 0.0f, dst, (int)ld);
        if (G > 1)
            scatter_columns(g, Co, P, dst, yg);
        if (bias)
            fg_k_add_channel(g, Co, P, yg, bias, yg);
    }
    if (timed && !direct) fg_profile_add("kernel:im2col", t_im2col / T);
    if (out_all)
        scratch_release(scratch, out_all);
    if (col_all)
        scratch_release(scratch, col_all);
}

void fg_conv2d_backward_input(int N, int Ci, int H, int W, int Co, int k,
                              const float *dy, const float *w, float *dx,
                              fg_arena *scratch)
{
    check_args("conv2d_backward_input", N, Ci, H, W, Co, k);
    const int K = Ci * k * k, P = H * W, G = group_size(N, P);
    const int n_groups = (N + G - 1) / G, T = sample_threads(n_groups);
    const int direct = G == 1 && k == 1;
    const size_t cols = (size_t)G * P;
    float *dcol_all = direct ? NULL : scratch_get(scratch, (size_t)T * K * cols);
    float *dyg_all = G > 1 ? scratch_get(scratch, (size_t)T * Co * cols) : NULL;
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
            gather_columns(g, Co, P, b_in, dyg);
            b_in = dyg;
        }
        float *dcol = dcol_all + (size_t)t * K * cols;
        fg_gemm(1, 0, K, (int)ld, Co, 1.0f, w, K, b_in, (int)ld, 0.0f, dcol, (int)ld);
        double t0 = timed ? fg_profile_now() : 0.0;
        for (int i = 0; i < g; i++)
            col2im_ld(Ci, H, W, k, dcol + (size_t)i * P, ld, dx + (size_t)(n0 + i) * Ci * P);
        if (timed) t_col2im += fg_profile_now() - t0;
    }
    if (timed && !direct) fg_profile_add("kernel:col2im", t_col2im / T);
    if (dyg_all)
        scratch_release(scratch, dyg_all);
    if (dcol_all)
        scratch_release(scratch, dcol_all);
}

void fg_conv2d_backward_weight(int N, int Ci, int H, int W, int Co, int k,
                               const float *dy, const float *x, float *dw,
                               float *db, fg_arena *scratch)
{
    check_args("conv2d_backward_weight", N, Ci, H, W, Co, k);
    const int K = Ci * k * k, P = H * W, G = group_size(N, P);
    const int n_groups = (N + G - 1) / G, T = sample_threads(n_groups);
    const int direct = G == 1 && k == 1;
    const size_t cols = (size_t)G * P;
    float *col_all = direct ? NULL : scratch_get(scratch, (size_t)T * K * cols);
    float *dyg_all = G > 1 ? scratch_get(scratch, (size_t)T * Co * cols) : NULL;
    /* Thread 0 accumulates into dw itself, the others into zeroed copies
     * summed at the end (a fixed order, so results repeat for a given
     * thread count). */
    float *acc = T > 1 ? scratch_get(scratch, (size_t)(T - 1) * Co * K) : NULL;
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
            gather_columns(g, Co, P, a_in, dyg);
            a_in = dyg;
        }
        float *col = col_all + (size_t)t * K * cols;
        double t0 = timed ? fg_profile_now() : 0.0;
        for (int i = 0; i < g; i++)
            im2col_ld(Ci, H, W, k, x + (size_t)(n0 + i) * Ci * P, col + (size_t)i * P, ld);
        if (timed) t_im2col += fg_profile_now() - t0;
        fg_gemm(0, 1, Co, K, (int)ld, 1.0f, a_in, (int)ld, col, (int)ld, 1.0f, dwt, K);
    }
    if (timed && !direct) fg_profile_add("kernel:im2col", t_im2col / T);
    for (int t = 1; t < T; t++)
        fg_k_add((size_t)Co * K, dw, acc + (size_t)(t - 1) * Co * K, dw);
    if (acc)
        scratch_release(scratch, acc);
    if (dyg_all)
        scratch_release(scratch, dyg_all);
    if (col_all)
        scratch_release(scratch, col_all);
    if (db) {
        double *sums = fg_xmalloc((size_t)Co * sizeof(double), "conv2d bias gradient");
        fg_k_sum_per_channel(N, Co, P, dy, sums, NULL);
        for (int o = 0; o < Co; o++)
            db[o] += (float)sums[o];
        free(sums);
    }
}
