/* fg_gemm_ex on every kernel path against a naive GEMM accumulated in
 * double: odd sizes, all transposes, the unpacked products, weight gradients as dot
 * products, alpha/beta (beta = 0 over NaN), row-,
 * column-major and general strides, BLIS threads 1 and 2, two
 * application threads sharing the contexts, the per-row epilogue of
 * fg_gemm_row_affine, and the products on AMX tile units where the CPU
 * has them. */
#include "check_main.h"
#include "tensor/tensor.h"
#include "tensor/gemm_internal.h"
#include "tensor/kernels/sgemm_kernels.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

enum { ROW_MAJOR, COL_MAJOR, GENERAL, NLAYOUTS };

/* Outside the matrix: must survive every call unchanged and never be read. */
static const float GUARD = 1234.5f;

typedef struct {
    int rows, cols;
    long rs, cs;
    size_t size;
    float *buf;
} mat;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t next_u32(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}
static float uniform(uint64_t *s) { return (float)(next_u32(s) / 4294967296.0) * 2.0f - 1.0f; }

/* Padding and interleaving make every layout's strides differ from the
 * packed ones, so a kernel that assumes contiguity fails. */
static mat mat_alloc(int rows, int cols, int layout)
{
    mat m = {rows, cols, 0, 0, 0, NULL};
    switch (layout) {
    case ROW_MAJOR: m.rs = cols + 3; m.cs = 1; break;
    case COL_MAJOR: m.rs = 1; m.cs = rows + 2; break;
    default: m.cs = 2; m.rs = 2L * cols + 5; break;
    }
    m.size = (size_t)((rows - 1) * m.rs + (cols - 1) * m.cs + 1);
    m.buf = malloc(m.size * sizeof(float));
    ck_assert_ptr_nonnull(m.buf);
    for (size_t i = 0; i < m.size; i++)
        m.buf[i] = GUARD;
    return m;
}

static float *at(const mat *m, int i, int j) { return m->buf + i * m->rs + j * m->cs; }

static void mat_fill(mat *m, uint64_t *s, int nan)
{
    for (int i = 0; i < m->rows; i++)
        for (int j = 0; j < m->cols; j++)
            *at(m, i, j) = nan ? NAN : uniform(s);
}

/* Element (i, j) of op(X) for X stored as m. */
static double op_el(const mat *m, int trans, int i, int j)
{
    return trans ? *at(m, j, i) : *at(m, i, j);
}

typedef struct {
    int ta, tb, M, N, K, la, lb, lc;
    float alpha, beta;
} gemm_case;

/* Runs one case and returns the number of wrong elements (0 on success). */
static int run_case(const gemm_case *g, uint64_t seed, char *why, size_t whylen, int *route)
{
    uint64_t s = seed;
    mat A = mat_alloc(g->ta ? g->K : g->M, g->ta ? g->M : g->K, g->la);
    mat B = mat_alloc(g->tb ? g->N : g->K, g->tb ? g->K : g->N, g->lb);
    mat C = mat_alloc(g->M, g->N, g->lc);
    mat_fill(&A, &s, 0);
    mat_fill(&B, &s, 0);
    mat_fill(&C, &s, g->beta == 0.0f);
    float *c0 = malloc(C.size * sizeof(float));
    memcpy(c0, C.buf, C.size * sizeof(float));

    fg_gemm_ex(g->ta, g->tb, g->M, g->N, g->K, g->alpha, A.buf, A.rs, A.cs,
               B.buf, B.rs, B.cs, g->beta, C.buf, C.rs, C.cs);
    *route = fg_gemm_route(g->ta, g->tb, g->M, g->N, g->K, A.rs, A.cs, B.rs, B.cs, C.rs, C.cs);

    int bad = 0;
    for (int i = 0; i < g->M; i++)
        for (int j = 0; j < g->N; j++) {
            double sum = 0, mag = 0;
            for (int k = 0; k < g->K; k++) {
                double p = op_el(&A, g->ta, i, k) * op_el(&B, g->tb, k, j);
                sum += p;
                mag += fabs(p);
            }
            double old = c0[(at(&C, i, j) - C.buf)];
            double cterm = g->beta == 0.0f ? 0.0 : g->beta * old;
            double ref = g->alpha * sum + cterm;
            double tol = 2.0 * (g->K + 2) * FLT_EPSILON *
                         (fabs(g->alpha) * mag + fabs(cterm)) + 1e-30;
            double got = *at(&C, i, j);
            if (!(fabs(got - ref) <= tol)) {
                if (bad++ == 0)
                    snprintf(why, whylen, "C[%d,%d] = %g, expected %g (tol %g)", i, j,
                             got, ref, tol);
            }
        }
    /* Nothing outside C may change. */
    char *inside = calloc(C.size, 1);
    for (int i = 0; i < g->M; i++)
        for (int j = 0; j < g->N; j++)
            inside[at(&C, i, j) - C.buf] = 1;
    for (size_t e = 0; e < C.size; e++)
        if (!inside[e] && C.buf[e] != GUARD) {
            if (bad++ == 0)
                snprintf(why, whylen, "element %zu outside C changed", e);
        }
    free(inside);
    free(A.buf);
    free(B.buf);
    free(C.buf);
    free(c0);
    return bad;
}

