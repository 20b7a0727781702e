/* flowgrad tensor layer: storage, shapes, RNG, kernels, GEMM, convolution,
 * small dense linear algebra. Knows nothing of gradients.
 *
 * Conventions: float32, contiguous, row-major; images are NCHW. Reductions
 * accumulate in double. Kernels take raw pointers and sizes so that any layer
 * above can call them on its own buffers. */
#ifndef FLOWGRAD_TENSOR_H
#define FLOWGRAD_TENSOR_H

#include "tensor/export.h"

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FG_MAX_DIMS 4

/* ---------------------------------------------------------------- errors */

/* Input from outside never aborts: functions return FG_OK or FG_ERR and the
 * message (thread-local) says where and what was expected. fg_error may
 * quote the previous message, fg_error("%s: %s", path, fg_last_error()),
 * to add where it happened. */
enum { FG_OK = 0, FG_ERR = -1 };
FG_API int fg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
FG_API int fg_verror(const char *fmt, va_list ap);
FG_API const char *fg_last_error(void);
FG_API void fg_clear_error(void);

/* A broken internal invariant: prints "flowgrad: OP: message" and aborts. */
FG_API void fg_fatal(const char *op, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));
#define FG_CHECK(cond, op, ...) \
    do { if (!(cond)) fg_fatal((op), __VA_ARGS__); } while (0)

/* Allocation that stops when the system has no memory left: prints
 * "flowgrad: out of memory (malloc): cannot allocate N bytes for WHAT" and
 * exits at once with status FG_EXIT_OUT_OF_MEMORY (no signal, no atexit
 * handlers). Memory whose size comes from a file is allocated by the
 * readers with a recoverable error instead (FG_ERR naming file and size). */
#define FG_EXIT_OUT_OF_MEMORY 3
FG_API void *fg_xmalloc(size_t bytes, const char *what);
FG_API void *fg_xcalloc(size_t n, size_t size, const char *what);
FG_API void *fg_xrealloc(void *p, size_t bytes, const char *what);
/* 64-byte aligned; free with fg_aligned_free. */
FG_API void *fg_aligned_alloc(size_t bytes, const char *what);
FG_API void fg_aligned_free(void *p);

/* ---------------------------------------------------------------- threads */

/* One setting for BLIS and OpenMP alike. The default comes from the
 * environment variable FLOWGRAD_THREADS, else the number of online cores. */
FG_API void fg_set_threads(int n);
FG_API int fg_get_threads(void);
/* A stretch of work on the calling thread alone: until the matching
 * fg_serial_end, its products and elementwise loops start no threads. For
 * callers that split work between threads themselves and have one share
 * left (a convolution chain of one chunk): two threads on one small
 * product each wait at its barriers longer than the product takes, and on
 * a busy machine far longer. Nests; pass fg_serial_end what begin returned. */
FG_API int fg_serial_begin(void);
FG_API void fg_serial_end(int saved);
/* Whether the calling thread is inside a parallel region or a serial stretch. */
FG_API int fg_in_serial(void);
/* For a program's main, first thing: unless the environment sets
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT, sets a short GOMP_SPINCOUNT and starts
 * the program again with the same argv (libgomp reads its settings only
 * when it loads). Returns only when it does not. Idle OpenMP threads then
 * sleep soon instead of spinning, which on a busy machine keeps a
 * multi-threaded run from running many times slower than one thread. */
FG_API void fg_short_spin_waits(char **argv);
/* Element count above which elementwise loops use OpenMP. */
#define FG_PARALLEL_THRESHOLD 32768

/* ---------------------------------------------------------------- arena */

/* Bump allocator for the intermediates of one step. Reset is O(1) and keeps
 * the memory, so a loop of any length reaches a flat footprint. Chunks are
 * never moved, so pointers stay valid until the next reset. */
typedef struct fg_arena fg_arena;
FG_API fg_arena *fg_arena_create(size_t chunk_bytes);
FG_API void fg_arena_destroy(fg_arena *a);
FG_API void *fg_arena_alloc(fg_arena *a, size_t bytes);   /* 64-byte aligned */
FG_API void *fg_arena_calloc(fg_arena *a, size_t bytes);
FG_API void fg_arena_reset(fg_arena *a);
/* A reset that also gives every chunk but the first back to the system:
 * for when the steps to come need much less than those before (the next
 * steps fault their pages in again). */
