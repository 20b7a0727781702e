/* conv2d with fewer output than input channels, shifting the output side.
 *
 * im2col (conv.c) copies the input Ci*k*k times; for a layer such as Glow's
 * zero-initialized last convolution (hidden 512 -> 6 channels) that is a
 * column matrix of 4608 rows, packed again by every GEMM that reads it, and
 * a backward GEMM whose inner dimension is Co = 6. Every tap t of the kernel
 * shifts the image by d_t, and a shift can as well be applied after the
 * channel mixing, to the Co*k*k rows of a small matrix:
 *
 *   forward          Z (Co k k, P) = Wr . x_n (Ci, P);        y_n = col2im(Z)
 *   backward input   dx_n (Ci, P) += Wr^T . im2col(dy_n)
 *   backward weight  A (Ci, Co k k) += x_n . im2col(dy_n)^T;  dw = A rearranged
 *
 * with Wr[(o, t), c] = w[o, c, k*k-1-t]: tap k*k-1-t shifts by -d_t, which
 * turns col2im's scatter into the gather the forward needs and im2col's
 * gather into the scatter of the adjoint. The input enters every GEMM as
 * it is stored, and the inner dimensions are Ci, Co k k and P. */
#include "tensor/conv_internal.h"

#include <omp.h>
#include <string.h>

typedef struct {
    int N, Ci, H, W, Co, k;
    int kk, R, P, G, n_groups, T;   /* R = Co k k rows of the small matrix */
    size_t cols;                    /* G P: columns of one group */
} narrow_plan;

static narrow_plan plan(int N, int Ci, int H, int W, int Co, int k)
{
    narrow_plan p = {N, Ci, H, W, Co, k, k * k, Co * k * k, H * W, 0, 0, 0, 0};
    p.G = fg_conv_group_size(N, p.P);
    p.n_groups = (N + p.G - 1) / p.G;
    p.T = fg_conv_sample_threads(p.n_groups);
    p.cols = (size_t)p.G * p.P;
    return p;
}

/* The input of group gi as a (Ci, g P) matrix: the sample itself when a
 * group is one sample, else gathered into buf. */
static const float *group_input(const narrow_plan *p, const float *x, int n0, int g,
                                float *buf)
{
    const float *src = x + (size_t)n0 * p->Ci * p->P;
    if (p->G == 1)
        return src;
    fg_conv_gather_columns(g, p->Ci, p->P, src, buf);
    return buf;
}

static int group_count(const narrow_plan *p, int gi, int *n0)
{
    *n0 = gi * p->G;
    return p->N - *n0 < p->G ? p->N - *n0 : p->G;
}

/* im2col of the g output gradients of a group, side by side. */
static void dy_columns(const narrow_plan *p, const float *dy, int n0, int g, float *col)
{
    const size_t ld = (size_t)g * p->P;
    for (int i = 0; i < g; i++)
        fg_conv_im2col_ld(p->Co, p->H, p->W, p->k, dy + (size_t)(n0 + i) * p->Co * p->P,
                          col + (size_t)i * p->P, ld);
}

void fg_conv_narrow_forward(int N, int Ci, int H, int W, int Co, int k,
                            const float *x, const float *w, const float *bias,
                            float *y, fg_arena *scratch)
{
    const narrow_plan p = plan(N, Ci, H, W, Co, k);
    float *wr = fg_conv_scratch_get(scratch, (size_t)p.R * Ci);
    float *z_all = fg_conv_scratch_get(scratch, (size_t)p.T * p.R * p.cols);
    float *xg_all = p.G > 1 ? fg_conv_scratch_get(scratch, (size_t)p.T * Ci * p.cols) : NULL;
    fg_conv_flip_weights(Co, Ci, p.kk, w, wr);
    double t_shift = 0.0;
    const int timed = fg_profile_enabled();
    #pragma omp parallel for num_threads(p.T) if (p.T > 1) schedule(static) reduction(+:t_shift)
    for (int gi = 0; gi < p.n_groups; gi++) {
        const int t = omp_get_thread_num();
        int n0;
        const int g = group_count(&p, gi, &n0);
        const size_t ld = (size_t)g * p.P;
        const float *b = group_input(&p, x, n0, g, xg_all ? xg_all + (size_t)t * Ci * p.cols : NULL);
        float *z = z_all + (size_t)t * p.R * p.cols;
        fg_gemm(0, 0, p.R, (int)ld, Ci, 1.0f, wr, Ci, b, (int)ld, 0.0f, z, (int)ld);
        double t0 = timed ? fg_profile_now() : 0.0;
        for (int i = 0; i < g; i++) {
            float *yn = y + (size_t)(n0 + i) * Co * p.P;
            for (int o = 0; o < Co; o++) {
                const float v = bias ? bias[o] : 0.0f;
                float *plane = yn + (size_t)o * p.P;
                for (int q = 0; q < p.P; q++)
                    plane[q] = v;
            }
            fg_conv_col2im_ld(Co, H, W, k, z + (size_t)i * p.P, ld, yn);
        }
        if (timed) t_shift += fg_profile_now() - t0;
    }
    if (timed) fg_profile_add_shared("kernel:col2im", t_shift / p.T);
    if (xg_all)
        fg_conv_scratch_release(scratch, xg_all);
    fg_conv_scratch_release(scratch, z_all);
    fg_conv_scratch_release(scratch, wr);
}