/* Returns the route fg_gemm_ex gave the case. */
static int check_case(const gemm_case *g, uint64_t seed)
{
    char why[160] = "";
    int route = -1;
    int bad = run_case(g, seed, why, sizeof why, &route);
    ck_assert_msg(bad == 0,
                  "path %s threads %d: ta=%d tb=%d M=%d N=%d K=%d layouts %d%d%d "
                  "alpha=%g beta=%g: %d wrong, first %s",
                  fg_gemm_path_name(fg_gemm_get_path()), fg_get_threads(), g->ta,
                  g->tb, g->M, g->N, g->K, g->la, g->lb, g->lc, g->alpha, g->beta,
                  bad, why);
    return route;
}

static const float alphas[] = {1.0f, -0.75f, 2.5f};
static const float betas[] = {0.0f, 1.0f, -0.5f};

/* Sizes around the register blocks of every path (4x8, 6x16, 14x16) and
 * other odd ones up to 100. */
static const int sizes[] = {1, 2, 3, 5, 7, 13, 15, 17, 29, 31, 33, 45, 63, 71, 97, 100};
enum { NSIZES = sizeof sizes / sizeof sizes[0] };

/* Every transpose, layout and scalar combination on two odd shapes, then a
 * random sample of sizes with random flags. */
static void sweep(uint64_t seed)
{
    uint64_t s = seed;
    const int shapes[2][3] = {{31, 45, 29}, {17, 53, 67}};
    for (int sh = 0; sh < 2; sh++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int l = 0; l < NLAYOUTS; l++)
                    for (int ab = 0; ab < 3; ab++) {
                        gemm_case g = {ta, tb, shapes[sh][0], shapes[sh][1], shapes[sh][2],
                                       l, (l + ab) % NLAYOUTS, (l + 2 * ab) % NLAYOUTS,
                                       alphas[ab], betas[(ab + ta + tb) % 3]};
                        check_case(&g, next_u32(&s));
                    }
    for (int r = 0; r < 80; r++) {
        gemm_case g = {(int)(next_u32(&s) & 1), (int)(next_u32(&s) & 1),
                       sizes[next_u32(&s) % NSIZES], sizes[next_u32(&s) % NSIZES],
                       sizes[next_u32(&s) % NSIZES], (int)(next_u32(&s) % NLAYOUTS),
                       (int)(next_u32(&s) % NLAYOUTS), (int)(next_u32(&s) % NLAYOUTS),
                       alphas[next_u32(&s) % 3], betas[next_u32(&s) % 3]};
        check_case(&g, next_u32(&s));
    }
}

/* Beyond one cache block in every dimension, so BLIS's outer loops and the
 * edge blocks run too. */
static void large(uint64_t seed)
{
    int b[5];
    fg_gemm_path_blocks(fg_gemm_get_path(), b);
    gemm_case g = {0, 1, b[2] + 19, 150, b[3] + 37, ROW_MAJOR, ROW_MAJOR, ROW_MAJOR, 1.0f, 0.0f};
    check_case(&g, seed);
    gemm_case h = {1, 0, 45, 130, b[3] + 3, COL_MAJOR, ROW_MAJOR, COL_MAJOR, -1.0f, 1.0f};
    check_case(&h, seed + 1);
}

/* Few columns against many rows and a long K: shapes whose transpose
 * tiles better (a narrow layer's weight gradient), which run as B^T A^T
 * into a buffer added back into C. */
