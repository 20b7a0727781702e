/* The one GEMM entry point of flowgrad: every matrix product goes through
 * fg_gemm_ex so that every caller gets the tuned BLIS context.
 *
 * Debian's BLIS 0.9.0 falls back to its generic configuration on CPUs it does
 * not know (e.g. AMD Zen 5), a sixth of the machine's speed. Where BLIS runs
 * a product it owns packing, cache blocking and threading; we hand it a copy
 * of its native context in which our microkernels and packing kernels
 * replace the generic ones. Each copy is built once and never changed, so
 * concurrent callers may share it. On AVX-512, products with row-stored C
 * go to our own kernels instead (route() below): BLIS has no packing
 * kernel for the 32-column panels of our faster tile. */
#include "tensor/tensor.h"
#include "tensor/gemm_internal.h"
#include "tensor/kernels/sgemm_kernels.h"

#include "tensor/kernels/sgemm_kernels.h" /* blis.h, quietly */
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int mr, nr;
    int mc, kc, nc; /* chosen by the sweep recorded in BENCHMARKS.md */
    void_fp ukr, pack_mr, pack_nr;
    void_fp ukr_t; /* NR x MR with column-stored C, or NULL */
} kernel_set;

static const kernel_set kernel_sets[FG_GEMM_NPATHS] = {
    [FG_GEMM_BLIS] = {"blis", 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL},
    [FG_GEMM_SCALAR] = {"scalar", FG_SCALAR_MR, FG_SCALAR_NR, 128, 256, 4096,
                        (void_fp)fg_sgemm_ukr_scalar, (void_fp)fg_spack_4_scalar,
                        (void_fp)fg_spack_8_scalar, NULL},
    [FG_GEMM_AVX2] = {"avx2", FG_AVX2_MR, FG_AVX2_NR, 168, 256, 4080,
                      (void_fp)fg_sgemm_ukr_avx2, (void_fp)fg_spack_6_avx2,
                      (void_fp)fg_spack_16_avx2, NULL},
    [FG_GEMM_AVX512] = {"avx512", FG_AVX512_MR, FG_AVX512_NR, 336, 384, 4080,
                        (void_fp)fg_sgemm_ukr_avx512, (void_fp)fg_spack_14_avx512,
                        (void_fp)fg_spack_16_avx512, (void_fp)fg_sgemm_ukr_avx512_t},
};

static cntx_t contexts[FG_GEMM_NPATHS];
/* Products with an inner dimension or a row count up to this bound skip
 * BLIS's packing on AVX2 paths (fg_sgemm_unpacked_avx2); 0: never.
 * FLOWGRAD_GEMM_UNPACKED overrides it, for the sweep in BENCHMARKS.md. */
static int unpacked_bound;
/* On the AVX-512 path: the longest K read in place (unless B is large
 * and many rows read it, UNPACKED_CACHED_B_AVX512 below);
 * FLOWGRAD_GEMM_UNPACKED_K overrides it, and 0 turns the kernel off. */
static int unpacked_k_avx512;
/* On the AVX-512 path: the cache blocks of the packed 12 x 32 product;
 * kc 0 leaves its products to BLIS. FLOWGRAD_GEMM_PACKED=KC,NC overrides
 * them, and 0 turns it off. */
static fg_packed_blocks packed_blocks;
/* On the AVX-512 path: the shortest K of a dot-product kernel's product. */
static int dot_min_k;
/* On the AVX-512 path of a CPU with AMX: the shortest K of a product run
 * in bfloat16 pieces on the tile units (sgemm_amx_bf16x6.c); 0: never.
 * FLOWGRAD_GEMM_AMX=0 turns them off. */
static _Atomic int amx_min_k;
/* Contexts with the transposed kernel, for products with a small N. */
static cntx_t contexts_t[FG_GEMM_NPATHS];
static int blocks[FG_GEMM_NPATHS][5];
static pthread_once_t contexts_once = PTHREAD_ONCE_INIT;
static int default_path;
static _Atomic int forced_path = FG_GEMM_AUTO;

int fg_gemm_path_supported(int path)
{
    __builtin_cpu_init();
    switch (path) {
    case FG_GEMM_BLIS:
    case FG_GEMM_SCALAR:
        return 1;
    case FG_GEMM_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case FG_GEMM_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
               fg_gemm_path_supported(FG_GEMM_AVX2);
    default:
        return 0;
    }
}

const char *fg_gemm_path_name(int path)
{
    if (path == FG_GEMM_AUTO)
        return "auto";
    return path >= 0 && path < FG_GEMM_NPATHS ? kernel_sets[path].name : "?";
}

int fg_gemm_path_from_name(const char *name)
{
    if (strcmp(name, "auto") == 0 || *name == '\0')
        return FG_GEMM_AUTO;
    for (int p = 0; p < FG_GEMM_NPATHS; p++)
        if (strcmp(name, kernel_sets[p].name) == 0)
            return p;
    return -2;
}

static int round_up(int x, int multiple)
{
    return (x + multiple - 1) / multiple * multiple;
}

