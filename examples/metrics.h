/* The metrics.csv of a flowgrad train run, read by column name: a run
 * written by a later flowgrad may have more columns, in any order, and
 * they are ignored. Used by flowgrad plot, train's curves.png and ablate. */
#ifndef FLOWGRAD_EXAMPLES_METRICS_H
#define FLOWGRAD_EXAMPLES_METRICS_H

#include "examples/cli.h"

#define METRICS_MAX_COLUMNS 256

typedef struct metrics_table {
    int n_cols;                /* the columns asked for, in that order */
    int present[METRICS_MAX_COLUMNS]; /* 0: not in the file's header */
    int n_rows;
    double *v;                 /* n_rows x n_cols; NAN where blank or absent */
} metrics_table;

/* Reads path's columns cols[0..n) (at most METRICS_MAX_COLUMNS); "step"
 * must be one of the file's. A resumed run may have written rows again
 * from its checkpoint's step: a row whose step is below the one before it
 * drops the earlier rows from that step on, so the table holds each step's
 * latest values. FG_ERR "PATH:LINE: ..." for a file that is missing, empty,
 * has no step column, or holds a field that is not a number or a row of
 * more fields than its header. */
int metrics_read(const char *path, const char *const *cols, int n, metrics_table *t);
static inline double metrics_at(const metrics_table *t, int row, int col)
{
    return t->v[(size_t)row * t->n_cols + col];
}
void metrics_free(metrics_table *t);

#endif