static void few_columns(uint64_t seed)
{
    uint64_t s = seed;
    const int ms[] = {40, 130}, ns[] = {2, 5, 18, 36}, ks[] = {64, 300};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++) {
                    int l = (int)(next_u32(&s) % NLAYOUTS), ab = (int)(next_u32(&s) % 3);
                    gemm_case g = {ta, tb, ms[i], ns[j], ks[(i + j) % 2], l,
                                   (l + 1) % NLAYOUTS, (l + ab) % NLAYOUTS, alphas[ab],
                                   betas[(ab + ta + tb) % 3]};
                    check_case(&g, next_u32(&s));
                }
}

/* A coupling network's products on a chunk: a short K (the first
 * convolution, a 128-wide middle layer) or few rows (the last convolution,
 * the first's input gradient) against a long row-major B, which the AVX2
 * and AVX-512 paths compute without packing, their 16-column strips split
 * between threads. Every row-block edge (M mod 6, M mod 12) and column
 * edge (N mod 16, N mod 32: a tile of one vector or of one and a part)
 * occurs, and K past the AVX-512 copy of A's 8-column transposes. */
static void unpacked(uint64_t seed)
{
    uint64_t s = seed;
    const int mnk[][3] = {{128, 784, 18}, {37, 1001, 18}, {131, 2003, 36}, {18, 790, 128},
                          {36, 1009, 130}, {41, 1300, 200}, {4, 4099, 4}, {5, 4003, 7},
                          {130, 801, 128}, {27, 797, 251}, {133, 790, 256}};
    for (int i = 0; i < (int)(sizeof mnk / sizeof mnk[0]); i++)
        for (int ta = 0; ta < 2; ta++) {
            int ab = (int)(next_u32(&s) % 3);
            gemm_case g = {ta, 0, mnk[i][0], mnk[i][1], mnk[i][2],
                           (int)(next_u32(&s) % NLAYOUTS), ROW_MAJOR, ROW_MAJOR,
                           alphas[ab], betas[(ab + ta + i) % 3]};
            check_case(&g, next_u32(&s));
        }
}

/* Weight gradients: A and B both along K with unit stride, one side of C
 * narrow, K longer than the AVX-512 dot-product kernel's slice of 512 (so
 * that later slices must add to the first's result whatever beta is), C
 * in every layout, every row-block (M mod 4) and column-block edge. */
static void dot_products(uint64_t seed)
{
    uint64_t s = seed;
    const int mnk[][3] = {{256, 18, 784}, {37, 300, 1100}, {5, 2304, 600}, {130, 7, 1300},
                          {3, 63, 256}, {64, 64, 513}};
    for (int i = 0; i < (int)(sizeof mnk / sizeof mnk[0]); i++)
        for (int ta = 0; ta < 2; ta++) {
            int ab = (int)(next_u32(&s) % 3);
            gemm_case g = {ta, 1, mnk[i][0], mnk[i][1], mnk[i][2], ta ? COL_MAJOR : ROW_MAJOR,
                           ROW_MAJOR, (i + ta) % NLAYOUTS, alphas[ab], betas[(ab + i + ta) % 3]};
            check_case(&g, next_u32(&s));
        }
}

/* The route of op(A) op(B) with A, B and C stored contiguous, row-major
 * (A as K x M when transposed, B as N x K). */
static int contiguous_route(int ta, int tb, int M, int N, int K)
{
    return fg_gemm_route(ta, tb, M, N, K, ta ? M : K, 1, tb ? K : N, 1, N, 1);
}

/* Products the AVX-512 path packs into its 12 x 32 tiles: K in several
 * blocks of 256 with a short last one, columns in blocks of 1024 with a
 * short last one, B stored along K (a weight gradient with two wide
 * sides), row counts that end mid-tile, and both ways of splitting the
 * work between threads (rows when each thread gets 8 row panels, columns
 * otherwise). On that path none goes to BLIS, and most reach the packed
 * kernel (the others a dot-product or unpacked one). */
