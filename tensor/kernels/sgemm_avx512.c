/* AVX-512 sgemm: a 14 x 16 microkernel (14 zmm accumulators, one zmm of B
 * per k, A broadcast from memory) and packing kernels that scale by kappa. */
#include "tensor/kernels/sgemm_kernels.h"
#include "tensor/kernels/transpose8.h"

#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))

enum { MR = FG_AVX512_MR, NR = FG_AVX512_NR };

/* A row-stored panel is read as cdim rows side by side, each a short run
 * when K comes in blocks: the prefetchers do not keep up with that many
 * streams. Asking for each row's line two lines ahead made the packing of
 * dW 256x256x12544 fast enough for the product to go from 0.95-0.99 to
 * 1.00-1.03 of OpenBLAS on one thread (distances of 16-48 floats alike, 64
 * and more worse; BENCHMARKS.md, "A packed 12 x 32 product"). */
enum { PACK_PREFETCH = 32 };

static inline AVX512 __attribute__((always_inline))
void pack(int width, dim_t cdim, dim_t n, dim_t n_max, float kappa,
          const float *a, inc_t inca, inc_t lda, float *p, inc_t ldp)
{
    const __mmask16 wmask = (__mmask16)((1u << width) - 1);
    const __m512 kv = _mm512_set1_ps(kappa);
    if (inca == 1) {
        /* Column-stored panel: each k is one masked vector copy. */
        const __mmask16 cmask = (__mmask16)((1u << cdim) - 1);
        for (dim_t l = 0; l < n; l++) {
            __m512 v = _mm512_maskz_loadu_ps(cmask, a + l * lda);
            _mm512_mask_storeu_ps(p + l * ldp, wmask, _mm512_mul_ps(v, kv));
        }
    } else if (lda == 1) {
        /* Row-stored panel: transpose 8 columns at a time. */
        dim_t l = 0;
        for (; l + 8 <= n; l += 8) {
            __m256 lo[8], hi[8];
            if ((l & 15) == 0) /* once per line */
                for (dim_t i = 0; i < cdim; i++)
                    _mm_prefetch((const char *)(a + i * inca + l + PACK_PREFETCH), _MM_HINT_T0);
            fg_load_transpose8(a, inca, l, 0, cdim, lo);
            if (cdim > 8)
                fg_load_transpose8(a, inca, l, 8, cdim, hi);
            else
                for (int j = 0; j < 8; j++)
                    hi[j] = _mm256_setzero_ps();
            for (int j = 0; j < 8; j++) {
                __m512 v = _mm512_insertf32x8(_mm512_castps256_ps512(lo[j]), hi[j], 1);
                _mm512_mask_storeu_ps(p + (l + j) * ldp, wmask, _mm512_mul_ps(v, kv));
            }
        }
        if (l < n)
            fg_spack_generic(width, cdim, n - l, n - l, kappa, a + l, inca, 1,
                             p + l * ldp, ldp);
    } else {
        fg_spack_generic(width, cdim, n, n, kappa, a, inca, lda, p, ldp);
    }
    fg_spack_zero_tail(width, n, n_max, p, ldp);
}

AVX512 void fg_spack_14_avx512(FG_SPACK_ARGS)
{
    pack(MR, cdim, n, n_max, *kappa, a, inca, lda, p, ldp);
}

AVX512 void fg_spack_12_avx512(FG_SPACK_ARGS)
{
    pack(FG_AVX512_UNPACKED_MR, cdim, n, n_max, *kappa, a, inca, lda, p, ldp);
}

AVX512 void fg_spack_16_avx512(FG_SPACK_ARGS)
{
    pack(NR, cdim, n, n_max, *kappa, a, inca, lda, p, ldp);
}

/* Rows beyond 'rows' are neither loaded nor computed: an m = 4 edge tile (or
 * a whole M = 4 product) costs 4 rows of FMAs, not 14. */
