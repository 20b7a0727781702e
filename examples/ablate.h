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
    int report_only;        /* --report: read the cells, write nothing into them */
    cell *cells;
    int n;
} grid;

/* Sets total_steps and what 'done' certifies from --epochs or --steps (or
 * the config's length); steps_per_epoch must be set. */
void ablate_set_length(grid *gr, const fg_train_spec *t, long long epochs, long long steps);
/* Writes the cell's config.yaml (base with its coupling, permutation and
 * seed) and reads what an earlier run left: finished, evaluations. With
 * report_only it creates and writes nothing; a cell trained from another
 * config is an error either way. */
int ablate_prepare_cell(const grid *gr, const fg_config *base, cell *c);
/* Trains the unfinished cells, at most jobs at once, each as a child
 * 'flowgrad train'. SIGINT or SIGTERM stops launching and waits for the
 * running ones; returns that signal, or 0. */
int ablate_run(grid *gr, int jobs);

/* DIR/results.csv and DIR/summary.md. */
int ablate_write_tables(const grid *gr);
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