static void packed(uint64_t seed)
{
    uint64_t s = seed;
    int reached = 0;
    const int mnk[][3] = {{200, 1100, 600}, {13, 1060, 520}, {45, 70, 1300}, {20, 17, 300},
                          {4, 2100, 300}, {31, 45, 29}};
    for (int i = 0; i < (int)(sizeof mnk / sizeof mnk[0]); i++)
        for (int t = 0; t < 4; t++) {
            /* the largest shape in two of the four transpose cases */
            if (i == 0 && (t == 1 || t == 2))
                continue;
            const int ta = t & 1, tb = t >> 1 || i == 5, ab = (int)(next_u32(&s) % 3);
            gemm_case g = {ta, tb, mnk[i][0], mnk[i][1], mnk[i][2],
                           (int)(next_u32(&s) % NLAYOUTS), (int)(next_u32(&s) % NLAYOUTS),
                           ROW_MAJOR, alphas[ab], betas[(ab + t + i) % 3]};
            const int r = check_case(&g, next_u32(&s));
            if (fg_gemm_get_path() == FG_GEMM_AVX512) {
                ck_assert_msg(r != FG_GEMM_ROUTE_BLIS, "M=%d N=%d K=%d ta=%d tb=%d went to BLIS",
                              g.M, g.N, g.K, ta, tb);
                reached += r == FG_GEMM_ROUTE_PACKED;
            }
        }
    if (fg_gemm_get_path() == FG_GEMM_AVX512) {
        ck_assert_int_ge(reached, 16);
        /* K = 256 is read in place on a chunk (B in L2), packed over a
         * whole batch of a wide layer, read in place again for few rows */
        ck_assert_int_eq(contiguous_route(0, 0, 256, 784, 256), FG_GEMM_ROUTE_UNPACKED);
        ck_assert_int_eq(contiguous_route(0, 0, 256, 12544, 256), FG_GEMM_ROUTE_PACKED);
        ck_assert_int_eq(contiguous_route(1, 0, 18, 12544, 256), FG_GEMM_ROUTE_UNPACKED);
    }
}

/* Products on the AMX tile units, where this CPU has them: the shapes of
 * a wide layer's product and its two gradients (A or B stored along the
 * other dimension, K over several blocks of 256) with rows, columns and K
 * that end inside a tile (16 rows, 16 or 32 columns, 32 values of K),
 * every alpha and beta (beta 0 over NaN). The fp32 tolerance of run_case
 * holds: the three bfloat16 pieces of each operand carry all its bits,
 * and the products left out are below 2^-21 of each term. */
static void amx_products(uint64_t seed)
{
    uint64_t s = seed;
    const int mnk[][3] = {{256, 784, 256}, {100, 33, 64}, {130, 50, 70}, {96, 1001, 200},
                          {512, 97, 129}, {111, 70, 600}, {127, 95, 255}, {200, 130, 1100}};
    for (int i = 0; i < (int)(sizeof mnk / sizeof mnk[0]); i++)
        for (int t = 0; t < 4; t++) {
            const int ta = t & 1, tb = t >> 1, ab = (int)(next_u32(&s) % 3);
            /* op(A) along K (split as it is) when ta and A's layout
             * agree, else along its rows (copied transposed); op(B) the
             * same way round: every shape has both */
            gemm_case g = {ta, tb, mnk[i][0], mnk[i][1], mnk[i][2],
                           i % 2 ? COL_MAJOR : ROW_MAJOR, (i / 2) % 2 ? COL_MAJOR : ROW_MAJOR,
                           ROW_MAJOR, alphas[ab], betas[(ab + i + t) % 3]};
            ck_assert_int_eq(check_case(&g, next_u32(&s)), FG_GEMM_ROUTE_AMX);
        }
    /* the bounds of the route: rows, K, C's layout, an operand with no
     * unit stride, and a narrow weight gradient, which the dot-product
     * kernel keeps */
    ck_assert_int_ne(contiguous_route(0, 0, 95, 784, 256), FG_GEMM_ROUTE_AMX);
    ck_assert_int_ne(contiguous_route(0, 0, 513, 784, 256), FG_GEMM_ROUTE_AMX);
    ck_assert_int_ne(contiguous_route(0, 0, 256, 784, 63), FG_GEMM_ROUTE_AMX);
    ck_assert_int_eq(contiguous_route(0, 1, 128, 36, 12544), FG_GEMM_ROUTE_DOT);
    /* C column-major; A with no unit stride */
    ck_assert_int_ne(fg_gemm_route(0, 0, 256, 784, 256, 256, 1, 784, 1, 1, 256),
                     FG_GEMM_ROUTE_AMX);
    gemm_case g = {0, 0, 130, 70, 90, GENERAL, ROW_MAJOR, ROW_MAJOR, 1.0f, 0.0f};
    ck_assert_int_ne(check_case(&g, next_u32(&s)), FG_GEMM_ROUTE_AMX);
}

/* The AMX kernel itself with what the routes do not give it: an
 * epilogue over K in several blocks (the epilogue with the last, beta
 * with the first) and a range of columns that starts past 0, the columns
 * outside it left alone. */