FG_API void fg_arena_trim(fg_arena *a);
FG_API size_t fg_arena_used(const fg_arena *a);     /* bytes handed out since reset */
FG_API size_t fg_arena_reserved(const fg_arena *a); /* bytes held from the system */
FG_API size_t fg_arena_peak(const fg_arena *a);     /* most bytes ever in use */
/* A position in an arena: rewinding to it gives back everything allocated
 * after it (in O(1), keeping the memory), so a loop of sub-steps inside one
 * step reuses the same bytes. Pointers from before the mark stay valid;
 * pointers from after it must not be used again. */
typedef struct fg_arena_mark {
    void *chunk;
    size_t offset, used;
} fg_arena_mark;
FG_API fg_arena_mark fg_arena_mark_now(const fg_arena *a);
FG_API void fg_arena_rewind(fg_arena *a, const fg_arena_mark *m);

/* ---------------------------------------------------------------- tensors */

typedef struct fg_tensor {
    float *data;
    int ndim;
    int shape[FG_MAX_DIMS];
    int owns;            /* 1: data is ours to free (heap tensors) */
} fg_tensor;

FG_API size_t fg_shape_numel(int ndim, const int *shape);
FG_API size_t fg_numel(const fg_tensor *t);
FG_API int fg_same_shape(const fg_tensor *a, const fg_tensor *b);
/* "(2, 3, 4, 4)" into buf; returns buf. */
FG_API const char *fg_shape_str(const fg_tensor *t, char *buf, size_t n);
#define FG_SHAPE_STR_LEN 64

/* Heap tensors live until fg_tensor_free. */
FG_API fg_tensor *fg_tensor_new(int ndim, const int *shape);     /* zeroed */
FG_API fg_tensor *fg_tensor_new4(int n, int c, int h, int w);
FG_API fg_tensor *fg_tensor_clone(const fg_tensor *t);
FG_API void fg_tensor_free(fg_tensor *t);
/* Arena tensors die with the arena's next reset. Data is not zeroed. */
FG_API fg_tensor *fg_tensor_arena(fg_arena *a, int ndim, const int *shape);
/* A view of a caller's buffer; the caller keeps ownership. */
FG_API fg_tensor fg_tensor_wrap(float *data, int ndim, const int *shape);

FG_API void fg_tensor_zero(fg_tensor *t);
FG_API void fg_tensor_fill(fg_tensor *t, float v);
FG_API void fg_tensor_copy(fg_tensor *dst, const fg_tensor *src); /* same numel */

/* ---------------------------------------------------------------- RNG */

/* Philox4x32-10: the n-th number of a stream depends only on the key and the
 * counter, never on how many threads draw it. Each call consumes counters for
 * the numbers it draws, so successive calls continue the stream. */
typedef struct fg_rng {
    uint64_t key;
    uint64_t counter;
    /* Set by fg_rng_part (0 parts: the whole batch). */
    int part_first, part_count, part_total;
} fg_rng;
FG_API void fg_rng_seed(fg_rng *r, uint64_t seed);
/* An independent stream (e.g. per MPI rank or per layer) from a seed. */
FG_API void fg_rng_seed_stream(fg_rng *r, uint64_t seed, uint64_t stream);
/* r for images [first, first + count) of a batch of total images, so that
 * parts of a batch computed apart draw what the whole batch would: each
 * uniform or normal draw then holds count images' worth of values (count
 * d; a draw that is not a multiple of count stops), receives the values a
 * draw of total d from r would give those images, and moves the counter
 * past all total d. */
FG_API fg_rng fg_rng_part(const fg_rng *r, int first, int count, int total);
FG_API void fg_rng_uniform(fg_rng *r, float *out, size_t n);   /* [0, 1) */
FG_API void fg_rng_normal(fg_rng *r, float *out, size_t n);    /* N(0, 1) */
FG_API void fg_rng_normal_double(fg_rng *r, double *out, size_t n);
FG_API uint32_t fg_rng_u32(fg_rng *r);
/* Fisher-Yates permutation of 0..n-1. */
FG_API void fg_rng_permutation(fg_rng *r, int *perm, int n);

