/* What flowgrad train does around the library trainer: the metrics table,
 * the progress line, test evaluations, sample grids and checkpoints, each
 * at the steps the config asks for. cmd_train.c sets a run up; this runs it. */
#ifndef FLOWGRAD_EXAMPLES_TRAIN_RUN_H
#define FLOWGRAD_EXAMPLES_TRAIN_RUN_H

#include "examples/cli.h"

typedef struct train_run {
    fg_config *cfg;
    fg_model *model;
    fg_trainer tr;
    fg_dataset train, test;
    fg_batch_iter it;
    fg_train_plan plan;
    fg_model_batches batches;
    FILE *metrics;
    double img_s;             /* smoothed throughput, for the ETA */
    int stopped_by;           /* signal that ended the run, or 0 */
    long inject, stop_after;  /* FLOWGRAD_INJECT_OUTLIER, _STOP_AFTER (tests) */
    const char *out;
    char path[4096];
} train_run;

/* The train state to checkpoint or resume. */
fg_train_state train_run_state(const train_run *r);
/* Writes OUT/checkpoint.safetensors (rank 0 only). */
int train_run_save(train_run *r);
/* Trains until the plan is done or a signal stops it; the run's outputs
 * are written on the way. */
int train_run_loop(train_run *r);
/* The step guard's counts, for the closing summary (rank 0; nothing
 * without a guard). */
void train_run_guard_summary(const train_run *r);

#endif
