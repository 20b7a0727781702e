/* A convolution of an input that is the same at every pixel of an image:
 * a condition vector repeated over the grid, as a conditional flow's
 * coupling network reads it beside the image. Written out as channels and
 * convolved, the vector costs as much as an image of as many channels (a
 * one-hot label of 10 classes is 90 more rows of the first convolution's
 * columns, five times the 18 of the image's own two channels). Its
 * convolution has a closed form: at each pixel, the sum of the taps that
 * land inside the image (zero padding drops the others), each tap's
 * weights already multiplied by the vector. Which taps land inside depends
 * on the pixel only, so the sum is a product with a fixed 0/1 matrix of k k
 * rows, one GEMM of inner dimension k k per image; its adjoint, the
 * gradient's sum per tap, is the product with that matrix's transpose. */
#include "tensor/conv_internal.h"

void fg_conv_constant_mask(int H, int W, int k, float *mask)
{
    const int h = k / 2;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            float *row = mask + ((size_t)a * k + b) * H * W;
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    const int si = i + a - h, sj = j + b - h;
                    row[(size_t)i * W + j] = si >= 0 && si < H && sj >= 0 && sj < W;
                }
        }
}

void fg_conv_constant_add(int N, int H, int W, int Co, int k, const float *v, const float *mask,
                          float *y)
{
    const int kk = k * k, P = H * W;
    for (int n = 0; n < N; n++)
        fg_gemm(0, 0, Co, P, kk, 1.0f, v + (size_t)n * Co * kk, kk, mask, P, 1.0f,
                y + (size_t)n * P, (long)N * P);
}

void fg_conv_constant_tap_sums(int N, int H, int W, int Co, int k, const float *dy,
                               const float *mask, float *s)
{
    const int kk = k * k, P = H * W;
    for (int n = 0; n < N; n++)
        fg_gemm(0, 1, Co, kk, P, 1.0f, dy + (size_t)n * P, (long)N * P, mask, P, 0.0f,
                s + (size_t)n * Co * kk, kk);
}
