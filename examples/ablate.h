/* flowgrad ablate: the grid of cells it trains, shared by the driver
 * (cmd_ablate.c, which runs the cells) and its report (ablate_report.c,
 * which turns finished cells into a table, a summary and a plot). */
#ifndef FLOWGRAD_ABLATE_H
#define FLOWGRAD_ABLATE_H

#include "examples/cli.h"

#define MAX_LIST 3
#define MAX_SEEDS 100
#define MAX_EVALS 100000

typedef struct eval_point {
    long step;
    double epoch, test_bpd, elapsed;
} eval_point;

typedef struct cell {
    const char *coupling, *permutation;
    uint64_t seed;
    char name[96];
    char dir[4096];
    size_t params;
    int finished;           /* marker present for this training length */
    int failed;
    eval_point *ev;
    int n_ev;
} cell;

typedef struct grid {
    const char *out;
    char target[64];        /* "epochs 5" or "steps 300": what 'done' certifies */
    char length_opt[16], length_val[32];
    long total_steps, steps_per_epoch;
    int threads_per_job;
    cell *cells;
    int n;
} grid;

/* DIR/results.csv: every evaluation of every finished cell. */
int ablate_write_results(const grid *gr, const char *path);
/* DIR/summary.md: one row per (coupling, permutation) over its seeds. */
int ablate_write_summary(const grid *gr, const char *path);
/* The upper of Tukey's far-out fences, Q3 + 3 (Q3 - Q1), over every test
 * bits/dim of every finished cell, when some value lies above it; else (or
 * with fewer than 4 values) INFINITY. */
double ablate_outlier_fence(const grid *gr);
/* DIR/plot.dat, plot.gp and plot.png (by gnuplot, or $GNUPLOT). FG_ERR with
 * the package to install when gnuplot is missing. */
int ablate_draw_plot(const grid *gr);

#endif
