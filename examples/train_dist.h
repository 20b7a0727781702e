/* flowgrad train over several processes (mpirun -np N): the configured batch
 * is global, each rank trains on its contiguous shard of every batch, and
 * gradients, losses, test bits/dim and actnorm's init statistics are reduced
 * so that N ranks follow the run of one process at the same batch (the
 * library trainer and fg_model_eval_bpd_ranks do the reducing). Alone (no
 * mpirun, or no MPI in the build) every call is a no-op. */
#ifndef FLOWGRAD_TRAIN_DIST_H
#define FLOWGRAD_TRAIN_DIST_H

#include "examples/cli.h"

/* Starts MPI when launched by mpirun, routes actnorm's init statistics
 * through the all-reduce, and, when threads_given is 0, shares the machine's
 * cores among the ranks on it. FG_ERR with a message on failure. */
int dist_start(int threads_given);
/* 1 on the rank that prints, writes metrics, samples and checkpoints. */
int dist_is_root(void);
/* Ends MPI. After a failure (status != 0) it stops every rank at once, so
 * none waits for a peer that left; `agreed` says every rank ends here with
 * the same status (a stop all agreed on), so MPI finalizes normally.
 * Returns status. */
int dist_end(int status, int agreed);

#endif
