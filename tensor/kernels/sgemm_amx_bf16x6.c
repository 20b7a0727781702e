/* An fp32 product on the AMX tile units of Intel Xeons (Sapphire Rapids
 * and later), which multiply only bfloat16. Each fp32 operand is split
 * into three bfloat16 pieces whose sum is exactly the value (8 significant
 * bits each, 24 in all), and six of the nine piece products are summed in
 * the units' fp32 accumulators: a0 b0 + a0 b1 + a1 b0 + a0 b2 + a1 b1 +
 * a2 b0. The three left out are below 2^-21 of |a b|, under the rounding
 * of a K-long fp32 sum, so the result is as accurate as an fp32 product,
 * but not the same bits (the six-product scheme of Henry, Tang and
 * Heinecke, "Leveraging the bfloat16 artificial intelligence datatype for
 * higher-precision computations", 2019).
 *
 * One tile product (16 x 32 by 32 x 16) is 8192 multiply-adds, and a
 * Sapphire Rapids core runs 2.3-2.9 TFLOP/s of them in a loop against
 * 0.21 of fp32 FMAs: six products per fp32 one, with the splitting and
 * packing, still make a wide layer's products 1.25-1.45x as fast as
 * our fp32 tiles (BENCHMARKS.md, "fp32 products on AMX").
 *
 * What differs from fp32 beyond rounding: the units treat bfloat16
 * subnormals as zero, so values below about 2^-110 in magnitude lose
 * their last piece and fp32 subnormals are lost, and an infinite operand
 * gives NaN (inf - inf in the split). */
#include "tensor/kernels/sgemm_kernels.h"

#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tensor/kernels/lanes_avx512.h"
#include "tensor/kernels/row_affine_avx512.h"
#include "tensor/kernels/transpose8.h"