/* FLOWGRAD_GEMM_BLOCKS=MC,KC,NC overrides the cache blocks of the tuned
 * paths: it exists for the blocksize sweep. A malformed value is ignored. */
static void read_block_override(int *mc, int *kc, int *nc)
{
    const char *s = getenv("FLOWGRAD_GEMM_BLOCKS");
    int a, b, c;
    if (s && sscanf(s, "%d,%d,%d", &a, &b, &c) == 3 && a > 0 && b > 0 && c > 0) {
        *mc = a;
        *kc = b;
        *nc = c;
    }
}

static void set_block(cntx_t *cx, bszid_t id, int value)
{
    bli_cntx_set_blksz_def_dt(BLIS_FLOAT, id, value, cx);
    bli_cntx_set_blksz_max_dt(BLIS_FLOAT, id, value, cx);
}

static void fill_context(cntx_t *cx, int mr, int nr, void_fp ukr, bool row_pref,
                         void_fp pack_mr, void_fp pack_nr, int mc, int kc, int nc)
{
    /* The exported setter fills both the native and the virtual slot, and
     * the macrokernel calls the virtual one. A kernel that holds rows of C
     * in vectors prefers rows: BLIS then transposes the problem when C is
     * column-stored. */
    bli_cntx_set_l3_nat_ukrs(1, BLIS_GEMM_UKR, BLIS_FLOAT, ukr, (int)row_pref, cx);
    set_block(cx, BLIS_KR, 1);
    set_block(cx, BLIS_MR, mr);
    set_block(cx, BLIS_NR, nr);
    set_block(cx, BLIS_MC, mc);
    set_block(cx, BLIS_KC, kc);
    set_block(cx, BLIS_NC, nc);
    /* Packing kernels are looked up by panel width; widths of 32 and more
     * have no slot and would silently use BLIS's scalar copy. */
    bli_cntx_set_packm_kers(2, (l1mkr_t)mr, BLIS_FLOAT, pack_mr, (l1mkr_t)nr, BLIS_FLOAT,
                            pack_nr, cx);
    /* Small problems would otherwise go to BLIS's unpacked 'sup' code with
     * its generic kernels. */
    blksz_t zero;
    bli_blksz_init_easy(&zero, 0, 0, 0, 0);
    bli_cntx_set_l3_sup_thresh(3, BLIS_MT, &zero, BLIS_NT, &zero, BLIS_KT, &zero, cx);
}

static void build_context(int path)
{
    const kernel_set *ks = &kernel_sets[path];
    cntx_t *cx = &contexts[path];
    *cx = *bli_gks_query_nat_cntx();
    if (path == FG_GEMM_BLIS) {
        blocks[path][0] = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_MR, cx);
        blocks[path][1] = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_NR, cx);
        blocks[path][2] = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_MC, cx);
        blocks[path][3] = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_KC, cx);
        blocks[path][4] = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_NC, cx);
        return;
    }
    int mc = ks->mc, kc = ks->kc, nc = ks->nc;
    read_block_override(&mc, &kc, &nc);
    /* BLIS requires MC and NC to be multiples of the register block. */
    mc = round_up(mc, ks->mr);
    nc = round_up(nc, ks->nr);

    fill_context(cx, ks->mr, ks->nr, ks->ukr, TRUE, ks->pack_mr, ks->pack_nr, mc, kc, nc);
    if (ks->ukr_t) {
        contexts_t[path] = *bli_gks_query_nat_cntx();
        fill_context(&contexts_t[path], ks->nr, ks->mr, ks->ukr_t, FALSE, ks->pack_nr,
                     ks->pack_mr, round_up(mc, ks->nr), kc, round_up(nc, ks->mr));
    }

    blocks[path][0] = ks->mr;
    blocks[path][1] = ks->nr;
    blocks[path][2] = mc;
    blocks[path][3] = kc;
    blocks[path][4] = nc;
}

/* BLIS's own context is the best choice where BLIS was built with kernels
 * for this CPU: on an AVX2 Zen it ran 2048^3 at 93 GFLOP/s on one core
 * against our AVX2 kernels' 80, and a Glow training step 1.2x faster (see
 * BENCHMARKS.md). Where it falls back to its generic configuration, or where
 * the CPU has AVX-512, which Debian's BLIS 0.9 does not use on AMD, ours
 * serve. */
static int blis_knows_cpu(void)
{
    return bli_arch_query_id() != BLIS_ARCH_GENERIC;
}

static int best_supported_path(void)
{
    if (fg_gemm_path_supported(FG_GEMM_AVX512))
        return FG_GEMM_AVX512;
    if (blis_knows_cpu())
        return FG_GEMM_BLIS;
    return fg_gemm_path_supported(FG_GEMM_AVX2) ? FG_GEMM_AVX2 : FG_GEMM_SCALAR;
}