/* ---------------------------------------------------------------- elementwise
 * y may alias an input. OpenMP above FG_PARALLEL_THRESHOLD. */
FG_API void fg_k_fill(size_t n, float v, float *y);
FG_API void fg_k_copy(size_t n, const float *x, float *y);
FG_API void fg_k_add(size_t n, const float *a, const float *b, float *y);
FG_API void fg_k_sub(size_t n, const float *a, const float *b, float *y);
FG_API void fg_k_mul(size_t n, const float *a, const float *b, float *y);
FG_API void fg_k_div(size_t n, const float *a, const float *b, float *y);
FG_API void fg_k_scale(size_t n, float s, const float *x, float *y);      /* y = s x */
FG_API void fg_k_axpy(size_t n, float s, const float *x, float *y);       /* y += s x */
FG_API void fg_k_add_scalar(size_t n, float s, const float *x, float *y); /* y = x + s */
FG_API void fg_k_exp(size_t n, const float *x, float *y);
FG_API void fg_k_log(size_t n, const float *x, float *y);
FG_API void fg_k_sigmoid(size_t n, const float *x, float *y);
FG_API void fg_k_log_sigmoid(size_t n, const float *x, float *y);  /* stable */
FG_API void fg_k_relu(size_t n, const float *x, float *y);
FG_API void fg_k_square(size_t n, const float *x, float *y);
/* y += a * b (accumulating products; used by backward rules) */
FG_API void fg_k_mul_acc(size_t n, const float *a, const float *b, float *y);
/* Per-channel broadcast over (N, C, HW): y[n,c,i] = x[n,c,i] op v[c]. */
FG_API void fg_k_add_channel(int N, int C, int HW, const float *x, const float *v, float *y);
FG_API void fg_k_mul_channel(int N, int C, int HW, const float *x, const float *v, float *y);
FG_API int fg_k_all_finite(size_t n, const float *x);

/* ---------------------------------------------------------------- splines
 * The monotonic rational-quadratic spline of Durkan et al. (2019), "Neural
 * Spline Flows", elementwise (tensor/rq_spline.c). K bins cover
 * [-bound, bound] in x and in y; outside it the map is the identity, so the
 * derivatives at both ends are 1. Each element has Q = 3K - 1 raw
 * parameters: K widths, K heights (each a softmax, then floored so that no
 * bin is narrower than FG_RQ_MIN_BIN of the range) and K - 1 inner knot
 * derivatives (FG_RQ_MIN_DERIVATIVE + softplus(r + c), c such that r = 0
 * gives 1: all-zero parameters are the identity). All arithmetic is in
 * double; the inverse solves the bin's quadratic in the form
 * 2c / (-b - sqrt(b^2 - 4ac)), which does not cancel.
 *
 * Layout: v (N, C, P) with P the product of the trailing dimensions, h
 * (N, C Q, P) with element (n, c, i)'s parameters in channels
 * c Q .. c Q + Q - 1 of h: widths, heights, derivatives. mask (N, C, P) or
 * NULL: where it is 0 the map is the identity (checkerboard couplings). */
#define FG_RQ_MAX_BINS 64
#define FG_RQ_MIN_BIN 1e-3
#define FG_RQ_MIN_DERIVATIVE 1e-3
typedef struct fg_rq_spline {
    int bins;       /* K, 1..FG_RQ_MAX_BINS */
    float bound;    /* B > 0 */
} fg_rq_spline;
/* Q = 3K - 1, the raw parameters per element. */
FG_API int fg_rq_spline_params(const fg_rq_spline *s);
/* dir > 0: y = s(v); dir < 0: y = s^-1(v). lad (N C P, may be NULL): log
 * s'(x) at the point x on the forward side (v when dir > 0, y when
 * dir < 0); 0 in the tails and where masked. A NaN or infinite v gives NaN
 * there in y and lad. Returns the number of such entries. */
