/* Guards around the training loop: a stop request by signal that lets the
 * current step finish and a checkpoint be written, and checks that keep
 * non-finite or ill-conditioned weights out of checkpoints. */
#ifndef FLOWGRAD_TRAIN_GUARD_H
#define FLOWGRAD_TRAIN_GUARD_H

#include "flowgrad.h"

/* SIGINT and SIGTERM set a flag instead of killing the process; a second
 * one of either kills it the ordinary way. */
void guard_catch_stop_signals(void);
/* The signal number that asked to stop, or 0. */
int guard_stop_signal(void);
/* Exit status for a run stopped by sig: 128 + sig (130 for SIGINT, 143 for
 * SIGTERM), as a shell reports a process killed by it. */
int guard_stop_status(int sig);

/* Condition number above which a plain invertible 1x1 convolution is
 * reported: float32 products lose about log10(cond) of their ~7 digits. */
#define GUARD_COND_WARN 1e4
/* Estimates cond_1(W) = |W|_1 |W^-1|_1 in double for every plain invconv
 * weight of l; prints a warning naming the layer for each above limit.
 * Returns how many were reported (a singular W counts as infinite). */
int guard_report_ill_conditioned(const fg_state_list *l, double limit, long step);
/* cond_1 of one square float matrix; INFINITY if singular. */
double guard_condition_1(int n, const float *w);

#endif
