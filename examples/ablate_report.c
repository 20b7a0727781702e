/* The report of flowgrad ablate: results.csv, summary.md and plot.png from
 * the evaluations of finished cells. */
#include "examples/ablate.h"
#include "examples/gnuplot.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int ablate_write_results(const grid *gr, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return fg_error("%s: cannot open for writing: %s", path, strerror(errno));
    fprintf(f, "cell,coupling,permutation,seed,step,epoch,test_bpd,train_s_per_epoch,"
            "parameters\n");
    for (int i = 0; i < gr->n; i++) {
        const cell *c = &gr->cells[i];
        if (!c->finished)
            continue;
        for (int k = 0; k < c->n_ev; k++) {
            const eval_point *e = &c->ev[k], *prev = k ? &c->ev[k - 1] : NULL;
            double de = e->epoch - (prev ? prev->epoch : 0);
            double per = de > 0 ? (e->elapsed - (prev ? prev->elapsed : 0)) / de : NAN;
            fprintf(f, "%s,%s,%s,%llu,%ld,%.4f,%.6f,%.2f,%zu\n", c->name, c->coupling,
                    c->permutation, (unsigned long long)c->seed, e->step, e->epoch,
                    e->test_bpd, per, c->params);
        }
    }
    return fclose(f) == 0 ? FG_OK : fg_error("%s: cannot write", path);
}

/* Cells of one (coupling, permutation), in seed order. */
static int group(const grid *gr, int first, const cell **out)
{
    int n = 0;
    for (int i = first; i < gr->n; i++)
        if (gr->cells[i].coupling == gr->cells[first].coupling &&
            gr->cells[i].permutation == gr->cells[first].permutation)
            out[n++] = &gr->cells[i];
    return n;
}

static int is_group_start(const grid *gr, int i)
{
    for (int j = 0; j < i; j++)
        if (gr->cells[j].coupling == gr->cells[i].coupling &&
            gr->cells[j].permutation == gr->cells[i].permutation)
            return 0;
    return 1;
}

/* "mean ± std" of v[0..n) (sample standard deviation; the mean alone for
 * one value). */
static void print_mean_std(FILE *f, const double *v, int n)
{
    double sum = 0, sq = 0;
    for (int k = 0; k < n; k++)
        sum += v[k];
    double mean = sum / n;
    fprintf(f, "%.4f", mean);
    if (n < 2)
        return;
    for (int k = 0; k < n; k++)
        sq += (v[k] - mean) * (v[k] - mean);
    fprintf(f, " ± %.4f", sqrt(sq / (n - 1)));
}

int ablate_write_summary(const grid *gr, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return fg_error("%s: cannot open for writing: %s", path, strerror(errno));
    fprintf(f, "| coupling | permutation | seeds | epochs | test bits/dim (mean ± std) | "
            "best evaluation (mean ± std) | train s/epoch | parameters | per seed |\n"
            "|---|---|---|---|---|---|---|---|---|\n");
    const cell *g[MAX_SEEDS];
    double final[MAX_SEEDS], best[MAX_SEEDS];
    for (int i = 0; i < gr->n; i++) {
        if (!is_group_start(gr, i))
            continue;
        int n = group(gr, i, g), done = 0;
        double secs = 0, epochs = 0;
        for (int k = 0; k < n; k++) {
            if (!g[k]->finished)
                continue;
            const eval_point *e = &g[k]->ev[g[k]->n_ev - 1];
            final[done] = best[done] = e->test_bpd;
            for (int j = 0; j < g[k]->n_ev; j++)
                best[done] = fmin(best[done], g[k]->ev[j].test_bpd);
            secs += e->epoch > 0 ? e->elapsed / e->epoch : 0;
            epochs = e->epoch;
            done++;
        }
        fprintf(f, "| %s | %s | %d of %d | ", g[0]->coupling, g[0]->permutation, done, n);
        if (done == 0) {
            fprintf(f, "– | – | – | – | %zu | – |\n", g[0]->params);
            continue;
        }
        fprintf(f, "%.2f | ", epochs);
        print_mean_std(f, final, done);
        fprintf(f, " | ");
        print_mean_std(f, best, done);
        fprintf(f, " | %.1f | %zu | ", secs / done, g[0]->params);
        /* Every seed's value: one diverged seed moves the mean a long way,
         * and the reader should see that it was one. */
        for (int k = 0; k < done; k++)
            fprintf(f, "%s%.2f", k ? ", " : "", final[k]);
        fprintf(f, " |\n");
    }
    fprintf(f, "\nTest bits/dim after the last epoch, and at each seed's best evaluation "
            "(lowest test bits/dim of the run); per seed: after the last epoch, in seed "
            "order. Train s/epoch counts training steps only (no evaluation), averaged "
            "over seeds.\n");
    return fclose(f) == 0 ? FG_OK : fg_error("%s: cannot write", path);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* plot.dat: one block per (coupling, permutation): epoch, median, min, max
 * over the seeds that reached that evaluation. The median, not the mean:
 * one diverged seed would pull a mean line off the chart. */
static int write_plot_data(const grid *gr, const char *path, char titles[][64], int *n_groups)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return fg_error("%s: cannot open for writing: %s", path, strerror(errno));
    const cell *g[MAX_SEEDS];
    double v[MAX_SEEDS];
    *n_groups = 0;
    for (int i = 0; i < gr->n; i++) {
        if (!is_group_start(gr, i))
            continue;
        int n = group(gr, i, g);
        const cell *ref = NULL;
        for (int k = 0; k < n && !ref; k++)
            if (g[k]->finished)
                ref = g[k];
        if (!ref)
            continue;
        snprintf(titles[*n_groups], 64, "%s, %s", g[0]->coupling, g[0]->permutation);
        fprintf(f, "# %s\n", titles[(*n_groups)++]);
        for (int e = 0; e < ref->n_ev; e++) {
            int m = 0;
            for (int k = 0; k < n; k++)
                for (int j = 0; g[k]->finished && j < g[k]->n_ev; j++)
                    if (g[k]->ev[j].step == ref->ev[e].step)
                        v[m++] = g[k]->ev[j].test_bpd;
            qsort(v, (size_t)m, sizeof *v, compare_doubles);
            double median = m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
            fprintf(f, "%.4f %.6f %.6f %.6f\n", ref->ev[e].epoch, median, v[0], v[m - 1]);
        }
        fprintf(f, "\n\n");
    }
    return fclose(f) == 0 ? FG_OK : fg_error("%s: cannot write", path);
}

