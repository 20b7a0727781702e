/* 1x1 convolutions between few channels (Glow's invertible 1x1 convolution
 * on 4 to 48 channels) as direct loops over the pixels of each sample.
 * A GEMM of 4 x 196 x 4 per sample is all call, packing and edge handling:
 * BLIS's fixed cost dwarfs 3,000 multiply-adds. Here each output plane is
 * a sum of Ci scaled input planes, vectorized over the pixels, and samples
 * split between threads. */
#include "tensor/conv_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

int fg_conv_pointwise_applies(int Ci, int Co, int k)
{
    return k == 1 && Ci * Co <= 64 * 64;
}

void fg_conv_pointwise_forward(int N, int Ci, int P, int Co, const float *x, const float *w,
                               const float *bias, float *y)
{
    #pragma omp parallel for if ((size_t)N * (Ci + Co) * P > FG_PARALLEL_THRESHOLD) schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * Ci * P;
        for (int o = 0; o < Co; o++) {
            float *restrict yo = y + ((size_t)n * Co + o) * P;
            const float b = bias ? bias[o] : 0.0f;
            for (int p = 0; p < P; p++)
                yo[p] = b;
            for (int c = 0; c < Ci; c++) {
                const float wc = w[(size_t)o * Ci + c];
                const float *restrict xc = xn + (size_t)c * P;
                #pragma omp simd
                for (int p = 0; p < P; p++)
                    yo[p] += wc * xc[p];
            }
        }
    }
}

void fg_conv_pointwise_backward_input(int N, int Ci, int P, int Co, const float *dy,
                                      const float *w, float *dx)
{
    #pragma omp parallel for if ((size_t)N * (Ci + Co) * P > FG_PARALLEL_THRESHOLD) schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < Ci; c++) {
            float *restrict dxc = dx + ((size_t)n * Ci + c) * P;
            for (int o = 0; o < Co; o++) {
                const float wc = w[(size_t)o * Ci + c];
                const float *restrict d = dy + ((size_t)n * Co + o) * P;
                #pragma omp simd
                for (int p = 0; p < P; p++)
                    dxc[p] += wc * d[p];
            }
        }
}

/* dw[o][c] += sum over samples and pixels of dy[n][o] x[n][c]: each thread
 * sums its samples in double, and the threads' sums are added in thread
 * order, so results repeat for a given thread count. */
void fg_conv_pointwise_backward_weight(int N, int Ci, int P, int Co, const float *dy,
                                       const float *x, float *dw)
{
    const size_t nw = (size_t)Co * Ci;
    int T = fg_get_threads();
    if ((size_t)N * (Ci + Co) * P <= FG_PARALLEL_THRESHOLD || T > N)
        T = N < T ? N : 1;
    if (T < 1)
        T = 1;
    double *acc = fg_xcalloc((size_t)T * nw, sizeof(double), "1x1 convolution weight gradient");
    #pragma omp parallel num_threads(T) if (T > 1)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        double *a = acc + (size_t)t * nw;
        for (int n = t; n < N; n += nt)
            for (int o = 0; o < Co; o++) {
                const float *restrict d = dy + ((size_t)n * Co + o) * P;
                for (int c = 0; c < Ci; c++) {
                    const float *restrict xc = x + ((size_t)n * Ci + c) * P;
                    float s = 0.0f;   /* one plane in float, planes summed in double */
                    #pragma omp simd reduction(+:s)
                    for (int p = 0; p < P; p++)
                        s += d[p] * xc[p];
                    a[(size_t)o * Ci + c] += s;
                }
            }
    }
    for (size_t i = 0; i < nw; i++) {
        double s = 0.0;
        for (int t = 0; t < T; t++)
            s += acc[(size_t)t * nw + i];
        dw[i] += (float)s;
    }
    free(acc);
}
