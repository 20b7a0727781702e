/* flowgrad train over several processes (mpirun -np N): the configured batch
 * is global, each rank trains on its contiguous shard of every batch, and
 * gradients, losses, test bits/dim and actnorm's init statistics are reduced
 * so that N ranks follow the run of one process at the same batch. Alone
 * (no mpirun, or no MPI in the build) every call is a no-op or the identity. */
#ifndef FLOWGRAD_TRAIN_DIST_H
#define FLOWGRAD_TRAIN_DIST_H

#include "examples/cli.h"

/* Starts MPI when launched by mpirun, routes actnorm's init statistics
 * through the all-reduce, and, when threads_given is 0, shares the machine's
 * cores among the ranks on it. FG_ERR with a message on failure. */
int dist_start(int threads_given);
/* FG_ERR unless the global batch divides evenly among the ranks. */
int dist_check_batch(int batch);
/* Offset of this rank's shard in a global batch of n. */
int dist_shard_first(int n);
/* Images of a global batch of n this rank trains on. */
int dist_shard_size(int n);
/* Makes rng draw the noise of sample `first` onward: noise is indexed by the
 * global position in the batch, so the shards together see the noise one
 * process would draw for the whole batch. */
void dist_skip_noise(fg_rng *rng, const fg_dataset *d, int first);
/* Replaces v[0..n) by its mean over ranks. */
void dist_mean(double *v, int n);
/* Mean bits/dim over the test set, each rank evaluating its contiguous part. */
double dist_eval_bpd(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                     uint64_t seed);
/* Gives every rank rank 0's model state, optimizer moments and EMA averages
 * (ema may be NULL), whether built from the seed or loaded from --resume. */
void dist_broadcast_start(const fg_state_list *model, fg_optim *o, fg_ema *ema);
/* 1 on the rank that prints, writes metrics, samples and checkpoints. */
int dist_is_root(void);
/* The stop signal every rank acts on, from each rank's own (0: none): a
 * signal that reached any rank stops all of them after the same step
 * (SIGTERM wins over SIGINT). Every rank must call it at the same point. */
int dist_agree_stop(int local_signal);
/* Ends MPI. After a failure (status != 0) it stops every rank at once, so
 * none waits for a peer that left; `agreed` says every rank ends here with
 * the same status (a stop all agreed on), so MPI finalizes normally.
 * Returns status. */
int dist_end(int status, int agreed);

#endif
