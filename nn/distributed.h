/* flowgrad nn distributed: data-parallel training over MPI. */
#ifndef FLOWGRAD_NN_DISTRIBUTED_H
#define FLOWGRAD_NN_DISTRIBUTED_H

#include "nn/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- data parallelism
 * Data-parallel training over MPI: one process per rank, each with a full copy
 * of the model. Built without MPI (configure --without-mpi), or run without an
 * MPI launcher (no mpirun environment), the same calls describe one process:
 * rank 0 of 1, and every reduction leaves its input as it is. Every rank must
 * make the collective calls (all but rank/size) in the same order. Errors in
 * MPI are fatal (MPI_ERRORS_ARE_FATAL): a rank that dies stops the job. */
/* Starts MPI when launched by mpirun (idempotent); FG_ERR if it cannot. */
FG_API int fg_dist_init(void);
FG_API void fg_dist_finalize(void);
FG_API int fg_dist_rank(void);
FG_API int fg_dist_size(void);
/* 1 when the library was built with MPI. */
FG_API int fg_dist_available(void);
/* Stops every rank with this exit status (exit() when alone). */
FG_API void fg_dist_abort(int status) __attribute__((noreturn));
/* In-place sum of v[0..n) over all ranks, in double; ctx unused, so the
 * function fits a reducer callback such as fg_actnorm_set_reducer's. */
FG_API void fg_dist_sum(double *v, int n, void *ctx);
/* In-place maximum of v[0..n) over all ranks. */
FG_API void fg_dist_max(double *v, int n);
/* Replaces v[0..n) by its mean over ranks. */
FG_API void fg_dist_mean(double *v, int n);
/* The largest of every rank's v: a stop request (a signal number, SIGTERM
 * over SIGINT) that reached any rank stops all of them at the same step. */
FG_API int fg_dist_agree_max(int v);
/* FG_ERR unless a global batch divides evenly among the ranks. */
FG_API int fg_dist_check_batch(int batch);
/* This rank's contiguous shard of a global batch of n: its offset and size. */
FG_API int fg_dist_shard_first(int n);
FG_API int fg_dist_shard_size(int n);
/* Copies every entry (parameters and buffers) from rank 0 to the others. */
FG_API void fg_dist_broadcast_state(const fg_state_list *l);
/* Replaces each parameter gradient by its mean over ranks, with one
 * MPI_Allreduce on a flat float32 buffer; returns the bytes of that buffer
 * (4 x parameter count), 0 when alone. */
FG_API size_t fg_dist_average_grads(const fg_state_list *l);
/* FG_OK when all ranks hold bit-identical values in l; FG_ERR otherwise. */
FG_API int fg_dist_check_same(const fg_state_list *l);

#ifdef __cplusplus
}
#endif
#endif