#define UNPACKED_BOUND 48
/* On AVX-512, products read B in place faster than BLIS packs it when K is
 * at most 256: a convolution chain's products on a chunk (N = 784
 * columns; the first convolution's 9 Ci, the middle layer of a 128- or
 * 256-wide network, the last convolution's few rows) and the same layers
 * over a whole batch (N = 12544). Measured on whole training steps and
 * sampling passes, where B arrives from the layer before and BLIS's copy
 * of it costs more than in a repeated product (BENCHMARKS.md, "Products
 * read in place up to K = 128" and "A 12 x 32 tile"): with the 14 x 16
 * tile, a bound of 128 made K8/h128 steps 4.8 % faster than 64 and left
 * K16/h256 unchanged; with the 12 x 32 tile, 256 samples K16/h256 12-19 %
 * faster than 128 and trains it 0-5 % faster, K8/h128 unchanged. Whole-
 * batch products, which the kernel once wrote in short scattered runs of
 * C, now run 1.0-1.9x as fast as BLIS's packed ones (bench_gemm, same
 * section). */
#define UNPACKED_K_AVX512 256
/* The dot-product kernel (sgemm_dot_avx512.c) against BLIS's transposing
 * packs, on one thread (bench_gemm --only dW; the same section): 1.6-2.5x
 * as fast when one side of C is narrow (dW 256x18, 128x36, 4x2304 over
 * 12544 pixels), 13 % slower for 256x256, where a packed tile reuses each
 * load more (BLIS's 14 x 16 then; the packed 12 x 32 product takes such
 * gradients now). */
#define DOT_MIN_K 256
#define DOT_NARROW 64
/* The packed 12 x 32 product's blocks: kc x nc of B (1 MiB) stays in L2. */
#define PACKED_KC 256
#define PACKED_NC 1024
/* AMX products from this K. A first layer's K of 18 or 36, padded to 32
 * or 64 on the tiles, ran there at 0.83-0.95x our fp32 kernels' speed
 * (256 and 128 rows by 784 columns), K = 48 at 1.15x, 64 at 1.4x (a test
 * program calling fg_gemm on one thread, two rounds; load average 1.0). */
#define AMX_MIN_K 64
#define AMX_MIN_M 96
#define AMX_MAX_M 512

static void build_contexts(void)
{
    for (int p = 0; p < FG_GEMM_NPATHS; p++)
        build_context(p);
    /* A tuning knob, not data: an unknown or unsupported value falls back to
     * the best path with a warning rather than stopping the program. */
    default_path = best_supported_path();
    unpacked_bound = fg_gemm_path_supported(FG_GEMM_AVX2) ? UNPACKED_BOUND : 0;
    const char *u = getenv("FLOWGRAD_GEMM_UNPACKED");
    if (u && *u && unpacked_bound > 0)
        unpacked_bound = atoi(u) > 0 ? atoi(u) : 0;
    unpacked_k_avx512 = UNPACKED_K_AVX512;
    u = getenv("FLOWGRAD_GEMM_UNPACKED_K");
    if (u && *u)
        unpacked_k_avx512 = atoi(u) > 0 ? atoi(u) : 0;
    packed_blocks = (fg_packed_blocks){PACKED_KC, PACKED_NC};
    u = getenv("FLOWGRAD_GEMM_PACKED");
    if (u && *u) {
        int kc = 0, nc = PACKED_NC;
        if (sscanf(u, "%d,%d", &kc, &nc) < 1 || kc <= 0 || nc <= 0)
            kc = 0;
        packed_blocks = (fg_packed_blocks){kc, round_up(nc, FG_AVX512_UNPACKED_NR)};
    }
    dot_min_k = DOT_MIN_K;
    u = getenv("FLOWGRAD_GEMM_DOT_K");
    if (u && *u)
        dot_min_k = atoi(u) > 0 ? atoi(u) : 0;
    amx_min_k = fg_amx_bf16_usable() ? AMX_MIN_K : 0;
    u = getenv("FLOWGRAD_GEMM_AMX");
    if (u && !strcmp(u, "0"))
        amx_min_k = 0;
    const char *s = getenv("FLOWGRAD_GEMM_KERNEL");
    if (s && *s) {
        int p = fg_gemm_path_from_name(s);
        if (p >= 0 && fg_gemm_path_supported(p))
            default_path = p;
        else if (p != FG_GEMM_AUTO)
            fprintf(stderr, "flowgrad: FLOWGRAD_GEMM_KERNEL=%s is not available "
                            "here, using %s\n", s, kernel_sets[default_path].name);
    }
}

int fg_gemm_set_amx(int on)
{
    pthread_once(&contexts_once, build_contexts);
    atomic_store(&amx_min_k, on && fg_amx_bf16_usable() ? AMX_MIN_K : 0);
    return atomic_load(&amx_min_k) > 0;
}

int fg_gemm_amx_on(void)
{
    pthread_once(&contexts_once, build_contexts);
    return atomic_load(&amx_min_k) > 0;
}

int fg_gemm_best_path(void)
{
    return best_supported_path();
}

int fg_gemm_set_path(int path)
{
    if (path != FG_GEMM_AUTO && !fg_gemm_path_supported(path))
        return fg_error("gemm: kernel path %s is not supported by this CPU",
                        fg_gemm_path_name(path));
    atomic_store(&forced_path, path);
    return FG_OK;
}

