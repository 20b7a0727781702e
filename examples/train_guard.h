/* A stop request by signal that lets the current step finish and a
 * checkpoint be written. */
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

#endif
