/* Space-to-depth by a factor 2 and its inverse. Output channel c*4 + i*2 + j
 * holds the pixels at row offset i and column offset j of input channel c,
 * the order of Glow's squeeze2d. */
#include "tensor/tensor.h"

static void check_even(const char *op, int N, int C, int H, int W)
{
    FG_CHECK(N >= 0 && C > 0 && H > 0 && W > 0 && H % 2 == 0 && W % 2 == 0, op,
             "input (%d, %d, %d, %d) needs even H and W", N, C, H, W);
}

void fg_k_squeeze2d(int N, int C, int H, int W, const float *x, float *y)
{
    check_even("squeeze2d", N, C, H, W);
    const int h2 = H / 2, w2 = W / 2;
    const size_t n = (size_t)N * C * H * W;
    #pragma omp parallel for collapse(2) if(n > FG_PARALLEL_THRESHOLD)
    for (int b = 0; b < N; b++)
        for (int c = 0; c < C; c++) {
            const float *xc = x + ((size_t)b * C + c) * H * W;
            float *yc = y + ((size_t)b * C + c) * H * W; /* 4 output channels */
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    float *yo = yc + (size_t)(i * 2 + j) * h2 * w2;
                    for (int h = 0; h < h2; h++)
                        for (int w = 0; w < w2; w++)
                            yo[h * w2 + w] = xc[(size_t)(2 * h + i) * W + 2 * w + j];
                }
        }
}

void fg_k_unsqueeze2d(int N, int C, int H, int W, const float *x, float *y)
{
    FG_CHECK(N >= 0 && C > 0 && C % 4 == 0 && H > 0 && W > 0, "unsqueeze2d",
             "input (%d, %d, %d, %d) needs channels divisible by 4", N, C, H, W);
    const int Co = C / 4, Wo = 2 * W;
    const size_t n = (size_t)N * C * H * W;
    #pragma omp parallel for collapse(2) if(n > FG_PARALLEL_THRESHOLD)
    for (int b = 0; b < N; b++)
        for (int c = 0; c < Co; c++) {
            const float *xc = x + ((size_t)b * Co + c) * 4 * H * W;
            float *yc = y + ((size_t)b * Co + c) * 4 * H * W;
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    const float *xi = xc + (size_t)(i * 2 + j) * H * W;
                    for (int h = 0; h < H; h++)
                        for (int w = 0; w < W; w++)
                            yc[(size_t)(2 * h + i) * Wo + 2 * w + j] = xi[h * W + w];
                }
        }
}