FG_API size_t fg_k_rq_spline(const fg_rq_spline *s, int dir, int N, int C, size_t P,
                             const float *v, const float *h, const float *mask, float *y,
                             float *lad);
/* Adds to gv and gh (either may be NULL) the gradient with respect to v and
 * h of sum(gy * y) + sum_n gl[n] * sum_i lad[n, i], for y and lad as
 * fg_k_rq_spline gives them; gy or gl may be NULL (no such term). */
FG_API void fg_k_rq_spline_backward(const fg_rq_spline *s, int dir, int N, int C, size_t P,
                                    const float *v, const float *h, const float *mask,
                                    const float *gy, const float *gl, float *gv, float *gh);

/* ---------------------------------------------------------------- reductions
 * All accumulate in double. */
FG_API double fg_k_sum(size_t n, const float *x);
FG_API double fg_k_dot(size_t n, const float *a, const float *b);
FG_API double fg_k_max_abs_diff(size_t n, const float *a, const float *b);
/* out[n] = sum over D elements of sample n */
FG_API void fg_k_sum_per_sample(int N, size_t D, const float *x, double *out);
/* out[c] = sum over N and HW of channel c; out2 (may be NULL) sums squares */
FG_API void fg_k_sum_per_channel(int N, int C, int HW, const float *x, double *out, double *out2);
/* The upper of Tukey's far-out fences, Q3 + 3 (Q3 - Q1), of v[0..n) when
 * some value lies above it; else (or with fewer than 4 values) INFINITY.
 * Sorts v. */
FG_API double fg_far_out_fence(double *v, int n);

/* ---------------------------------------------------------------- GEMM
 * The one entry point for every matrix product in flowgrad.
 * C = alpha op(A) op(B) + beta C with general strides (rs: row stride,
 * cs: column stride, in elements). op(A) is M x K, op(B) is K x N, C is M x N.
 * When beta is 0, C is not read (NaN in C does not propagate). */
FG_API void fg_gemm_ex(int trans_a, int trans_b, int M, int N, int K, float alpha,
                const float *A, long rs_a, long cs_a,
                const float *B, long rs_b, long cs_b, float beta,
                float *C, long rs_c, long cs_c);
/* Row-major convenience: lda/ldb/ldc are row strides of the stored matrices. */
FG_API void fg_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc);

/* ---------------------------------------------------------------- conv2d
 * Stride 1, 'same' zero padding, square kernel k in {1, 3} (any odd k works).
 * x (N, Ci, H, W), w (Co, Ci, k, k), bias (Co) or NULL, y (N, Co, H, W).
 * scratch: an arena for the im2col buffer (may be NULL for k = 1). */
FG_API void fg_conv2d_forward(int N, int Ci, int H, int W, int Co, int k,
                       const float *x, const float *w, const float *bias,
                       float *y, fg_arena *scratch);
/* dx += conv2d_transpose(dy, w) */
FG_API void fg_conv2d_backward_input(int N, int Ci, int H, int W, int Co, int k,
                              const float *dy, const float *w, float *dx,
                              fg_arena *scratch);
/* dw += sum_n dy (x) x ; db (may be NULL) += sum of dy per output channel */
FG_API void fg_conv2d_backward_weight(int N, int Ci, int H, int W, int Co, int k,
                               const float *dy, const float *x, float *dw,
                               float *db, fg_arena *scratch);
/* The same convolutions on a batch stored channel-major: x (Ci, N, H, W),
 * y and dy (Co, N, H, W), each channel of the batch one contiguous row, so
 * that every layer is one GEMM over the whole batch (tensor/conv_cm.c).
 * Weights and contracts as above, except that the input gradient is
 * stored over dx (never read) when accumulate is 0. */
FG_API void fg_conv2d_cm_forward(int N, int Ci, int H, int W, int Co, int k,
                          const float *x, const float *w, const float *bias,
                          float *y, fg_arena *scratch);
FG_API void fg_conv2d_cm_backward_input(int N, int Ci, int H, int W, int Co, int k,
                                 const float *dy, const float *w, float *dx, int accumulate,
                                 fg_arena *scratch);
FG_API void fg_conv2d_cm_backward_weight(int N, int Ci, int H, int W, int Co, int k,
                                  const float *dy, const float *x, float *dw,
                                  float *db, fg_arena *scratch);