#define AMX_TARGET                                                                         \
    __attribute__((target("amx-tile,amx-bf16,avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define AMX_INLINE static inline __attribute__((always_inline))

enum { TILE_ROWS = 16, TILE_K = 32, BLOCK = 32, PIECES = 3 };

/* Linux grants a process the AMX tile data state on request. */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static int amx_usable;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_probe(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return;
    const int amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1;
    __builtin_cpu_init();
    if (!amx_bf16 || !amx_tile || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq"))
        return;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        return;
    amx_usable = 1;
}

int fg_amx_bf16_usable(void)
{
    pthread_once(&amx_once, amx_probe);
    return amx_usable;
}

static int round_up(int x, int m)
{
    return (x + m - 1) / m * m;
}

/* Each operand is stored as its tiles, each 16 rows of 64 bytes in one
 * contiguous KiB, which the tile loads read as one run. Before the
 * buffers were aligned (below), tiles read out of whole packed rows (a
 * stride of 512 bytes for A, 2 KiB for B) ran 256 x 784 x 256 at 95-110
 * GFLOP/s, this layout at 123-128. */
enum { TILE_HALVES = TILE_ROWS * TILE_K }; /* bfloat16 in a tile */

/* The pieces of an operand lie this far apart (in bfloat16). Their sizes
 * are multiples of 4 KiB, and the packing's stores to three places a
 * multiple of 4 KiB apart alias in the L1. 17 cache lines of padding,
 * on one thread, alternating: the input gradient of a 256-wide layer's
 * chunk (dX 256 x 784 x 256) from 184-186 to 195-199 GFLOP/s, its weight
 * gradient (256 x 256 x 784) from 152-164 to 169-172, the forward product
 * the same within noise. */
static size_t a_piece_halves(int Mp, int kcp)
{
    return (size_t)Mp * kcp + 17 * 32;
}

static size_t b_piece_halves(int kcp, int ncp)
{
    return (size_t)kcp * ncp + 17 * 32;
}

/* Tile rows on cache lines: in a buffer aligned to 16 bytes (malloc's)
 * each 64-byte row spans two lines: 256 x 784 x 256 ran at 123-128
 * GFLOP/s, aligned at 209-210. The buffers have 64 bytes to spare. */
static void *align64(void *p)
{
    return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* The pieces, and after them room for a row-major fp32 copy of a block
 * (an operand stored along the other dimension is transposed into it). */
size_t fg_sgemm_amx_a_bytes(int M, int K)
{
    const int kc = K < FG_AMX_KC ? K : FG_AMX_KC;
    return 64 + PIECES * 2 * a_piece_halves(round_up(M, TILE_ROWS), round_up(kc, TILE_K)) +
           (size_t)M * kc * sizeof(float);
}

size_t fg_sgemm_amx_b_bytes(int N, int K)
{
    const int kc = K < FG_AMX_KC ? K : FG_AMX_KC, nc = N < FG_AMX_NC ? N : FG_AMX_NC;
    return 64 + PIECES * 2 * b_piece_halves(round_up(kc, TILE_K), round_up(nc, TILE_ROWS)) +
           (size_t)kc * nc * sizeof(float);
}

/* dst (rows x cols, row stride ld) = the block whose element (r, c) lies
 * at src[r rs + c cs]. Where rs is 1 (a matrix stored along the other
 * dimension: a transposed weight, a weight gradient's input) 8 x 8
 * blocks are loaded along r and transposed in registers. */
static AMX_TARGET void copy_rows(int rows, int cols, const float *src, long rs, long cs,
                                 float *dst, long ld)
{
    int r0 = 0;
    if (rs == 1) {
        for (; r0 + 8 <= rows; r0 += 8) {
            int c0 = 0;
            for (; c0 + 8 <= cols; c0 += 8) {
                __m256 v[8];
                for (int j = 0; j < 8; j++)
                    v[j] = _mm256_loadu_ps(src + (long)(c0 + j) * cs + r0);
                fg_transpose8(v);
                for (int i = 0; i < 8; i++)
                    _mm256_storeu_ps(dst + (long)(r0 + i) * ld + c0, v[i]);
            }
            for (; c0 < cols; c0++)
                for (int i = 0; i < 8; i++)
                    dst[(long)(r0 + i) * ld + c0] = src[(long)c0 * cs + r0 + i];
        }
    }
    for (int r = r0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(long)r * ld + c] = src[(long)r * rs + (long)c * cs];
}

/* x as three fp32 values whose upper halves are its three bfloat16
 * pieces: x itself, r = x - p0 and s = r - p1, where p0 and p1 are x
 * and r cut to their upper halves. Each difference is exact in fp32, as
 * each piece is the leading bits of what is left, and s has at most 8
 * significant bits, all in its upper half. */
AMX_INLINE AMX_TARGET void split3(__m512 x, __m512i p[PIECES])
{
    const __m512i upper = _mm512_set1_epi32((int)0xFFFF0000u);
    const __m512 r = _mm512_sub_ps(x, _mm512_castsi512_ps(
                                          _mm512_and_si512(_mm512_castps_si512(x), upper)));
    const __m512 s = _mm512_sub_ps(r, _mm512_castsi512_ps(
                                          _mm512_and_si512(_mm512_castps_si512(r), upper)));
    p[0] = _mm512_castps_si512(x);
    p[1] = _mm512_castps_si512(r);
    p[2] = _mm512_castps_si512(s);
}

/* The upper halves of lo's 16 lanes then hi's: 32 bfloat16 in order. */
AMX_INLINE AMX_TARGET __m512i upper_halves(__m512i lo, __m512i hi)
{
    const __m512i odd = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37,
                                         35, 33, 31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9,
                                         7, 5, 3, 1);
    return _mm512_permutex2var_epi16(lo, odd, hi);
}

/* The upper halves of a's and b's lanes interleaved, a's below: 16 words,
 * each holding rows 2r and 2r + 1 of one column as the B tiles want. */
AMX_INLINE AMX_TARGET __m512i interleaved_upper_halves(__m512i a, __m512i b)
{
    const __m512i pairs = _mm512_set_epi16(63, 31, 61, 29, 59, 27, 57, 25, 55, 23, 53, 21, 51,
                                           19, 49, 17, 47, 15, 45, 13, 43, 11, 41, 9, 39, 7, 37,
                                           5, 35, 3, 33, 1);
    return _mm512_permutex2var_epi16(a, pairs, b);
}

/* Rows [0, M) and columns [0, kc) of A (row stride rs_a, unit column
 * stride) as PIECES sets of Mp / 16 x kcp / 32 tiles, rows and columns
 * past A's zero; the tile of rows 16 t and K step s at (t kcp / 32 + s) 512. */
static AMX_TARGET void pack_a(int M, int Mp, int kc, int kcp, const float *A, long rs_a,
                              uint16_t *pa)
{
    const size_t piece = a_piece_halves(Mp, kcp);
    const int steps = kcp / TILE_K;
    for (int i = 0; i < Mp; i++) {
        const float *row = A + (long)i * rs_a;
        uint16_t *dst = pa + ((size_t)(i / TILE_ROWS) * steps * TILE_ROWS + i % TILE_ROWS) * TILE_K;
        for (int k = 0; k < kcp; k += TILE_K) {
            const __m512 x0 = i < M ? _mm512_maskz_loadu_ps(fg_lanes_mask16(kc - k), row + k)
                                    : _mm512_setzero_ps();
            const __m512 x1 = i < M ? _mm512_maskz_loadu_ps(fg_lanes_mask16(kc - k - 16),
                                                            row + k + 16)
                                    : _mm512_setzero_ps();
            __m512i p0[PIECES], p1[PIECES];
            split3(x0, p0);
            split3(x1, p1);
            uint16_t *d = dst + (size_t)(k / TILE_K) * TILE_HALVES;
            for (int q = 0; q < PIECES; q++)
                _mm512_storeu_si512(d + q * piece, upper_halves(p0[q], p1[q]));
        }
    }
}

/* Rows [0, kc) and columns [0, nc) of B (row stride rs_b, unit column
 * stride) as PIECES sets of tiles in the B operand's layout: a tile row
 * holds two rows of B, 2r and 2r + 1, interleaved, each 32-bit word row
 * 2r + 1's piece above row 2r's; the tile of columns 16 t and K step s at
 * (t kcp / 32 + s) 512. Padding is zero. */
static AMX_TARGET void pack_b(int kc, int kcp, int nc, int ncp, const float *B, long rs_b,
                              uint16_t *pb)
{
    const size_t piece = b_piece_halves(kcp, ncp) / 2; /* in words */
    const int steps = kcp / TILE_K;
    for (int k = 0; k < kcp; k += 2) {
        const float *r0 = B + (long)k * rs_b, *r1 = r0 + rs_b;
        uint32_t *dst = (uint32_t *)pb + ((size_t)(k / TILE_K) * TILE_ROWS + (k % TILE_K) / 2) * 16;
        for (int j = 0; j < ncp; j += 16) {
            const __mmask16 m = fg_lanes_mask16(nc - j);
            const __m512 x0 = k < kc ? _mm512_maskz_loadu_ps(m, r0 + j) : _mm512_setzero_ps();
            const __m512 x1 = k + 1 < kc ? _mm512_maskz_loadu_ps(m, r1 + j)
                                         : _mm512_setzero_ps();
            __m512i p0[PIECES], p1[PIECES];
            split3(x0, p0);
            split3(x1, p1);
            uint32_t *d = dst + (size_t)(j / 16) * steps * TILE_HALVES / 2;
            for (int q = 0; q < PIECES; q++)
                _mm512_storeu_si512(d + q * piece, interleaved_upper_halves(p0[q], p1[q]));
        }
    }
}

/* One block of C, two row tiles by two column tiles (or fewer: rows2 and
 * cols2 say whether the second of each exists), summed over kcp into tile
 * registers 0-3 and stored to s (32 x 32, row stride 32). pa is the
 * block's first row tile in piece 0, pb its first column tile. */
AMX_INLINE AMX_TARGET void block(const int rows2, const int cols2, int kcp, size_t a_piece,
                                 size_t b_piece, const uint16_t *pa, const uint16_t *pb,
                                 float *s)
{
    const size_t next = (size_t)(kcp / TILE_K) * TILE_HALVES; /* the second tile */
    _tile_zero(0);
    if (cols2)
        _tile_zero(1);
    if (rows2)
        _tile_zero(2);
    if (rows2 && cols2)
        _tile_zero(3);
    for (int k = 0; k < kcp; k += TILE_K, pa += TILE_HALVES, pb += TILE_HALVES) {
        /* pieces p of A against q of B with p + q <= 2 */
        for (int p = 0; p < PIECES; p++) {
            const uint16_t *a = pa + p * a_piece;
            _tile_loadd(4, a, 64);
            if (rows2)
                _tile_loadd(5, a + next, 64);
            for (int q = 0; q + p < PIECES; q++) {
                const uint16_t *b = pb + q * b_piece;
                _tile_loadd(6, b, 64);
                if (cols2)
                    _tile_loadd(7, b + next, 64);
                _tile_dpbf16ps(0, 4, 6);
                if (cols2)
                    _tile_dpbf16ps(1, 4, 7);
                if (rows2) {
                    _tile_dpbf16ps(2, 5, 6);
                    if (cols2)
                        _tile_dpbf16ps(3, 5, 7);
                }
            }
        }
    }
    _tile_stored(0, s, BLOCK * 4);
    if (cols2)
        _tile_stored(1, s + TILE_ROWS, BLOCK * 4);
    if (rows2)
        _tile_stored(2, s + TILE_ROWS * BLOCK, BLOCK * 4);
    if (rows2 && cols2)
        _tile_stored(3, s + TILE_ROWS * BLOCK + TILE_ROWS, BLOCK * 4);
}

/* C's m x n block at c = ep(alpha s + beta C), by the rule of every
 * AVX-512 kernel's store (fg_store_row16). */
static AMX_TARGET void store(int m, int n, const float *s, float alpha, float beta, float *c,
                             long rs_c, const float *ep_bias, const float *ep_scale,
                             int ep_relu)
{
    const __m512 al = _mm512_set1_ps(alpha), be = _mm512_set1_ps(beta);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j += 16)
            fg_store_row16(c + (long)i * rs_c + j, fg_lanes_mask16(n - j),
                           _mm512_loadu_ps(s + i * BLOCK + j), al, beta, be, ep_bias, ep_scale,
                           ep_relu, i);
}

/* A block whose tiles are stored, to be written to C (m 0: none). */
typedef struct {
    int m, n;
    const float *s;
    float *c;
    float beta;
    const float *bias, *scale;
    int relu;
} pending_block;

static AMX_TARGET void store_pending(pending_block *p, float alpha, long rs_c)
{
    if (p->m > 0)
        store(p->m, p->n, p->s, alpha, p->beta, p->c, rs_c, p->bias, p->scale, p->relu);
    p->m = 0;
}

struct tile_config {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

AMX_TARGET void fg_sgemm_amx_bf16x6(int M, int K, float alpha, const float *A, long rs_a,
                                    long cs_a, const float *B, long rs_b, long cs_b,
                                    float beta, float *C, long rs_c, int j0, int j1,
                                    void *pa_buf, void *pb_buf, const fg_row_affine *ep)
{
    struct tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = TILE_ROWS;
    }
    _tile_loadconfig(&cfg);
    uint16_t *pa = align64(pa_buf), *pb = align64(pb_buf);
    const int Mp = round_up(M, TILE_ROWS), kc_max = K < FG_AMX_KC ? K : FG_AMX_KC;
    const int nc_max = j1 - j0 < FG_AMX_NC ? j1 - j0 : FG_AMX_NC;
    float *a_rows = (float *)(pa + PIECES * a_piece_halves(Mp, round_up(kc_max, TILE_K)));
    float *b_rows = (float *)(pb + PIECES * b_piece_halves(round_up(kc_max, TILE_K),
                                                           round_up(nc_max, TILE_ROWS)));
    /* Two results in turn: a block's tiles are stored to one while the
     * block before goes to C from the other, whose tile stores are long
     * done (128 x 784 x 128 ran 0-7 % faster than reading each block back
     * at once; 256 x 784 x 256 the same within noise). */
    float s[2][BLOCK * BLOCK] __attribute__((aligned(64)));
    pending_block prev = {0};
    for (int pc = 0; pc < K; pc += FG_AMX_KC) {
        const int kc = K - pc < FG_AMX_KC ? K - pc : FG_AMX_KC, kcp = round_up(kc, TILE_K);
        const float beta_p = pc == 0 ? beta : 1.0f;
        const fg_row_affine *ep_p = pc + kc == K ? ep : NULL;
        if (cs_a == 1) {
            pack_a(M, Mp, kc, kcp, A + (long)pc * cs_a, rs_a, pa);
        } else {
            copy_rows(M, kc, A + (long)pc * cs_a, rs_a, cs_a, a_rows, kc);
            pack_a(M, Mp, kc, kcp, a_rows, kc, pa);
        }
        const size_t a_piece = a_piece_halves(Mp, kcp);
        for (int jc = j0; jc < j1; jc += FG_AMX_NC) {
            const int nc = j1 - jc < FG_AMX_NC ? j1 - jc : FG_AMX_NC;
            const int ncp = round_up(nc, TILE_ROWS);
            const size_t b_piece = b_piece_halves(kcp, ncp);
            const float *b_block = B + (long)pc * rs_b + (long)jc * cs_b;
            if (cs_b == 1) {
                pack_b(kc, kcp, nc, ncp, b_block, rs_b, pb);
            } else {
                copy_rows(kc, nc, b_block, rs_b, cs_b, b_rows, nc);
                pack_b(kc, kcp, nc, ncp, b_rows, nc, pb);
            }
            /* column blocks outer: a block's B (kcp x 32 x 3 pieces, 48 KiB)
             * stays near while A's blocks pass along it */
            int which = 0;
            for (int jb = 0; jb < ncp; jb += BLOCK) {
                const int cols2 = ncp - jb >= BLOCK, n = nc - jb < BLOCK ? nc - jb : BLOCK;
                for (int ib = 0; ib < Mp; ib += BLOCK, which ^= 1) {
                    const int rows2 = Mp - ib >= BLOCK, m = M - ib < BLOCK ? M - ib : BLOCK;
                    const uint16_t *a = pa + (size_t)ib * kcp, *b = pb + (size_t)jb * kcp;
                    if (rows2 && cols2)
                        block(1, 1, kcp, a_piece, b_piece, a, b, s[which]);
                    else if (rows2)
                        block(1, 0, kcp, a_piece, b_piece, a, b, s[which]);
                    else if (cols2)
                        block(0, 1, kcp, a_piece, b_piece, a, b, s[which]);
                    else
                        block(0, 0, kcp, a_piece, b_piece, a, b, s[which]);
                    store_pending(&prev, alpha, rs_c);
                    prev = (pending_block){m, n, s[which], C + (long)ib * rs_c + jc + jb, beta_p,
                                           ep_p ? ep_p->bias + ib : NULL,
                                           ep_p ? ep_p->scale + ib : NULL,
                                           ep_p ? ep_p->relu : 0};
                }
            }
            /* before the next block of K adds to the same part of C */
            store_pending(&prev, alpha, rs_c);
        }
    }
    _tile_release();
}
