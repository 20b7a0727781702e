/* The metrics.csv of a flowgrad train run, read by column name: a run
 * written by a later flowgrad may have more columns, in any order, and
 * they are ignored. flowgrad plot, train's curves.png and ablate read runs
 * with it. */
#ifndef FLOWGRAD_MODELS_RUN_METRICS_H
#define FLOWGRAD_MODELS_RUN_METRICS_H

#include "tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FG_RUN_METRICS_MAX_COLUMNS 256

typedef struct fg_run_metrics {
    int n_cols;                /* the columns asked for, in that order */
    int present[FG_RUN_METRICS_MAX_COLUMNS]; /* 0: not in the file's header */
    int n_rows;
    double *v;                 /* n_rows x n_cols; NAN where blank or absent */
} fg_run_metrics;

/* Reads path's columns cols[0..n) (at most FG_RUN_METRICS_MAX_COLUMNS); "step"
 * must be one of the file's. A resumed run may have written rows again
 * from its checkpoint's step: a row whose step is below the one before it
 * drops the earlier rows from that step on, so the table holds each step's
 * latest values. FG_ERR "PATH:LINE: ..." for a file that is missing, empty,
 * has no step column, or holds a field that is not a number or a row of
 * more fields than its header. */
FG_API int fg_run_metrics_read(const char *path, const char *const *cols, int n, fg_run_metrics *t);
static inline double fg_run_metrics_at(const fg_run_metrics *t, int row, int col)
{
    return t->v[(size_t)row * t->n_cols + col];
}
FG_API void fg_run_metrics_free(fg_run_metrics *t);

#ifdef __cplusplus
}
#endif
#endif