void fg_conv_narrow_backward_input(int N, int Ci, int H, int W, int Co, int k,
                                   const float *dy, const float *w, float *dx,
                                   fg_arena *scratch)
{
    const narrow_plan p = plan(N, Ci, H, W, Co, k);
    float *wr = fg_conv_scratch_get(scratch, (size_t)p.R * Ci);
    float *col_all = fg_conv_scratch_get(scratch, (size_t)p.T * p.R * p.cols);
    float *out_all = p.G > 1 ? fg_conv_scratch_get(scratch, (size_t)p.T * Ci * p.cols) : NULL;
    fg_conv_flip_weights(Co, Ci, p.kk, w, wr);
    double t_cols = 0.0;
    const int timed = fg_profile_enabled();
    #pragma omp parallel for num_threads(p.T) if (p.T > 1) schedule(static) reduction(+:t_cols)
    for (int gi = 0; gi < p.n_groups; gi++) {
        const int t = omp_get_thread_num();
        int n0;
        const int g = group_count(&p, gi, &n0);
        const size_t ld = (size_t)g * p.P;
        float *col = col_all + (size_t)t * p.R * p.cols;
        double t0 = timed ? fg_profile_now() : 0.0;
        dy_columns(&p, dy, n0, g, col);
        if (timed) t_cols += fg_profile_now() - t0;
        float *dxg = dx + (size_t)n0 * Ci * p.P;
        if (p.G == 1) {
            fg_gemm(1, 0, Ci, (int)ld, p.R, 1.0f, wr, Ci, col, (int)ld, 1.0f, dxg, (int)ld);
        } else {
            float *out = out_all + (size_t)t * Ci * p.cols;
            fg_gemm(1, 0, Ci, (int)ld, p.R, 1.0f, wr, Ci, col, (int)ld, 0.0f, out, (int)ld);
            fg_conv_scatter_columns(g, Ci, p.P, out, dxg, 1);
        }
    }
    if (timed) fg_profile_add_shared("kernel:im2col", t_cols / p.T);
    if (out_all)
        fg_conv_scratch_release(scratch, out_all);
    fg_conv_scratch_release(scratch, col_all);
    fg_conv_scratch_release(scratch, wr);
}

void fg_conv_narrow_backward_weight(int N, int Ci, int H, int W, int Co, int k,
                                    const float *dy, const float *x, float *dw,
                                    fg_arena *scratch)
{
    const narrow_plan p = plan(N, Ci, H, W, Co, k);
    const size_t acc_n = (size_t)Ci * p.R;
    float *col_all = fg_conv_scratch_get(scratch, (size_t)p.T * p.R * p.cols);
    float *xg_all = p.G > 1 ? fg_conv_scratch_get(scratch, (size_t)p.T * Ci * p.cols) : NULL;
    /* Every thread sums into its own zeroed (Ci, Co k k) matrix; they are
     * added in thread order, so results repeat for a given thread count. */
    float *acc = fg_conv_scratch_get(scratch, (size_t)p.T * acc_n);
    memset(acc, 0, (size_t)p.T * acc_n * sizeof(float));
    double t_cols = 0.0;
    const int timed = fg_profile_enabled();
    #pragma omp parallel for num_threads(p.T) if (p.T > 1) schedule(static) reduction(+:t_cols)
    for (int gi = 0; gi < p.n_groups; gi++) {
        const int t = omp_get_thread_num();
        int n0;
        const int g = group_count(&p, gi, &n0);
        const size_t ld = (size_t)g * p.P;
        float *col = col_all + (size_t)t * p.R * p.cols;
        double t0 = timed ? fg_profile_now() : 0.0;
        dy_columns(&p, dy, n0, g, col);
        if (timed) t_cols += fg_profile_now() - t0;
        const float *a = group_input(&p, x, n0, g, xg_all ? xg_all + (size_t)t * Ci * p.cols : NULL);
        fg_gemm(0, 1, Ci, p.R, (int)ld, 1.0f, a, (int)ld, col, (int)ld, 1.0f,
                acc + (size_t)t * acc_n, p.R);
    }
    if (timed) fg_profile_add_shared("kernel:im2col", t_cols / p.T);
    for (int t = 1; t < p.T; t++)
        fg_k_add(acc_n, acc, acc + (size_t)t * acc_n, acc);
    fg_conv_unflip_add(Co, Ci, p.kk, acc, dw);
    fg_conv_scratch_release(scratch, acc);
    if (xg_all)
        fg_conv_scratch_release(scratch, xg_all);
    fg_conv_scratch_release(scratch, col_all);
}
