/* GEMM benchmark: GFLOP/s of BLIS's native context, of flowgrad's context
 * (fg_gemm_ex) and of OpenBLAS, which is loaded at run time as a yardstick
 * only, on 2048^3 and on the shapes of Glow's convolutions (forward,
 * backward-weight and backward-input products). Implementations alternate
 * within each repetition so that load from other processes hits all alike;
 * the table shows medians.
 *
 *   bench_gemm [--threads N] [--reps R] [--json] [--kernel avx512|avx2|scalar|blis]
 *              [--only SUBSTRING] */
#include "tensor/tensor.h"
#include "tensor/gemm_internal.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <blis.h>
#pragma GCC diagnostic pop

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *name;
    int M, N, K, ta, tb;
} shape;

/* Glow's 3x3 convolutions as GEMMs over one 112x112 image (HW = 12544):
 * forward W (Co x CiKK) * col (CiKK x HW), backward-weight dY col^T,
 * backward-input W^T dY. */
static const shape shapes[] = {
    {"square 2048^3", 2048, 2048, 2048, 0, 0},
    {"fwd 256x12544x256", 256, 12544, 256, 0, 0},
    {"fwd 256x12544x18", 256, 12544, 18, 0, 0},
    {"fwd 4x12544x2304", 4, 12544, 2304, 0, 0},
    {"dW 256x256x12544", 256, 256, 12544, 0, 1},
    {"dW 256x18x12544", 256, 18, 12544, 0, 1},
    {"dW 4x2304x12544", 4, 2304, 12544, 0, 1},
    {"dX 256x12544x256", 256, 12544, 256, 1, 0},
    {"dX 18x12544x256", 18, 12544, 256, 1, 0},
    {"dX 2304x12544x4", 2304, 12544, 4, 1, 0},
    /* The products of a K8/h128 Glow coupling network at batch 64 on the
     * 14x14 level, channel-major (one GEMM per layer over 64 x 196 = 12544
     * pixels): the 3x3 input layer (2 -> 128 channels, columns of 18 rows),
     * the 1x1 middle layer, and the narrow 3x3 output layer (128 -> 4, its
     * 36 output-side rows). */
    {"cm in fwd 128x12544x18", 128, 12544, 18, 0, 0},
    {"cm in dW 128x18x12544", 128, 18, 12544, 0, 1},
    {"cm in dX 18x12544x128", 18, 12544, 128, 1, 0},
    {"cm mid fwd 128x12544x128", 128, 12544, 128, 0, 0},
    {"cm mid dW 128x128x12544", 128, 128, 12544, 0, 1},
    {"cm mid dX 128x12544x128", 128, 12544, 128, 1, 0},
    {"cm out fwd 36x12544x128", 36, 12544, 128, 0, 0},
    {"cm out dW 128x36x12544", 128, 36, 12544, 0, 1},
    {"cm out dX 128x12544x36", 128, 12544, 36, 1, 0},
    /* The same layers as a convolution chain runs them, on one chunk of 784
     * columns (4 images of 14x14 or 16 of 7x7) per call: K8/h128 at both
     * levels (the 7x7 level has 4 input channels, 72 output-side rows) and
     * K16/h256 at the 14x14 one. */
    {"chunk in fwd 128x784x18", 128, 784, 18, 0, 0},
    {"chunk in dX 18x784x128", 18, 784, 128, 1, 0},
    {"chunk mid fwd 128x784x128", 128, 784, 128, 0, 0},
    {"chunk out fwd 36x784x128", 36, 784, 128, 0, 0},
    {"chunk out dX 128x784x36", 128, 784, 36, 1, 0},
    {"chunk in fwd 128x784x36", 128, 784, 36, 0, 0},
    {"chunk out fwd 72x784x128", 72, 784, 128, 0, 0},
    {"chunk in fwd 256x784x18", 256, 784, 18, 0, 0},
    {"chunk mid fwd 256x784x256", 256, 784, 256, 0, 0},
    {"chunk out fwd 36x784x256", 36, 784, 256, 0, 0},
    {"chunk in dX 18x784x256", 18, 784, 256, 1, 0},
    {"chunk mid dX 256x784x256", 256, 784, 256, 1, 0},
    {"chunk mid dW 256x256x784", 256, 256, 784, 0, 1},
};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

enum { IMPL_BLIS, IMPL_OURS, IMPL_OPENBLAS, NIMPLS };
static const char *impl_names[NIMPLS] = {"blis-native", "flowgrad", "openblas"};

typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
                               const float *, int, float, float *, int);
static cblas_sgemm_fn openblas_sgemm;

/* OpenBLAS is never linked: it is opened here only when installed. Its
 * core-type and cache overrides are cleared so it runs as it would for a
 * user who never heard of them. */
