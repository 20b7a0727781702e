/* FLOWGRAD_TRACE=FILE: a long-format CSV of what each training step
 * computed, for finding where a loss spike comes from. Rows are
 * step,index,what,mean,min,max: per layer its log-determinant term
 * (index = the layer's position in 'flowgrad info'), per prior its
 * log-scales and per-sample log-density, then per parameter group
 * ("grad:flow.3.coupling", "value:flow.3.coupling") the gradient norm
 * before clipping and the largest |value|. Debugging only: it slows a run. */
#ifndef FLOWGRAD_TRAIN_TRACE_H
#define FLOWGRAD_TRAIN_TRACE_H

#include "flowgrad.h"

/* Opens the file named by FLOWGRAD_TRACE and starts observing the flows;
 * does nothing when the variable is unset or empty. */
int trace_start(void);
/* Whether a trace is being written. */
int trace_active(void);
/* The step whose forward pass follows (nothing without a trace). */
void trace_set_step(long step);
/* After backward: the per-group rows of the step. */
void trace_groups(const fg_state_list *l);
/* trace_groups in the form of fg_trainer_options.inspect_gradients. */
void trace_inspect_gradients(void *ctx, const fg_state_list *l);
void trace_stop(void);

/* FLOWGRAD_INJECT_OUTLIER=STEP: the batch of that step is multiplied by
 * 30 (far outside the data, yet with a finite loss), an outlier for
 * tests of the step guard. 0 when unset. */
long trace_inject_step(void);
/* FLOWGRAD_STOP_AFTER=STEP: after that step the run stops as on SIGTERM
 * (checkpoint written, exit status 143), at a step a test can name. 0 when
 * unset. */
long trace_stop_after(void);

#endif