#define FMA_ROW(i, u)                                                        \
    if ((i) < rows)                                                          \
        c##i = _mm512_fmadd_ps(_mm512_set1_ps(pa[(u) * MR + (i)]), bv, c##i)
#define STEP(u)                                                              \
    do {                                                                     \
        __m512 bv = _mm512_loadu_ps(pb + (u) * NR);                          \
        FMA_ROW(0, u); FMA_ROW(1, u); FMA_ROW(2, u); FMA_ROW(3, u);          \
        FMA_ROW(4, u); FMA_ROW(5, u); FMA_ROW(6, u); FMA_ROW(7, u);          \
        FMA_ROW(8, u); FMA_ROW(9, u); FMA_ROW(10, u); FMA_ROW(11, u);        \
        FMA_ROW(12, u); FMA_ROW(13, u);                                      \
    } while (0)
#define FOR_ROWS(X) \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)

static inline AVX512 __attribute__((always_inline))
void kernel(const int rows, FG_SGEMM_UKR_ARGS)
{
#define ZERO(i) __m512 c##i = _mm512_setzero_ps();
    FOR_ROWS(ZERO)
#undef ZERO
    const float *pa = a, *pb = b;

    if (cs_c == 1)
        for (dim_t i = 0; i < m; i++) {
            _mm_prefetch((const char *)(c + i * rs_c), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * rs_c + NR - 1), _MM_HINT_T0);
        }

    dim_t l = 0;
    for (; l + 4 <= k; l += 4) {
        STEP(0); STEP(1); STEP(2); STEP(3);
        pa += 4 * MR;
        pb += 4 * NR;
    }
    for (; l < k; l++) {
        STEP(0);
        pa += MR;
        pb += NR;
    }

    const __m512 alphav = _mm512_set1_ps(*alpha);
    const float beta_s = *beta;
    if (cs_c == 1) {
        const __mmask16 nmask = n >= NR ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
        const __m512 betav = _mm512_set1_ps(beta_s);
        if (beta_s == 0.0f) {
#define STORE0(i)                                                            \
    if ((i) < m) {                                                           \
        _mm512_mask_storeu_ps(c + (i) * rs_c, nmask, _mm512_mul_ps(c##i, alphav)); \
    }
            FOR_ROWS(STORE0)
#undef STORE0
        } else {
#define STOREB(i)                                                            \
    if ((i) < m) {                                                           \
        float *cr = c + (i) * rs_c;                                          \
        __m512 old = _mm512_maskz_loadu_ps(nmask, cr);                       \
        __m512 v = _mm512_fmadd_ps(old, betav, _mm512_mul_ps(c##i, alphav)); \
        _mm512_mask_storeu_ps(cr, nmask, v);                                 \
    }
            FOR_ROWS(STOREB)
#undef STOREB
        }
    } else {
        float t[MR * NR];
#define SPILL(i) _mm512_storeu_ps(t + (i) * NR, c##i);
        FOR_ROWS(SPILL)
#undef SPILL
        fg_sgemm_store_tile(m, n, *alpha, t, NR, beta_s, c, rs_c, cs_c);
    }
}

AVX512 void fg_sgemm_ukr_avx512(FG_SGEMM_UKR_ARGS)
{
#define CALL(rows) kernel(rows, m, n, k, alpha, a, b, beta, c, rs_c, cs_c, aux, cntx)
    if (m <= 4)
        CALL(4);
    else if (m <= 8)
        CALL(8);
    else
        CALL(MR);
#undef CALL
}

/* The same tile seen transposed: a 16 x 14 kernel whose columns of C are
 * vectors. A context with this kernel (it prefers column-stored C) makes
 * BLIS compute C^T, which puts a small N where the row dispatch above
 * trims the work. */
AVX512 void fg_sgemm_ukr_avx512_t(FG_SGEMM_UKR_ARGS)
{
    fg_sgemm_ukr_avx512(n, m, k, alpha, b, a, beta, c, cs_c, rs_c, aux, cntx);
}