int fg_gemm_get_path(void)
{
    pthread_once(&contexts_once, build_contexts);
    int p = atomic_load(&forced_path);
    return p == FG_GEMM_AUTO ? default_path : p;
}

void fg_gemm_path_blocks(int path, int out[5])
{
    pthread_once(&contexts_once, build_contexts);
    memcpy(out, blocks[path], sizeof blocks[path]);
}

/* Strides of a dimension of length 1 are meaningless to the caller but BLIS
 * checks them for consistency; give such a dimension the stride a contiguous
 * matrix would have. */
static void normalize_strides(dim_t rows, dim_t cols, inc_t *rs, inc_t *cs)
{
    if (rows <= 1 && cols <= 1) {
        *rs = 1;
        *cs = 1;
    } else if (rows <= 1) {
        *rs = cols * (*cs < 0 ? -*cs : *cs);
    } else if (cols <= 1) {
        *cs = rows * (*rs < 0 ? -*rs : *rs);
    }
}

/* C = beta C without BLIS: beta == 0 must write zeros without reading C. */
static void scale_c(int M, int N, float beta, float *C, long rs_c, long cs_c)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float *c = C + i * rs_c + j * cs_c;
            *c = beta == 0.0f ? 0.0f : beta * *c;
        }
}

/* Rows of FMAs the AVX-512 kernel spends on m rows: it trims edge tiles to 4
 * or 8 rows, but pads columns to a full vector of NR. */
static long padded_rows(long m, int mr)
{
    long r = m % mr, pad = r == 0 ? 0 : r <= 4 ? 4 : r <= 8 ? 8 : mr;
    return m - r + pad;
}

/* With a small N (e.g. 18 columns: 16 + 2, the second vector almost empty)
 * the transposed kernel wastes less: there N falls on the trimmed rows. */
static int use_transposed_kernel(int path, int M, int N)
{
    const kernel_set *ks = &kernel_sets[path];
    if (!ks->ukr_t)
        return 0;
    long row = padded_rows(M, ks->mr) * ((N + ks->nr - 1) / ks->nr);
    long col = padded_rows(N, ks->mr) * ((M + ks->nr - 1) / ks->nr);
    return col * 10 < row * 9;
}

/* Register tiles a product of M x N spends with MR x NR tiles. */
static long tile_area(long m, long n, int mr, int nr)
{
    return ((m + mr - 1) / mr) * mr * ((n + nr - 1) / nr) * nr;
}

/* Paths without a transposed kernel (BLIS's own, AVX2, scalar) tile C in
 * MR x NR blocks with NR the wide side (6 x 16 on AVX2 Zen): a product with
 * few columns, such as the weight gradient of a narrow convolution (N = 18
 * or 36 against M of 128 or 256), pays for the unused part of its last
 * column tile, up to 44 % of the work at N = 18. Its transpose C^T = B^T A^T
 * puts those columns on the rows, where 18 and 36 are whole tiles of 6.
 * The transposed product goes to a small buffer and is added back into C,
 * which only pays when C is small against the work (weight gradients have
 * K in the thousands). Measured on AVX2 Zen, one thread (BENCHMARKS.md):
 * 256 x 18 x 12544 from 19.6 to 27.3 GFLOP/s, 128 x 36 x 12544 from 29.1 to
 * 39.8. */
enum { SWAP_MIN_K = 64, SWAP_MAX_C = 1 << 18 };

static int swap_pays(int path, int M, int N, int K)
{
    if (kernel_sets[path].ukr_t || K < SWAP_MIN_K || (long)M * N > SWAP_MAX_C)
        return 0;
    const int mr = blocks[path][0], nr = blocks[path][1];
    if (mr <= 0 || nr <= 0)
        return 0;
    return tile_area(N, M, mr, nr) * 10 < tile_area(M, N, mr, nr) * 9;
}

/* The buffers of a thread's products, kept, so that steady-state steps
 * touch no new pages, and freed when the thread ends: the transposed
 * product's result and the unpacked AVX-512 product's copy of A. */
typedef struct {
    float *swap, *packed_a, *packed_b;
    size_t swap_cap, packed_a_cap, packed_b_cap;
} thread_bufs;

static pthread_key_t bufs_key;
static pthread_once_t bufs_key_once = PTHREAD_ONCE_INIT;

static void thread_bufs_free(void *p)
{
    thread_bufs *b = p;
    free(b->swap);
    free(b->packed_a);
    free(b->packed_b);
    free(b);
}

static void bufs_key_create(void)
{
    if (pthread_key_create(&bufs_key, thread_bufs_free) != 0)
        fg_fatal("gemm", "cannot create the thread key of the products' buffers");
}

static thread_bufs *my_bufs(void)
{
    pthread_once(&bufs_key_once, bufs_key_create);
    thread_bufs *b = pthread_getspecific(bufs_key);
    if (!b) {
        b = fg_xcalloc(1, sizeof *b, "a thread's product buffers");
        if (pthread_setspecific(bufs_key, b) != 0)
            fg_fatal("gemm", "cannot keep a thread's product buffers");
    }
    return b;
}