/* A run that diverged (bits/dim 18 where the rest sit near 5) would
 * stretch the plot's axis until every other line is flat: the axis ends at
 * the fence instead. */
int ablate_write_tables(const grid *gr)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/results.csv", gr->out);
    if (ablate_write_results(gr, path) != FG_OK)
        return FG_ERR;
    snprintf(path, sizeof path, "%s/summary.md", gr->out);
    return ablate_write_summary(gr, path);
}

double ablate_outlier_fence(const grid *gr)
{
    int n = 0;
    for (int i = 0; i < gr->n; i++)
        n += gr->cells[i].finished ? gr->cells[i].n_ev : 0;
    double *v = fg_xmalloc((size_t)(n ? n : 1) * sizeof *v, "plot values");
    n = 0;
    for (int i = 0; i < gr->n; i++)
        for (int j = 0; gr->cells[i].finished && j < gr->cells[i].n_ev; j++)
            v[n++] = gr->cells[i].ev[j].test_bpd;
    double fence = fg_far_out_fence(v, n);
    free(v);
    return fence;
}

/* The plot's commands after the terminal and output: each group's band
 * (min to max over seeds) and median line from plot.dat. */
static void write_plot_body(const grid *gr, FILE *f, char titles[][64], int n_groups)
{
    fprintf(f, "set title 'Glow ablation: coupling x permutation'\n"
            "set xlabel 'epoch'\nset ylabel 'test bits/dim'\nset key outside right top\n"
            "set grid\nset style fill transparent solid 0.15 noborder\n");
    double fence = ablate_outlier_fence(gr);
    if (isfinite(fence))
        fprintf(f, "set yrange [*:%.4f]\nset label 1 'cut at %.2f bits/dim: higher values "
                "(diverged runs) are in summary.md' at graph 0.02, graph 0.04\n", fence,
                fence);
    /* gnuplot's own colours repeat after eight, and a grid with three
     * couplings has nine cells: twelve that stay apart. */
    static const char *const colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                          "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                          "#bcbd22", "#17becf", "#000000", "#aec7e8"};
    const int n_colours = (int)(sizeof colours / sizeof colours[0]);
    fprintf(f, "plot \\\n");
    /* Every band first, then every line, so no band covers a line. */
    for (int k = 0; k < n_groups; k++)
        fprintf(f, "  'plot.dat' index %d using 1:3:4 with filledcurves lc rgb '%s' notitle, "
                "\\\n", k, colours[k % n_colours]);
    for (int k = 0; k < n_groups; k++)
        fprintf(f, "  'plot.dat' index %d using 1:2 with linespoints lc rgb '%s' lw 2 pt %d "
                "title '%s'%s\n", k, colours[k % n_colours], k + 1, titles[k],
                k + 1 < n_groups ? ", \\" : "");
}

/* plot.gp is the whole script, for a user to edit and rerun in the folder
 * ('gnuplot plot.gp'); plot.png is drawn from the same commands. */
int ablate_draw_plot(const grid *gr)
{
    char dat[4200], gp[4200], png[4200];
    char titles[2 * MAX_LIST * MAX_LIST][64];
    int n_groups = 0;
    snprintf(dat, sizeof dat, "%s/plot.dat", gr->out);
    snprintf(gp, sizeof gp, "%s/plot.gp", gr->out);
    snprintf(png, sizeof png, "%s/plot.png", gr->out);
    if (write_plot_data(gr, dat, titles, &n_groups) != FG_OK)
        return FG_ERR;
    if (n_groups == 0)
        return fg_error("no finished cell to plot");
    char *body = NULL;
    size_t len;
    FILE *b = open_memstream(&body, &len);
    if (!b)
        return fg_error("out of memory for the plot script");
    write_plot_body(gr, b, titles, n_groups);
    fclose(b);
    FILE *f = fopen(gp, "w");
    if (!f) {
        free(body);
        return fg_error("%s: cannot open for writing: %s", gp, strerror(errno));
    }
    fprintf(f, "# Drawn by 'flowgrad ablate': test bits/dim per cell, the band spans the "
            "seeds (min to max), the line is their median.\n");
    gnuplot_put_terminal(f, 1000, 650);
    fprintf(f, "set output 'plot.png'\n%s", body);
    if (fclose(f) != 0) {
        free(body);
        return fg_error("%s: cannot write", gp);
    }
    int missing, rc = gnuplot_draw(png, body, 1000, 650, gr->out, &missing);
    free(body);
    if (rc != FG_OK && missing) {
        char why[1024];
        snprintf(why, sizeof why, "%s", fg_last_error());
        return fg_error("%s (%s and %s are ready for it)", why, gp, dat);
    }
    return rc;
}