static void amx_kernel_blocks(void)
{
    uint64_t s = 99;
    const int M = 45, N = 150, K = 2 * FG_AMX_KC + 77, j0 = 32, j1 = 131;
    const long lda = K + 1, ldb = N + 3, ldc = N + 2;
    float *A = malloc((size_t)M * lda * sizeof(float));
    float *B = malloc((size_t)K * ldb * sizeof(float));
    float *C = malloc((size_t)M * ldc * sizeof(float));
    float *old = malloc((size_t)M * ldc * sizeof(float));
    float bias[45], scale[45];
    void *pa = malloc(fg_sgemm_amx_a_bytes(M, K)), *pb = malloc(fg_sgemm_amx_b_bytes(j1 - j0, K));
    ck_assert(A && B && C && old && pa && pb);
    for (long e = 0; e < (long)M * lda; e++) A[e] = uniform(&s);
    for (long e = 0; e < (long)K * ldb; e++) B[e] = uniform(&s);
    for (long e = 0; e < (long)M * ldc; e++) C[e] = old[e] = uniform(&s);
    for (int i = 0; i < M; i++) {
        bias[i] = 0.5f * uniform(&s);
        scale[i] = 1.25f + uniform(&s);
    }
    const fg_row_affine ep = {bias, scale, 1};
    const float alpha = -0.75f, beta = 0.5f;
    fg_sgemm_amx_bf16x6(M, K, alpha, A, lda, 1, B, ldb, 1, beta, C, ldc, j0, j1, pa, pb, &ep);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            const long e = (long)i * ldc + j;
            if (j < j0 || j >= j1) {
                ck_assert_msg(C[e] == old[e], "C[%d,%d] outside the columns changed", i, j);
                continue;
            }
            double sum = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                const double p = (double)A[(long)i * lda + k] * B[(long)k * ldb + j];
                sum += p;
                mag += fabs(p);
            }
            double ref = ((double)alpha * sum + (double)beta * old[e] + bias[i]) * scale[i];
            if (!(ref > 0.0))
                ref = 0.0;
            const double tol = 4.0 * (K + 4) * FLT_EPSILON *
                               (fabs(alpha) * mag + fabs(beta * old[e]) + fabs(bias[i])) *
                               scale[i];
            ck_assert_msg(fabs(C[e] - ref) <= tol, "C[%d,%d] = %.9g, reference %.9g", i, j,
                          C[e], ref);
        }
    free(A); free(B); free(C); free(old); free(pa); free(pb);
}

/* fg_gemm_row_affine: C = ep(alpha op(A) B + beta C), row-stored B and C.
 * The epilogue runs inside the AVX-512 kernels where it can (the one
 * that reads B in place, the packed one with its last block of K) and as
 * a pass after the product elsewhere (other paths, BLIS, the dot-product
 * kernel): every way must give exactly fg_gemm_ex followed by
 * fg_row_affine_apply, and that within rounding of a double reference.
 * The same product from op(A) prepared beforehand (fg_gemm_prepare_a,
 * its panels made where the AVX-512 kernel that reads B in place would
 * make them) must give the same bits again. */