static float *grow(float **data, size_t *cap, size_t count, const char *what)
{
    if (count > *cap) {
        *data = fg_xrealloc(*data, count * sizeof(float), what);
        *cap = count;
    }
    return *data;
}

static float *swap_buffer(size_t count)
{
    thread_bufs *b = my_bufs();
    return grow(&b->swap, &b->swap_cap, count, "a transposed product");
}

static float *packed_a_buffer(size_t count)
{
    thread_bufs *b = my_bufs();
    return grow(&b->packed_a, &b->packed_a_cap, count, "a copy of a product's A");
}

static float *packed_b_buffer(size_t count)
{
    thread_bufs *b = my_bufs();
    return grow(&b->packed_b, &b->packed_b_cap, count, "a copy of a product's B");
}

#define GEMM_SERIAL_WORK (1 << 20)

/* B of at most this many floats (1 MiB, one core's L2 here) stays in cache
 * while the unpacked kernel reads its strips. */
#define UNPACKED_CACHED_B ((size_t)1 << 18)

/* On AVX-512, a B beyond this many floats (2 MiB, more than the L2 of
 * the smaller AVX-512 cores) read in place by many rows of A over a long K
 * (both at least PACKED_MIN_SIDE) is packed instead: the whole-batch
 * products of a 256-wide layer (256 x 12544 x 256) ran at 0.86-0.89 of
 * OpenBLAS read in place, 1.01-1.09 packed, on one thread. Narrower
 * products, and the chunks of 784 columns Glow runs, are faster in place
 * (BENCHMARKS.md, "A packed 12 x 32 product"). */
#define UNPACKED_CACHED_B_AVX512 ((size_t)1 << 19)
#define PACKED_MIN_SIDE 192

/* Whether op(A) op(B) goes to the unpacked kernel: on the AVX2 paths (BLIS's
 * own context on an AVX2 CPU, or ours), when op(B) and C have unit column
 * stride (rows are vectors), for a short inner dimension, or for few rows
 * of a B that fits in cache. A long B with few rows goes to BLIS: read in
 * place from memory, each 16-column strip is K short bursts, slower than
 * BLIS's packed copy (BENCHMARKS.md, "Products without packing"). On the
 * AVX-512 path the rule is its own (UNPACKED_K_AVX512 above). */
static int unpacked_pays(int path, int M, int N, int K, inc_t cb, inc_t ccs)
{
    if (N < 16 || cb != 1 || ccs != 1)
        return 0;
    if (path == FG_GEMM_AVX512)
        return unpacked_k_avx512 > 0 && K <= unpacked_k_avx512 &&
               !(M >= PACKED_MIN_SIDE && K >= PACKED_MIN_SIDE &&
                 (size_t)K * (size_t)N > UNPACKED_CACHED_B_AVX512);
    if (path != FG_GEMM_BLIS && path != FG_GEMM_AVX2)
        return 0;
    return K <= unpacked_bound ||
           (M <= unpacked_bound && (size_t)K * (size_t)N <= UNPACKED_CACHED_B);
}

/* Whether op(A) op(B) goes to the dot-product kernel: on the AVX-512 path,
 * when both operands run along K with unit stride (a weight gradient), K
 * is long enough for the lane sums at the end to be a small part
 * (FLOWGRAD_GEMM_DOT_K, 0 off) and one side of C is narrow. */
static int dot_pays(int path, int M, int N, int K, inc_t ca, inc_t rb)
{
    return path == FG_GEMM_AVX512 && ca == 1 && rb == 1 && dot_min_k > 0 && K >= dot_min_k &&
           (M <= DOT_NARROW || N <= DOT_NARROW);
}

/* Whether op(A) op(B) goes to the packed 12 x 32 product: on the AVX-512
 * path, for row-stored C of 16 columns or more that the kernels above do
 * not take. */
static int packed_pays(int path, int N, inc_t ccs)
{
    return path == FG_GEMM_AVX512 && packed_blocks.kc > 0 && ccs == 1 && N >= 16;
}

static void gemm_packed(int M, int N, int K, float alpha, const float *A, inc_t ra, inc_t ca,
                        const float *B, inc_t rb, inc_t cb, float beta, float *C, inc_t rs_c,
                        int threads, const fg_row_affine *ep)
{
    float *pa = packed_a_buffer(fg_sgemm_packed_avx512_a_floats(&packed_blocks, M, K));
    float *pb = packed_b_buffer(fg_sgemm_packed_avx512_b_floats(&packed_blocks, N, K));
    fg_sgemm_packed_avx512(&packed_blocks, M, N, K, alpha, A, ra, ca, B, rb, cb, beta, C, rs_c,
                           threads, pa, pb, ep);
}