/* Bytes a channel-major convolution's column matrix may take; larger
 * batches are processed a run of samples at a time. Returns the previous
 * budget (default 32 MiB). */
FG_API size_t fg_conv_set_column_budget(size_t bytes);
/* (Ci, H, W) -> (Ci*k*k, H*W) columns, zero padding. */
FG_API void fg_im2col(int Ci, int H, int W, int k, const float *x, float *col);
/* Accumulates columns back into x (the adjoint of im2col). */
FG_API void fg_col2im(int Ci, int H, int W, int k, const float *col, float *x);

/* ---------------------------------------------------------------- layout */

/* Space-to-depth by 2: (N, C, H, W) -> (N, 4C, H/2, W/2); output channel
 * c*4 + i*2 + j holds x[c, 2h+i, 2w+j] (Glow's _squeeze2d order). */
FG_API void fg_k_squeeze2d(int N, int C, int H, int W, const float *x, float *y);
FG_API void fg_k_unsqueeze2d(int N, int C, int H, int W, const float *x, float *y); /* C, H, W of the squeezed input */

/* ---------------------------------------------------------------- linalg
 * Small dense matrices in double, row-major n x n. Return FG_OK, or FG_ERR
 * with a message for a singular matrix. */
FG_API int fg_lu_decompose(int n, double *a, int *piv, int *sign); /* in place, PA = LU */
FG_API int fg_mat_inverse(int n, const double *a, double *inv);
/* cond_1(W) = |W|_1 |W^-1|_1 of a float n x n matrix, computed in double;
 * INFINITY if W is singular. */
FG_API double fg_mat_condition_1(int n, const float *w);
/* log|det a| and the sign of det a (0 if singular). */
FG_API void fg_mat_slogdet(int n, const double *a, double *logabsdet, int *sign);
/* Householder QR: q (n x n) orthogonal, r (n x n) upper triangular. */
FG_API void fg_qr(int n, const double *a, double *q, double *r);
/* Haar-distributed random orthogonal matrix (QR of a Gaussian matrix with
 * the signs of diag(R) folded into Q). */
FG_API void fg_random_orthogonal(int n, fg_rng *rng, double *q);
FG_API void fg_matmul_double(int n, const double *a, const double *b, double *c);


/* ---------------------------------------------------------------- profile
 * FLOWGRAD_PROFILE=1 turns on named time counters, printed at exit. Names
 * are static strings: "kernel:..." for tensor kernels (gemm, im2col,
 * col2im), "op:NAME" and "op:NAME (backward)" for autograd ops,
 * "optimizer" for parameter updates. */
FG_API int fg_profile_enabled(void);
FG_API double fg_profile_now(void);
FG_API void fg_profile_add(const char *name, double seconds);
/* The same for time a thread spent beside the others of its OpenMP team
 * (a share of one kernel, or a part of a batch computed at once): added as
 * the thread's share of the wall time, seconds / the threads working side
 * by side (the team sizes of all enclosing levels multiplied), so that the
 * counters still add up to wall time. Outside a team it is
 * fg_profile_add. */
FG_API void fg_profile_add_shared(const char *name, double seconds);
FG_API double fg_profile_seconds(const char *name);
/* The counters summed by category, in seconds. Kernel counters run inside
 * op counters, so `other_ops` is op time less kernel time. */
typedef struct fg_profile_totals {
    double gemm, columns;   /* kernel:gemm; kernel:im2col + kernel:col2im */
    double other_ops;       /* elementwise, reductions, layout */
    double ops;             /* every op counter, kernels inside them included */
    double optimizer;
} fg_profile_totals;
FG_API void fg_profile_get_totals(fg_profile_totals *t);
FG_API void fg_profile_report(FILE *f);
/* Runs stmt and, when profiling, adds its time to the named counter. */
#define FG_TIMED(name, stmt) do { \
        double fg_t0_ = fg_profile_enabled() ? fg_profile_now() : 0.0; \
        stmt; \
        if (fg_t0_ != 0.0) fg_profile_add((name), fg_profile_now() - fg_t0_); \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