static int row_affine_case(int ta, int M, int N, int K, float alpha, float beta, int relu,
                           uint64_t seed, char *why, size_t whylen)
{
    uint64_t s = seed;
    const long lda = (ta ? M : K) + 3, ldb = N + 5, ldc = N + 2;
    const size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)K * ldb, nc = (size_t)M * ldc;
    float *A = malloc(na * sizeof(float)), *B = malloc(nb * sizeof(float));
    float *C = malloc(nc * sizeof(float)), *R = malloc(nc * sizeof(float));
    float *old = malloc(nc * sizeof(float));
    float *bias = malloc((size_t)M * sizeof(float)), *scale = malloc((size_t)M * sizeof(float));
    ck_assert(A && B && C && R && old && bias && scale);
    for (size_t e = 0; e < na; e++) A[e] = uniform(&s);
    for (size_t e = 0; e < nb; e++) B[e] = uniform(&s);
    /* beta 0 never reads C: NaN there must not come through */
    for (size_t e = 0; e < nc; e++) C[e] = R[e] = old[e] = beta == 0.0f ? NAN : uniform(&s);
    for (int i = 0; i < M; i++) {
        bias[i] = 0.5f * uniform(&s);
        scale[i] = 1.25f + uniform(&s);
    }
    const fg_row_affine ep = {bias, scale, relu};
    fg_gemm_row_affine(ta, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, &ep);
    fg_gemm_ex(ta, 0, M, N, K, alpha, A, lda, 1, B, ldb, 1, beta, R, ldc, 1);
    fg_row_affine_apply(M, N, R, ldc, &ep);
    float *Q = malloc(nc * sizeof(float));
    const size_t np = fg_gemm_prepared_floats(M, K);
    float *panels = np ? malloc(np * sizeof(float)) : NULL;
    ck_assert(Q && (panels || !np));
    memcpy(Q, old, nc * sizeof(float));
    const fg_gemm_prepared pa = fg_gemm_prepare_a(ta, M, K, A, lda, panels);
    ck_assert(pa.panels == panels);
    fg_gemm_row_affine_prepared(&pa, N, alpha, B, ldb, beta, Q, ldc, &ep);
    int bad = 0;
    for (size_t e = 0; e < nc && !bad; e++)
        if (memcmp(&C[e], &Q[e], sizeof C[e]) != 0) {
            bad = 1;
            snprintf(why, whylen, "C[%zu] = %.9g, from prepared panels %.9g", e, C[e], Q[e]);
        }
    free(Q);
    free(panels);
    for (int i = 0; i < M && !bad; i++)
        for (int j = 0; j < N && !bad; j++) {
            const size_t e = (size_t)i * ldc + j;
            double sum = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                const double p = (double)(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                                 B[(size_t)k * ldb + j];
                sum += p;
                mag += fabs(p);
            }
            const double cterm = beta == 0.0f ? 0.0 : (double)beta * old[e];
            double ref = ((double)alpha * sum + cterm + bias[i]) * scale[i];
            if (relu && !(ref > 0.0))
                ref = 0.0;
            const double tol = 4.0 * (K + 4) * FLT_EPSILON *
                               (fabs(alpha) * mag + fabs(cterm) + fabs(bias[i])) * scale[i];
            if (memcmp(&C[e], &R[e], sizeof C[e]) != 0) {
                bad = 1;
                snprintf(why, whylen, "C[%d,%d] = %.9g, the product then the pass %.9g", i, j,
                         C[e], R[e]);
            } else if (!(fabs(C[e] - ref) <= tol)) {
                bad = 1;
                snprintf(why, whylen, "C[%d,%d] = %.9g, reference %.9g", i, j, C[e], ref);
            } else if (relu && signbit(C[e])) {
                bad = 1;
                snprintf(why, whylen, "C[%d,%d] = %g after ReLU", i, j, C[e]);
            }
        }
    free(A); free(B); free(C); free(R); free(old); free(bias); free(scale);
    return bad;
}

static void row_affine(void)
{
    int b[5];
    fg_gemm_path_blocks(fg_gemm_get_path(), b);
    /* the middle layer of a 256-wide network on a chunk, a first layer
     * (both read in place), K past one cache block, a narrow product, rows
     * that end mid-tile; on AVX-512, packed products whose epilogue comes
     * with their last block of K, their work split between threads by
     * rows (200 x 40) and by columns (13 x 1060, two blocks of them) */
    const int mnk[][3] = {{256, 784, 256}, {37, 1001, 18}, {130, 300, b[3] + 17},
                          {20, 7, 9}, {45, 130, 200}, {4, 64, 300}, {200, 40, 300},
                          {13, 1060, 520}};
    uint64_t s = 77;
    /* The AVX-512 path prepares panels for the products that read B in
     * place (K up to 256): these cases must reach them. */
    if (fg_gemm_get_path() == FG_GEMM_AVX512)
        ck_assert(fg_gemm_prepared_floats(37, 18) > 0 && fg_gemm_prepared_floats(256, 256) > 0);
    for (int i = 0; i < (int)(sizeof mnk / sizeof mnk[0]); i++)
        for (int v = 0; v < 4; v++) {
            const int ta = v & 1, relu = (v >> 1) & 1;
            const float alpha = v == 3 ? -0.75f : 1.0f, beta = v == 1 ? 0.5f : 0.0f;
            char why[160] = "";
            int bad = row_affine_case(ta, mnk[i][0], mnk[i][1], mnk[i][2], alpha, beta, relu,
                                      next_u32(&s), why, sizeof why);
            ck_assert_msg(!bad, "path %s threads %d: ta=%d M=%d N=%d K=%d alpha=%g beta=%g "
                          "relu=%d: %s", fg_gemm_path_name(fg_gemm_get_path()),
                          fg_get_threads(), ta, mnk[i][0], mnk[i][1], mnk[i][2], alpha, beta,
                          relu, why);
        }
}