/* Whether op(A) op(B) goes to the AMX product: on the AVX-512 path of a
 * CPU with AMX, for row-stored C, op(A) and op(B) each with a unit
 * stride one way or the other (a layer's product and both its
 * gradients), K of at least amx_min_k and 96 to 512 rows. On one thread
 * against our fp32 kernels (bench_gemm; BENCHMARKS.md, "fp32 products on
 * AMX"): 1.25-1.45x for the products of a 256-wide layer on a chunk or a
 * whole batch, 0.98-1.3x for a 128-wide one's; in a test program, 1.3x
 * for 256 x 2048 x 2048, but slower with fewer rows, where splitting B
 * costs more than the rows save (36 x 784 x 256 at 0.7x), and for 2048^3
 * (0.7x; its split A, 3 MiB for each block of K, is larger than L2). */
static int amx_pays(int path, int M, int N, int K, inc_t ra, inc_t ca, inc_t rb, inc_t cb,
                    inc_t ccs)
{
    const int min_k = atomic_load_explicit(&amx_min_k, memory_order_relaxed);
    return path == FG_GEMM_AVX512 && min_k > 0 && K >= min_k &&
           (ca == 1 || ra == 1) && (cb == 1 || rb == 1) && ccs == 1 && M >= AMX_MIN_M &&
           M <= AMX_MAX_M && N >= 32;
}

/* The AMX product, its columns split between threads in blocks of 32;
 * each thread splits its own copy of A. */
static void gemm_amx(int M, int N, int K, float alpha, const float *A, inc_t ra, inc_t ca,
                     const float *B, inc_t rb, inc_t cb, float beta, float *C, inc_t rs_c,
                     int threads, const fg_row_affine *ep)
{
    const int blocks32 = (N + 31) / 32;
    if (threads > blocks32)
        threads = blocks32;
    #pragma omp parallel num_threads(threads) if (threads > 1)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int b0 = (int)((long)blocks32 * t / T), b1 = (int)((long)blocks32 * (t + 1) / T);
        const int j0 = b0 * 32, j1 = b1 * 32 < N ? b1 * 32 : N;
        if (j1 > j0) {
            const size_t fa = (fg_sgemm_amx_a_bytes(M, K) + 3) / 4;
            const size_t fb = (fg_sgemm_amx_b_bytes(j1 - j0, K) + 3) / 4;
            fg_sgemm_amx_bf16x6(M, K, alpha, A, ra, ca, B, rb, cb, beta, C, rs_c, j0, j1,
                                packed_a_buffer(fa), packed_b_buffer(fb), ep);
        }
    }
}

/* Which kernel runs op(A) op(B): the first of the dot-product kernel
 * (a weight gradient with a narrow side ran at 1.2x OpenBLAS there, 0.84x
 * on AMX), the AMX product, the unpacked one and the packed one that
 * takes it, else BLIS. */
static int route(int path, int M, int N, int K, inc_t ra, inc_t ca, inc_t rb, inc_t cb,
                 inc_t ccs)
{
    if (dot_pays(path, M, N, K, ca, rb))
        return FG_GEMM_ROUTE_DOT;
    if (amx_pays(path, M, N, K, ra, ca, rb, cb, ccs))
        return FG_GEMM_ROUTE_AMX;
    if (unpacked_pays(path, M, N, K, cb, ccs))
        return FG_GEMM_ROUTE_UNPACKED;
    if (packed_pays(path, N, ccs))
        return FG_GEMM_ROUTE_PACKED;
    return FG_GEMM_ROUTE_BLIS;
}

int fg_gemm_route(int trans_a, int trans_b, int M, int N, int K, long rs_a, long cs_a,
                  long rs_b, long cs_b, long rs_c, long cs_c)
{
    inc_t ars = rs_a, acs = cs_a, brs = rs_b, bcs = cs_b, crs = rs_c, ccs = cs_c;
    normalize_strides(trans_a ? K : M, trans_a ? M : K, &ars, &acs);
    normalize_strides(trans_b ? N : K, trans_b ? K : N, &brs, &bcs);
    normalize_strides(M, N, &crs, &ccs);
    return route(fg_gemm_get_path(), M, N, K, trans_a ? acs : ars, trans_a ? ars : acs,
                 trans_b ? bcs : brs, trans_b ? brs : bcs, ccs);
}

/* The dot-product kernel, its rows split between threads in blocks of 4. */
static void gemm_dot(int M, int N, int K, float alpha, const float *A, inc_t ra, const float *B,
                     inc_t cb, float beta, float *C, inc_t rs_c, inc_t cs_c, int threads)
{
    const int blocks = (M + 3) / 4;
    if (threads > blocks)
        threads = blocks;
    if (threads <= 1) {
        fg_sgemm_dot_avx512(M, N, K, alpha, A, ra, B, cb, beta, C, rs_c, cs_c);
        return;
    }
    #pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int i0 = 4 * (int)((long)blocks * t / T);
        int i1 = 4 * (int)((long)blocks * (t + 1) / T);
        if (i1 > M)
            i1 = M;
        if (i1 > i0)
            fg_sgemm_dot_avx512(i1 - i0, N, K, alpha, A + i0 * ra, ra, B, cb, beta,
                                C + i0 * rs_c, rs_c, cs_c);
    }
}