static void open_openblas(int threads)
{
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("OPENBLAS_L2_SIZE");
    void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    openblas_sgemm = (cblas_sgemm_fn)dlsym(h, "cblas_sgemm");
    void (*set_threads)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    if (set_threads)
        set_threads(threads);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void run(int impl, const shape *s, const float *A, const float *B, float *C,
                int threads)
{
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N, ldc = s->N;
    switch (impl) {
    case IMPL_BLIS: {
        rntm_t rntm;
        bli_rntm_init_from_global(&rntm);
        bli_rntm_set_num_threads(threads, &rntm);
        float one = 1.0f, zero = 0.0f;
        bli_sgemm_ex(s->ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                     s->tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, s->M, s->N, s->K, &one,
                     (float *)A, lda, 1, (float *)B, ldb, 1, &zero, C, ldc, 1, NULL, &rntm);
        break;
    }
    case IMPL_OURS:
        fg_gemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
        break;
    case IMPL_OPENBLAS:
        /* CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112 */
        openblas_sgemm(101, s->ta ? 112 : 111, s->tb ? 112 : 111, s->M, s->N, s->K, 1.0f,
                       A, lda, B, ldb, 0.0f, C, ldc);
        break;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *random_buffer(size_t n, unsigned seed)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return p;
}

int main(int argc, char **argv)
{
    int threads = 0, reps = 5, json = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--kernel") == 0 && i + 1 < argc) {
            int p = fg_gemm_path_from_name(argv[++i]);
            if (p < FG_GEMM_AUTO || fg_gemm_set_path(p) != FG_OK) {
                fprintf(stderr, "bench_gemm: kernel %s is not available\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: bench_gemm [--threads N] [--reps R] [--json] "
                            "[--kernel avx512|avx2|scalar|blis] [--only SUBSTRING]\n");
            return 2;
        }
    }
    if (threads < 1)
        threads = fg_get_threads();
    if (reps < 1)
        reps = 1;
    fg_set_threads(threads);
    open_openblas(threads);
    int nimpls = openblas_sgemm ? NIMPLS : IMPL_OPENBLAS;

    int path = fg_gemm_get_path(), blk[5];
    fg_gemm_path_blocks(path, blk);
    if (json)
        printf("{\"threads\": %d, \"reps\": %d, \"kernel\": \"%s\", \"blocks\": "
               "{\"MR\": %d, \"NR\": %d, \"MC\": %d, \"KC\": %d, \"NC\": %d}, "
               "\"amx\": %s, \"blis_arch\": \"%s\", \"results\": [",
               threads, reps, fg_gemm_path_name(path), blk[0], blk[1], blk[2], blk[3],
               blk[4], fg_gemm_amx_on() ? "true" : "false",
               bli_arch_string(bli_arch_query_id()));
    else {
        printf("threads %d, reps %d (median GFLOP/s), flowgrad kernel %s "
               "MRxNR %dx%d MC %d KC %d NC %d, AMX %s, BLIS native config %s\n",
               threads, reps, fg_gemm_path_name(path), blk[0], blk[1], blk[2], blk[3],
               blk[4], fg_gemm_amx_on() ? "on" : "off", bli_arch_string(bli_arch_query_id()));
        printf("%-26s %12s %10s %10s %10s\n", "shape (MxNxK)", impl_names[0],
               impl_names[1], nimpls > 2 ? impl_names[2] : "-", "ours/obl");
    }

    int first = 1;
    for (int si = 0; si < NSHAPES; si++) {
        const shape *s = &shapes[si];
        if (only && !strstr(s->name, only))
            continue;
        float *A = random_buffer((size_t)s->M * s->K, 1u + si);
        float *B = random_buffer((size_t)s->K * s->N, 100u + si);
        float *C = random_buffer((size_t)s->M * s->N, 200u + si);
        double flops = 2.0 * s->M * s->N * s->K;
        double times[NIMPLS][64];
        int r_max = reps > 64 ? 64 : reps;
        for (int impl = 0; impl < nimpls; impl++)
            run(impl, s, A, B, C, threads); /* warm caches, pools, pages */
        for (int r = 0; r < r_max; r++)
            for (int impl = 0; impl < nimpls; impl++) {
                double t0 = now();
                run(impl, s, A, B, C, threads);
                times[impl][r] = now() - t0;
            }
        double gf[NIMPLS] = {0};
        for (int impl = 0; impl < nimpls; impl++) {
            qsort(times[impl], r_max, sizeof(double), cmp_double);
            gf[impl] = flops / times[impl][r_max / 2] * 1e-9;
        }
        double ratio = nimpls > 2 ? gf[IMPL_OURS] / gf[IMPL_OPENBLAS] : 0.0;
        if (json) {
            printf("%s\n  {\"shape\": \"%s\", \"M\": %d, \"N\": %d, \"K\": %d, \"ta\": %d, "
                   "\"tb\": %d, \"gflops\": {\"blis_native\": %.1f, \"flowgrad\": %.1f",
                   first ? "" : ",", s->name, s->M, s->N, s->K, s->ta, s->tb,
                   gf[IMPL_BLIS], gf[IMPL_OURS]);
            if (nimpls > 2)
                printf(", \"openblas\": %.1f}, \"flowgrad_over_openblas\": %.3f}",
                       gf[IMPL_OPENBLAS], ratio);
            else
                printf("}}");
        } else {
            printf("%-26s %12.1f %10.1f", s->name, gf[IMPL_BLIS], gf[IMPL_OURS]);
            if (nimpls > 2)
                printf(" %10.1f %10.2f\n", gf[IMPL_OPENBLAS], ratio);
            else
                printf(" %10s %10s\n", "-", "-");
        }
        fflush(stdout);
        first = 0;
        free(A);
        free(B);
        free(C);
    }
    if (json)
        printf("\n]}\n");
    return 0;
}
