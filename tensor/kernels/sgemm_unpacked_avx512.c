/* AVX-512 product without packing, for a coupling network's products on a
 * chunk of images: B (the chunk's columns or its output gradient) is read
 * where it lies, in strips of 16 columns, and op(A) (the weights, any
 * strides) is broadcast one value at a time. Packed, each such product
 * first copies all of B; on the Glow steps that copy took a sixth of the
 * time, as much as the products' own arithmetic saves by packing.
 *
 * Each tile (12 rows x 32 columns of C) runs its whole K and writes its
 * part of C once: no buffer is needed. The tiles go row by row through a
 * block of columns whose part of B stays in L2, so that C is written in
 * long runs along its rows. Going strip by strip instead (each strip of B
 * in L1, the 14-row tiles down it) writes one line in each of C's rows at a
 * time: 256 streams, too many for the prefetchers, and each store waits
 * for its line to come from memory. On Glow's first convolution (K = 18)
 * that made the product 3x slower than its arithmetic allows (BENCHMARKS.md,
 * "C written along its rows"). */
#include "tensor/kernels/tile_12x32_avx512.h"

enum { MR = FG_TILE_MR, NR = FG_TILE_NR };

/* op(A) (M x K, element (i, k) at A[i rs_a + k cs_a]) as panels of MR
 * rows: panel p holds rows p MR .. p MR + 11 at pa[p MR K + k MR + r], with
 * zeros past M: the panels BLIS's packing makes, copied by the same
 * vector packing kernel (sgemm_avx512.c, 8 x 8 transposes for row-stored
 * A) rather than one value at a time. */
void fg_sgemm_unpacked_avx512_pack(int M, int K, const float *A, long rs_a, long cs_a,
                                   float *pa)
{
    float one = 1.0f;
    for (int i0 = 0; i0 < M; i0 += MR, pa += (long)MR * K)
        fg_spack_12_avx512(BLIS_NO_CONJUGATE, BLIS_PACKED_ROW_PANELS, M - i0 < MR ? M - i0 : MR,
                           K, K, &one, (float *)A + (long)i0 * rs_a, rs_a, cs_a, pa, MR,
                           NULL);
}

/* A block of columns holds at most this many floats of B (512 KiB): half of
 * the smallest L2 among the AVX-512 cores we run on (1 MiB), so that B stays
 * there while A's panels and C's rows pass through. */
#define BLOCK_B_FLOATS (1L << 17)

FG_TILE_AVX512 void fg_sgemm_unpacked_avx512(int M, int K, float alpha, const float *A,
                                             long rs_a, long cs_a, const float *B, long rs_b,
                                             float beta, float *C, long rs_c, int j0, int j1,
                                             float *packed_a, int a_is_packed,
                                             const fg_row_affine *ep)
{
    if (!a_is_packed)
        fg_sgemm_unpacked_avx512_pack(M, K, A, rs_a, cs_a, packed_a);
    long width = BLOCK_B_FLOATS / (K > 0 ? K : 1) / NR * NR;
    if (width < NR)
        width = NR;
    for (int b0 = j0; b0 < j1; b0 += (int)width) {
        const int b1 = j1 - b0 > width ? b0 + (int)width : j1;
        fg_tile_rows(0, M, b0, b1, K, alpha, packed_a, B + b0, rs_b, NR, beta, C, rs_c, ep);
    }
}