/* One thread's columns [j0, j1) of the unpacked product. */
static void unpacked_columns(int path, int M, int N, int K, float alpha, const float *A,
                             inc_t ra, inc_t ca, const float *B, inc_t rb, float beta, float *C,
                             inc_t rs_c, int j0, int j1, const float *panels,
                             const fg_row_affine *ep)
{
    if (path == FG_GEMM_AVX512) {
        float *pa = panels ? (float *)panels
                           : packed_a_buffer(fg_sgemm_unpacked_avx512_pack_floats(M, K));
        fg_sgemm_unpacked_avx512(M, K, alpha, A, ra, ca, B, rb, beta, C, rs_c, j0, j1, pa,
                                 panels != NULL, ep);
    } else {
        fg_sgemm_unpacked_avx2(M, N, K, alpha, A, ra, ca, B, rb, beta, C, rs_c, j0, j1);
        if (ep)
            fg_row_affine_apply(M, j1 - j0, C + j0, rs_c, ep);
    }
}

/* The unpacked product, its 16-column strips split between threads when it
 * is large enough to pay for them. */
static void gemm_unpacked(int path, int M, int N, int K, float alpha, const float *A, inc_t ra,
                          inc_t ca, const float *B, inc_t rb, float beta, float *C, inc_t rs_c,
                          int threads, const float *panels, const fg_row_affine *ep)
{
    const int strips = (N + 15) / 16;
    if (threads > strips)
        threads = strips;
    if (threads <= 1) {
        unpacked_columns(path, M, N, K, alpha, A, ra, ca, B, rb, beta, C, rs_c, 0, N, panels,
                         ep);
        return;
    }
    #pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int s0 = (int)((long)strips * t / T), s1 = (int)((long)strips * (t + 1) / T);
        const int j1 = s1 * 16 < N ? s1 * 16 : N;
        if (s1 > s0)
            unpacked_columns(path, M, N, K, alpha, A, ra, ca, B, rb, beta, C, rs_c, s0 * 16, j1,
                             panels, ep);
    }
}

void fg_row_affine_apply(int M, int N, float *C, long ldc, const fg_row_affine *ep)
{
    for (int i = 0; i < M; i++) {
        float *restrict c = C + (size_t)i * ldc;
        const float b = ep->bias[i], s = ep->scale[i];
        #pragma omp simd
        for (int j = 0; j < N; j++)
            c[j] = fg_row_affine_value(c[j], b, s, ep->relu);
    }
}

/* fg_gemm_ex, with ep (or NULL) applied to C's rows; C row-stored when ep
 * is given. panels (or NULL): op(A) already in the unpacked AVX-512
 * kernel's panels, for when that kernel runs the product. */