static int use_path(int p)
{
    if (!fg_gemm_path_supported(p)) {
        fprintf(stderr, "test_gemm: this CPU lacks path %s, skipped\n", fg_gemm_path_name(p));
        return 0;
    }
    ck_assert_int_eq(fg_gemm_set_path(p), FG_OK);
    ck_assert_int_eq(fg_gemm_get_path(), p);
    return 1;
}

/* Every path with AMX off, where the routes above hold; then, where the
 * CPU has AMX, the AVX-512 path again with it on. */
static void all_paths(int threads)
{
    const int saved = fg_get_threads(), saved_amx = fg_gemm_amx_on();
    fg_set_threads(threads);
    fg_gemm_set_amx(0);
    for (int p = 0; p < FG_GEMM_NPATHS; p++)
        if (use_path(p)) {
            sweep(1000 + p);
            large(2000 + p);
            few_columns(3000 + p);
            unpacked(4000 + p);
            dot_products(5000 + p);
            packed(6000 + p);
            row_affine();
        }
    if (fg_gemm_path_supported(FG_GEMM_AVX512) && fg_gemm_set_amx(1)) {
        use_path(FG_GEMM_AVX512);
        amx_products(7000);
        amx_kernel_blocks();
        unpacked(7100);
        row_affine();
    } else {
        fprintf(stderr, "test_gemm: this CPU has no AMX, its products skipped\n");
    }
    fg_gemm_set_amx(saved_amx);
    fg_gemm_set_path(FG_GEMM_AUTO);
    fg_set_threads(saved);
}

START_TEST(test_paths_one_thread) { all_paths(1); }
END_TEST

START_TEST(test_paths_two_threads) { all_paths(2); }
END_TEST

START_TEST(test_path_names)
{
    for (int p = 0; p < FG_GEMM_NPATHS; p++)
        ck_assert_int_eq(fg_gemm_path_from_name(fg_gemm_path_name(p)), p);
    ck_assert_int_eq(fg_gemm_path_from_name("auto"), FG_GEMM_AUTO);
    ck_assert_int_eq(fg_gemm_path_from_name("sse9"), -2);
    ck_assert(fg_gemm_path_supported(FG_GEMM_SCALAR));
    /* Without an override the best path of the CPU serves. */
    if (getenv("FLOWGRAD_GEMM_KERNEL") == NULL) {
        int best = fg_gemm_path_supported(FG_GEMM_AVX512) ? FG_GEMM_AVX512
                   : bli_arch_query_id() != BLIS_ARCH_GENERIC ? FG_GEMM_BLIS
                   : fg_gemm_path_supported(FG_GEMM_AVX2) ? FG_GEMM_AVX2
                                                          : FG_GEMM_SCALAR;
        ck_assert_int_eq(fg_gemm_best_path(), best);
        ck_assert_int_eq(fg_gemm_get_path(), best);
    }
}
END_TEST

/* alpha = 0 and K = 0 leave beta C, and beta = 0 writes zeros over NaN. */
START_TEST(test_degenerate)
{
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 1, 1, 1, 1, 1};
    float C[4] = {NAN, NAN, NAN, NAN};
    fg_gemm(0, 0, 2, 2, 3, 0.0f, A, 3, B, 2, 0.0f, C, 2);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(C[i], 0.0f);
    float D[4] = {1, 2, 3, 4};
    fg_gemm(0, 0, 2, 2, 0, 1.0f, A, 3, B, 2, 2.0f, D, 2);
    ck_assert_float_eq(D[0], 2.0f);
    ck_assert_float_eq(D[3], 8.0f);
    /* A hand-checked product through the row-major wrapper with ldc > N. */
    float E[6] = {NAN, NAN, 7, NAN, NAN, 7};
    fg_gemm(0, 0, 2, 2, 3, 1.0f, A, 3, B, 2, 0.0f, E, 3);
    ck_assert_float_eq(E[0], 6.0f);
    ck_assert_float_eq(E[1], 6.0f);
    ck_assert_float_eq(E[3], 15.0f);
    ck_assert_float_eq(E[4], 15.0f);
    ck_assert_float_eq(E[2], 7.0f);
}
END_TEST

