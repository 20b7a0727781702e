/* When a loop opens an OpenMP team.
 *
 * libgomp starts a team for every parallel construct it reaches, even when
 * the construct's if clause is false, when the team would have one thread
 * and when it is nested inside another team (where it runs on one thread
 * anyway), and it ends each such team with a futex wake: a system call. The
 * per-plane kernels of a Glow step reach small constructs thousands of
 * times (one K8 training step on one thread made about 25,000 of these
 * calls, 7 % of its time in the kernel; BENCHMARKS.md, "Teams that never
 * run in parallel"). So kernels ask first and, when a team would not run in
 * parallel, take a plain loop that reaches no construct at all.
 *
 * Threading never changes a result here: the loops written with these
 * macros give each element (or each plane, or each channel's sum) to one
 * thread, whole, so the two branches compute the same values. */
#ifndef FG_TENSOR_PARALLEL_INTERNAL_H
#define FG_TENSOR_PARALLEL_INTERNAL_H

#include "tensor/tensor.h"

#include <omp.h>

/* A new team would run in parallel: the work is above the threshold, no
 * team is running already (nested teams get one thread) and more than one
 * thread is allowed (fg_serial_begin allows one). */
static inline int fg_parallel_pays(size_t work)
{
    return work > FG_PARALLEL_THRESHOLD && omp_get_level() == 0 && omp_get_max_threads() > 1;
}

/* for (size_t i = 0; i < n; i++) BODY, vectorized, threaded when it pays.
 * BODY is a statement list without pragmas. */
#define FG_FOR_SIMD(i, n, ...)                                                   \
    do {                                                                         \
        const size_t fg_n_ = (n);                                                \
        if (fg_parallel_pays(fg_n_)) {                                           \
            _Pragma("omp parallel for simd schedule(static)")                    \
            for (size_t i = 0; i < fg_n_; i++) { __VA_ARGS__; }                  \
        } else {                                                                 \
            _Pragma("omp simd")                                                  \
            for (size_t i = 0; i < fg_n_; i++) { __VA_ARGS__; }                  \
        }                                                                        \
    } while (0)

/* The same without vectorization (loops that call libm per element). */
#define FG_FOR(i, n, ...)                                                        \
    do {                                                                         \
        const size_t fg_n_ = (n);                                                \
        if (fg_parallel_pays(fg_n_)) {                                           \
            _Pragma("omp parallel for schedule(static)")                         \
            for (size_t i = 0; i < fg_n_; i++) { __VA_ARGS__; }                  \
        } else {                                                                 \
            for (size_t i = 0; i < fg_n_; i++) { __VA_ARGS__; }                  \
        }                                                                        \
    } while (0)

/* for (long i = 0; i < count; i++) CALL, where CALL handles one item (a
 * plane, a channel) whole and WORK counts the elements of all items; the
 * item's function holds its own vector pragmas. */
#define FG_FOR_ITEMS(work, i, count, ...)                                        \
    do {                                                                         \
        const long fg_count_ = (count);                                          \
        if (fg_parallel_pays(work)) {                                            \
            _Pragma("omp parallel for schedule(static)")                         \
            for (long i = 0; i < fg_count_; i++) { __VA_ARGS__; }                \
        } else {                                                                 \
            for (long i = 0; i < fg_count_; i++) { __VA_ARGS__; }                \
        }                                                                        \
    } while (0)

#endif