static void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                 const float *A, long rs_a, long cs_a,
                 const float *B, long rs_b, long cs_b, float beta,
                 float *C, long rs_c, long cs_c, const float *panels,
                 const fg_row_affine *ep)
{
    if (M < 0 || N < 0 || K < 0)
        fg_fatal("gemm", "negative size M=%d N=%d K=%d", M, N, K);
    if (M == 0 || N == 0)
        return;
    if (K == 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, rs_c, cs_c);
        if (ep)
            fg_row_affine_apply(M, N, C, rs_c, ep);
        return;
    }
    /* Strides describe A and B as stored: K x M when transposed. */
    inc_t ars = rs_a, acs = cs_a, brs = rs_b, bcs = cs_b, crs = rs_c, ccs = cs_c;
    normalize_strides(trans_a ? K : M, trans_a ? M : K, &ars, &acs);
    normalize_strides(trans_b ? N : K, trans_b ? K : N, &brs, &bcs);
    normalize_strides(M, N, &crs, &ccs);

    int path = fg_gemm_get_path();
    /* Below about a million multiply-adds (tens of microseconds) waking and
     * synchronizing a second thread costs more than it saves, and on a
     * loaded machine its barrier spins dominate: small products run on the
     * calling thread. */
    double work = (double)M * (double)N * (double)K;
    /* Inside a parallel region or a serial stretch the caller has already
     * split the work (conv2d splits samples, a chain its chunks): this
     * product runs on the calling thread. */
    int split_by_caller = fg_in_serial();
    int threads = work < GEMM_SERIAL_WORK || split_by_caller ? 1 : fg_get_threads();
    /* op(A) (i, k) at A + i ra + k ca; op(B) likewise */
    const inc_t ra = trans_a ? acs : ars, ca = trans_a ? ars : acs;
    const inc_t rb = trans_b ? bcs : brs, cb = trans_b ? brs : bcs;
    const int r = route(path, M, N, K, ra, ca, rb, cb, ccs);
    if (r != FG_GEMM_ROUTE_BLIS) {
        double t0 = fg_profile_enabled() ? fg_profile_now() : 0.0;
        if (r == FG_GEMM_ROUTE_AMX) {
            gemm_amx(M, N, K, alpha, A, ra, ca, B, rb, cb, beta, C, crs, threads, ep);
        } else if (r == FG_GEMM_ROUTE_DOT) {
            gemm_dot(M, N, K, alpha, A, ra, B, cb, beta, C, crs, ccs, threads);
            if (ep)
                fg_row_affine_apply(M, N, C, rs_c, ep);
        } else if (r == FG_GEMM_ROUTE_UNPACKED) {
            gemm_unpacked(path, M, N, K, alpha, A, ra, ca, B, rb, beta, C, crs, threads, panels,
                          ep);
        } else {
            gemm_packed(M, N, K, alpha, A, ra, ca, B, rb, cb, beta, C, crs, threads, ep);
        }
        if (t0 != 0.0)
            fg_profile_add_shared("kernel:gemm", fg_profile_now() - t0);
        return;
    }
    int swapped = swap_pays(path, M, N, K);
    float *c_out = C;
    if (swapped) {
        /* op(A) is M x K with element (i, k) at A + i ra + k ca; as the
         * right operand of B^T A^T it is read as its transpose, K x M, with
         * the two strides exchanged; likewise op(B). T = alpha op(B)^T
         * op(A)^T is row-major N x M. */
        inc_t ra = trans_a ? acs : ars, ca = trans_a ? ars : acs;
        inc_t rb = trans_b ? bcs : brs, cb = trans_b ? brs : bcs;
        const float *a_op = A;
        A = B;
        B = a_op;
        ars = cb; acs = rb;   /* op(B)^T: N x K */
        brs = ca; bcs = ra;   /* op(A)^T: K x M */
        trans_a = trans_b = 0;
        int m_op = M;
        M = N;
        N = m_op;
        C = swap_buffer((size_t)M * N);
        crs = N;
        ccs = 1;
    }
    const int transposed = use_transposed_kernel(path, M, N);
    cntx_t *cx = transposed ? &contexts_t[path] : &contexts[path];
    rntm_t rntm;
    bli_rntm_init_from_global(&rntm);
    bli_rntm_set_num_threads(threads, &rntm);
    if (path != FG_GEMM_BLIS)
        bli_rntm_disable_l3_sup(&rntm);
    double t0 = fg_profile_enabled() ? fg_profile_now() : 0.0;
    float beta_run = swapped ? 0.0f : beta;
    bli_sgemm_ex(trans_a ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                 trans_b ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                 M, N, K, &alpha, (float *)A, ars, acs, (float *)B, brs, bcs,
                 &beta_run, C, crs, ccs, cx, &rntm);
    if (swapped) {
        /* C (N x M now) gets T^T; beta 0 never reads C. */
        for (int i = 0; i < N; i++)
            for (int j = 0; j < M; j++) {
                float *c = c_out + i * rs_c + j * cs_c;
                float t = C[(size_t)j * N + i];
                *c = beta == 0.0f ? t : t + beta * *c;
            }
    }
    if (ep)
        fg_row_affine_apply(swapped ? N : M, swapped ? M : N, c_out, rs_c, ep);
    if (t0 != 0.0)  /* wall time: a share of the region when threads split it */
        fg_profile_add_shared("kernel:gemm", fg_profile_now() - t0);
}

void fg_gemm_ex(int trans_a, int trans_b, int M, int N, int K, float alpha,
                const float *A, long rs_a, long cs_a,
                const float *B, long rs_b, long cs_b, float beta,
                float *C, long rs_c, long cs_c)
{
    gemm(trans_a, trans_b, M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c,
         NULL, NULL);
}

void fg_gemm_row_affine(int trans_a, int M, int N, int K, float alpha, const float *A,
                        long lda, const float *B, long ldb, float beta, float *C, long ldc,
                        const fg_row_affine *ep)
{
    gemm(trans_a, 0, M, N, K, alpha, A, lda, 1, B, ldb, 1, beta, C, ldc, 1, NULL, ep);
}

size_t fg_gemm_prepared_floats(int M, int K)
{
    if (fg_gemm_get_path() != FG_GEMM_AVX512 || unpacked_k_avx512 <= 0 || K > unpacked_k_avx512)
        return 0;
    return fg_sgemm_unpacked_avx512_pack_floats(M, K);
}

fg_gemm_prepared fg_gemm_prepare_a(int trans_a, int M, int K, const float *A, long lda,
                                   float *buf)
{
    fg_gemm_prepared a = {trans_a, M, K, fg_gemm_get_path(), A, lda, NULL};
    if (buf && fg_gemm_prepared_floats(M, K) > 0) {
        fg_sgemm_unpacked_avx512_pack(M, K, A, trans_a ? 1 : lda, trans_a ? lda : 1, buf);
        a.panels = buf;
    }
    return a;
}

void fg_gemm_row_affine_prepared(const fg_gemm_prepared *a, int N, float alpha, const float *B,
                                 long ldb, float beta, float *C, long ldc,
                                 const fg_row_affine *ep)
{
    /* Panels made for another path (the path changed since) are not used. */
    const float *panels = a->path == fg_gemm_get_path() ? a->panels : NULL;
    gemm(a->trans_a, 0, a->M, N, a->K, alpha, a->A, a->lda, 1, B, ldb, 1, beta, C, ldc, 1,
         panels, ep);
}

void fg_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc)
{
    fg_gemm_ex(trans_a, trans_b, M, N, K, alpha, A, lda, 1, B, ldb, 1, beta,
               C, ldc, 1);
}
