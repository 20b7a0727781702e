/* AVX2 + FMA sgemm: a 6 x 16 microkernel (12 ymm accumulators, two ymm of B
 * per k, A broadcast from memory) and packing kernels that scale by kappa. */
#include "tensor/kernels/sgemm_kernels.h"
#include "tensor/kernels/lanes_avx2.h"
#include "tensor/kernels/transpose8.h"

#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

enum { MR = FG_AVX2_MR, NR = FG_AVX2_NR };

static inline AVX2 __attribute__((always_inline))
void pack(int width, dim_t cdim, dim_t n, dim_t n_max, float kappa,
          const float *a, inc_t inca, inc_t lda, float *p, inc_t ldp)
{
    const __m256 kv = _mm256_set1_ps(kappa);
    const int halves = width > 8 ? 2 : 1;
    /* Stores never touch the next micropanel: another thread may pack it. */
    const __m256i wmask0 = fg_lanes_below(width, 0), wmask1 = fg_lanes_below(width, 8);
    if (inca == 1) {
        const __m256i cmask0 = fg_lanes_below(cdim, 0), cmask1 = fg_lanes_below(cdim, 8);
        for (dim_t l = 0; l < n; l++) {
            const float *al = a + l * lda;
            float *pl = p + l * ldp;
            __m256 v0 = _mm256_maskload_ps(al, cmask0);
            _mm256_maskstore_ps(pl, wmask0, _mm256_mul_ps(v0, kv));
            if (halves == 2) {
                __m256 v1 = _mm256_maskload_ps(al + 8, cmask1);
                _mm256_maskstore_ps(pl + 8, wmask1, _mm256_mul_ps(v1, kv));
            }
        }
    } else if (lda == 1) {
        dim_t l = 0;
        for (; l + 8 <= n; l += 8) {
            for (int h = 0; h < halves; h++) {
                __m256 r[8];
                fg_load_transpose8(a, inca, l, 8 * h, cdim, r);
                const __m256i wm = h ? wmask1 : wmask0;
                for (int j = 0; j < 8; j++)
                    _mm256_maskstore_ps(p + (l + j) * ldp + 8 * h, wm,
                                        _mm256_mul_ps(r[j], kv));
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

AVX2 void fg_spack_6_avx2(FG_SPACK_ARGS)
{
    pack(MR, cdim, n, n_max, *kappa, a, inca, lda, p, ldp);
}

AVX2 void fg_spack_16_avx2(FG_SPACK_ARGS)
{
    pack(NR, cdim, n, n_max, *kappa, a, inca, lda, p, ldp);
}

#define FMA_ROW(i, u)                                                        \
    do {                                                                     \
        __m256 av = _mm256_broadcast_ss(pa + (u) * MR + (i));                \
        c##i##0 = _mm256_fmadd_ps(av, b0, c##i##0);                          \
        c##i##1 = _mm256_fmadd_ps(av, b1, c##i##1);                          \
    } while (0)
#define STEP(u)                                                              \
    do {                                                                     \
        __m256 b0 = _mm256_loadu_ps(pb + (u) * NR);                          \
        __m256 b1 = _mm256_loadu_ps(pb + (u) * NR + 8);                      \
        FMA_ROW(0, u); FMA_ROW(1, u); FMA_ROW(2, u);                         \
        FMA_ROW(3, u); FMA_ROW(4, u); FMA_ROW(5, u);                         \
    } while (0)
#define FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

AVX2 void fg_sgemm_ukr_avx2(FG_SGEMM_UKR_ARGS)
{
#define ZERO(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();
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

    const __m256 alphav = _mm256_set1_ps(*alpha);
    const float beta_s = *beta;
    if (cs_c == 1) {
        const __m256i m0 = fg_lanes_below(n, 0), m1 = fg_lanes_below(n, 8);
        const __m256 betav = _mm256_set1_ps(beta_s);
        if (beta_s == 0.0f) {
#define STORE0(i)                                                            \
    if ((i) < m) {                                                           \
        float *cr = c + (i) * rs_c;                                          \
        _mm256_maskstore_ps(cr, m0, _mm256_mul_ps(c##i##0, alphav));         \
        _mm256_maskstore_ps(cr + 8, m1, _mm256_mul_ps(c##i##1, alphav));     \
    }
            FOR_ROWS(STORE0)
#undef STORE0
        } else {
#define STOREB(i)                                                            \
    if ((i) < m) {                                                           \
        float *cr = c + (i) * rs_c;                                          \
        __m256 o0 = _mm256_maskload_ps(cr, m0);                              \
        __m256 o1 = _mm256_maskload_ps(cr + 8, m1);                          \
        _mm256_maskstore_ps(cr, m0,                                          \
            _mm256_fmadd_ps(o0, betav, _mm256_mul_ps(c##i##0, alphav)));     \
        _mm256_maskstore_ps(cr + 8, m1,                                      \
            _mm256_fmadd_ps(o1, betav, _mm256_mul_ps(c##i##1, alphav)));     \
    }
            FOR_ROWS(STOREB)
#undef STOREB
        }
    } else {
        float t[MR * NR];
#define SPILL(i)                                                             \
    _mm256_storeu_ps(t + (i) * NR, c##i##0);                                 \
    _mm256_storeu_ps(t + (i) * NR + 8, c##i##1);
        FOR_ROWS(SPILL)
#undef SPILL
        fg_sgemm_store_tile(m, n, *alpha, t, NR, beta_s, c, rs_c, cs_c);
    }
}
