/* AVX-512 product with both operands packed, in the 12 x 32 tiles of the
 * products that read B in place (tile_12x32_avx512.h), for what those
 * cannot take: a long K, or a B stored along K (a weight gradient
 * dY X^T). BLIS packs for its 14 x 16 tile only, and has no packing
 * kernel for panels of 32 columns.
 *
 * The blocking is BLIS's, with the loops around the tile that suit it:
 * K in blocks of kc, and within each, columns in blocks of nc whose
 * packed B (kc x nc, about 1 MiB) stays in L2 while every row panel of A
 * (12 x kc, in L1) goes along it. Each block of K adds its part to C;
 * the epilogue is applied with the last. Threads share the packed
 * operands: each packs a part of A and of B, and after a barrier runs its
 * own rows of C, or its own columns when there are few rows.
 *
 * In products that BLIS ran before, on one thread of the Sapphire Rapids
 * VM: 2048^3 from 0.82 to 1.00-1.03 of OpenBLAS, dW 256x256x12544 from
 * 0.87 to 0.97-1.03 (BENCHMARKS.md, "A packed 12 x 32 product"). */
#include "tensor/kernels/tile_12x32_avx512.h"

#include <omp.h>

enum { MR = FG_TILE_MR, NR = FG_TILE_NR, HALF = FG_TILE_HALF };

/* Panels [p0, p1) of kc x cols of op(B) (element (k, j) at B[k rs_b + j
 * cs_b]) as panels of 32 columns: panel p at pb + p kc 32, element (k, j)
 * at [k 32 + j]. A row-stored B is copied row by row, each row one long
 * run that the prefetchers follow; going panel by panel would read 32
 * columns from each of kc rows, kc short runs far apart. Other strides go
 * through the 16-wide packing kernel, which transposes. A panel's second
 * half past the last column is left unwritten: its tiles do not read it. */
static FG_TILE_AVX512 void pack_b(int p0, int p1, int kc, int cols, const float *B, long rs_b,
                                  long cs_b, float *pb)
{
    if (p1 <= p0)
        return;
    if (cs_b == 1) {
        const int j0 = p0 * NR, j1 = p1 * NR < cols ? p1 * NR : cols;
        for (int k = 0; k < kc; k++) {
            const float *row = B + (long)k * rs_b;
            float *dst = pb + (long)k * NR;
            int j = j0;
            for (; j + HALF <= j1; j += HALF)
                _mm512_storeu_ps(dst + (long)(j / NR) * kc * NR + j % NR,
                                 _mm512_loadu_ps(row + j));
            if (j < j1) {
                const __mmask16 m = fg_lanes_mask16(j1 - j);
                _mm512_storeu_ps(dst + (long)(j / NR) * kc * NR + j % NR,
                                 _mm512_maskz_loadu_ps(m, row + j));
            }
        }
        return;
    }
    float one = 1.0f;
    for (int p = p0; p < p1; p++) {
        const int j = p * NR, w = cols - j;
        const float *b = B + (long)j * cs_b;
        float *dst = pb + (long)p * kc * NR;
        fg_spack_16_avx512(BLIS_NO_CONJUGATE, BLIS_PACKED_ROW_PANELS, w < HALF ? w : HALF, kc,
                           kc, &one, (float *)b, cs_b, rs_b, dst, NR, NULL);
        if (w > HALF)
            fg_spack_16_avx512(BLIS_NO_CONJUGATE, BLIS_PACKED_ROW_PANELS,
                               w - HALF < HALF ? w - HALF : HALF, kc, kc, &one,
                               (float *)b + (long)HALF * cs_b, cs_b, rs_b, dst + HALF, NR, NULL);
    }
}

/* The share [x0, x1) of n items that thread t of T takes. */
static void share(int n, int t, int T, int *x0, int *x1)
{
    *x0 = (int)((long)n * t / T);
    *x1 = (int)((long)n * (t + 1) / T);
}

/* Threads split C's rows when each gets several row panels, else its
 * columns (few rows against a long K and many columns). */
enum { ROW_PANELS_PER_THREAD = 8 };

static FG_TILE_AVX512 void run(int t, int T, int block_kc, int block_nc, int M, int N, int K,
                               float alpha, const float *A, long rs_a, long cs_a,
                               const float *B, long rs_b, long cs_b, float beta, float *C,
                               long rs_c, float *pa, float *pb, const fg_row_affine *ep)
{
    const int row_panels = (M + MR - 1) / MR;
    const int split_rows = row_panels >= ROW_PANELS_PER_THREAD * T;
    /* Every thread packs a share of A's row panels, and computes either
     * those rows or (split by columns) all of them. */
    int r0, r1;
    share(row_panels, t, T, &r0, &r1);
    const int a0 = r0 * MR, a1 = r1 * MR < M ? r1 * MR : M;
    const int i0 = split_rows ? a0 : 0, i1 = split_rows ? a1 : M;
    for (int pc = 0; pc < K; pc += block_kc) {
        const int kc = K - pc < block_kc ? K - pc : block_kc;
        const float beta_p = pc == 0 ? beta : 1.0f;
        const fg_row_affine *ep_p = pc + kc == K ? ep : NULL;
        if (T > 1) {
            /* every tile of the previous block is done with pa and pb */
            #pragma omp barrier
        }
        if (a1 > a0)
            fg_sgemm_unpacked_avx512_pack(a1 - a0, kc, A + (long)a0 * rs_a + (long)pc * cs_a,
                                          rs_a, cs_a, pa + (long)a0 * kc);
        for (int jc = 0; jc < N; jc += block_nc) {
            const int nc = N - jc < block_nc ? N - jc : block_nc;
            int p0, p1;
            share((nc + NR - 1) / NR, t, T, &p0, &p1);
            if (T > 1 && jc > 0) {
                #pragma omp barrier
            }
            pack_b(p0, p1, kc, nc, B + (long)pc * rs_b + (long)jc * cs_b, rs_b, cs_b, pb);
            if (T > 1) {
                #pragma omp barrier
            }
            if (split_rows)
                fg_tile_rows(i0, i1, jc, jc + nc, kc, alpha, pa, pb, NR, (long)kc * NR, beta_p,
                             C, rs_c, ep_p);
            else if (p1 > p0)
                fg_tile_rows(0, M, jc + p0 * NR, jc + (p1 * NR < nc ? p1 * NR : nc), kc, alpha,
                             pa, pb + (long)p0 * kc * NR, NR, (long)kc * NR, beta_p, C, rs_c,
                             ep_p);
        }
    }
}

void fg_sgemm_packed_avx512(const fg_packed_blocks *blocks, int M, int N, int K, float alpha,
                            const float *A, long rs_a, long cs_a, const float *B, long rs_b,
                            long cs_b, float beta, float *C, long rs_c, int threads, float *pa,
                            float *pb, const fg_row_affine *ep)
{
    const int kc = blocks->kc, nc = blocks->nc;
    const int row_panels = (M + MR - 1) / MR, col_panels = ((N < nc ? N : nc) + NR - 1) / NR;
    if (threads > row_panels && threads > col_panels)
        threads = row_panels > col_panels ? row_panels : col_panels;
    if (threads <= 1) {
        run(0, 1, kc, nc, M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, pa, pb,
            ep);
        return;
    }
    #pragma omp parallel num_threads(threads)
    run(omp_get_thread_num(), omp_get_num_threads(), kc, nc, M, N, K, alpha, A, rs_a, cs_a, B,
        rs_b, cs_b, beta, C, rs_c, pa, pb, ep);
}
