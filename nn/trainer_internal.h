/* What the two step functions of the trainer share (trainer_step.c,
 * trainer_split.c); not installed. */
#ifndef FLOWGRAD_NN_TRAINER_INTERNAL_H
#define FLOWGRAD_NN_TRAINER_INTERNAL_H

#include "nn/trainer.h"

/* The backward pass of the step's loss, into the state's zeroed gradients. */
typedef void (*fg_trainer_backward_fn)(void *ctx);

double fg_trainer_now(void);
/* Everything after the forward pass: the means over ranks, the finite
 * checks around backward, clipping, the guard, the optimizer and EMA. t0
 * is when the step began. */
fg_step_outcome fg_trainer_finish_step(fg_trainer *t, double loss, double metric,
                                       fg_trainer_backward_fn backward, void *bctx,
                                       double t0, fg_step_report *r);

#endif