static void *concurrent_worker(void *arg)
{
    uint64_t s = (uint64_t)(uintptr_t)arg;
    intptr_t failures = 0;
    for (int r = 0; r < 40; r++) {
        gemm_case g = {(int)(next_u32(&s) & 1), (int)(next_u32(&s) & 1),
                       sizes[next_u32(&s) % NSIZES], 20 + (int)(next_u32(&s) % 80),
                       sizes[next_u32(&s) % NSIZES], ROW_MAJOR, COL_MAJOR,
                       (int)(next_u32(&s) % NLAYOUTS), 1.5f, r % 2 ? 0.0f : -1.0f};
        char why[160];
        int route;
        failures += run_case(&g, next_u32(&s), why, sizeof why, &route) != 0;
    }
    return (void *)failures;
}

/* Two application threads share the contexts (and BLIS's memory pools). */
START_TEST(test_concurrent_callers)
{
    int saved = fg_get_threads();
    for (int threads = 1; threads <= 2; threads++) {
        fg_set_threads(threads);
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            ck_assert_int_eq(pthread_create(&t[i], NULL, concurrent_worker,
                                            (void *)(uintptr_t)(77 + i)), 0);
        for (int i = 0; i < 2; i++) {
            void *failures;
            pthread_join(t[i], &failures);
            ck_assert_int_eq((intptr_t)failures, 0);
        }
    }
    fg_set_threads(saved);
}
END_TEST

/* BLIS 0.9.0 passes kappa = 1 for real types, so fg_gemm_ex cannot show
 * that the packing kernels scale; call them directly on every source layout
 * (column-, row-stored, general) with a partial panel and padding. */
typedef void (*pack_fn)(FG_SPACK_ARGS);
static void check_pack(pack_fn f, int width)
{
    enum { N = 21, NMAX = 24 };
    float a[64 * 80], p[32 * NMAX];
    for (int i = 0; i < 64 * 80; i++)
        a[i] = (float)(i % 97) - 40.0f;
    float kappa = -1.5f;
    const long layouts[3][2] = {{1, 40}, {N + 3, 1}, {2, 2L * width + 5}};
    for (int cdim = width; cdim >= 1; cdim -= 3)
        for (int lay = 0; lay < 3; lay++) {
            long inca = layouts[lay][0], lda = layouts[lay][1];
            for (int i = 0; i < 32 * NMAX; i++)
                p[i] = NAN;
            f(BLIS_NO_CONJUGATE, BLIS_PACKED_ROW_PANELS, cdim, N, NMAX, &kappa, a, inca, lda,
              p, width, NULL);
            for (int l = 0; l < NMAX; l++)
                for (int i = 0; i < width; i++) {
                    float want = i < cdim && l < N ? kappa * a[i * inca + l * lda] : 0.0f;
                    ck_assert_msg(p[i + l * width] == want,
                                  "width %d cdim %d layout %d: p[%d,%d] = %g, want %g", width,
                                  cdim, lay, i, l, p[i + l * width], want);
                }
            ck_assert(isnan(p[width * NMAX])); /* nothing past the panel */
        }
}

START_TEST(test_packing_kernels)
{
    check_pack(fg_spack_4_scalar, FG_SCALAR_MR);
    check_pack(fg_spack_8_scalar, FG_SCALAR_NR);
    if (fg_gemm_path_supported(FG_GEMM_AVX2)) {
        check_pack(fg_spack_6_avx2, FG_AVX2_MR);
        check_pack(fg_spack_16_avx2, FG_AVX2_NR);
    }
    if (fg_gemm_path_supported(FG_GEMM_AVX512)) {
        check_pack(fg_spack_14_avx512, FG_AVX512_MR);
        check_pack(fg_spack_16_avx512, FG_AVX512_NR);
        check_pack(fg_spack_12_avx512, FG_AVX512_UNPACKED_MR);
    }
}
END_TEST

Suite *fg_test_suite(void)
{
    (void)rng_state;
    Suite *s = suite_create("gemm");
    TCase *tc = fg_tcase("gemm");
    tcase_add_test(tc, test_path_names);
    tcase_add_test(tc, test_degenerate);
    tcase_add_test(tc, test_packing_kernels);
    tcase_add_test(tc, test_paths_one_thread);
    tcase_add_test(tc, test_paths_two_threads);
    tcase_add_test(tc, test_concurrent_callers);
    suite_add_tcase(s, tc);
    return s;
}
