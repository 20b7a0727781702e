/* The report of flowgrad ablate: results.csv, summary.md and plot.png from
 * the evaluations of finished cells. */
#include "examples/ablate.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

int ablate_write_summary(const grid *gr, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return fg_error("%s: cannot open for writing: %s", path, strerror(errno));
    fprintf(f, "| coupling | permutation | seeds | epochs | test bits/dim (mean ± std) | "
            "train s/epoch | parameters | per seed |\n|---|---|---|---|---|---|---|---|\n");
    const cell *g[MAX_SEEDS];
    for (int i = 0; i < gr->n; i++) {
        if (!is_group_start(gr, i))
            continue;
        int n = group(gr, i, g), done = 0;
        double sum = 0, sq = 0, secs = 0, epochs = 0;
        for (int k = 0; k < n; k++) {
            if (!g[k]->finished)
                continue;
            const eval_point *e = &g[k]->ev[g[k]->n_ev - 1];
            sum += e->test_bpd;
            sq += e->test_bpd * e->test_bpd;
            secs += e->epoch > 0 ? e->elapsed / e->epoch : 0;
            epochs = e->epoch;
            done++;
        }
        fprintf(f, "| %s | %s | %d of %d | ", g[0]->coupling, g[0]->permutation, done, n);
        if (done == 0) {
            fprintf(f, "– | – | – | %zu | – |\n", g[0]->params);
            continue;
        }
        double mean = sum / done;
        fprintf(f, "%.2f | %.4f", epochs, mean);
        if (done > 1) {
            /* Sample standard deviation over seeds. */
            double var = (sq - done * mean * mean) / (done - 1);
            fprintf(f, " ± %.4f", var > 0 ? sqrt(var) : 0.0);
        }
        fprintf(f, " | %.1f | %zu | ", secs / done, g[0]->params);
        /* Every seed's value: one diverged seed moves the mean a long way,
         * and the reader should see that it was one. */
        for (int k = 0, shown = 0; k < n; k++)
            if (g[k]->finished)
                fprintf(f, "%s%.2f", shown++ ? ", " : "", g[k]->ev[g[k]->n_ev - 1].test_bpd);
        fprintf(f, " |\n");
    }
    fprintf(f, "\nTest bits/dim after the last epoch (per seed in seed order); train "
            "s/epoch counts training steps only (no evaluation), averaged over seeds.\n");
    return fclose(f) == 0 ? FG_OK : fg_error("%s: cannot write", path);
}

/* plot.dat: one block per (coupling, permutation): epoch, mean, min, max
 * over the seeds that reached that evaluation. */
static int write_plot_data(const grid *gr, const char *path, char titles[][64], int *n_groups)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return fg_error("%s: cannot open for writing: %s", path, strerror(errno));
    const cell *g[MAX_SEEDS];
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
            double sum = 0, lo = INFINITY, hi = -INFINITY;
            int m = 0;
            for (int k = 0; k < n; k++) {
                if (!g[k]->finished)
                    continue;
                for (int j = 0; j < g[k]->n_ev; j++) {
                    if (g[k]->ev[j].step != ref->ev[e].step)
                        continue;
                    double v = g[k]->ev[j].test_bpd;
                    sum += v, m++;
                    lo = v < lo ? v : lo;
                    hi = v > hi ? v : hi;
                }
            }
            fprintf(f, "%.4f %.6f %.6f %.6f\n", ref->ev[e].epoch, sum / m, lo, hi);
        }
        fprintf(f, "\n\n");
    }
    return fclose(f) == 0 ? FG_OK : fg_error("%s: cannot write", path);
}

/* Runs gnuplot on a generated script. FG_ERR with advice when it is not
 * installed. */
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
    FILE *f = fopen(gp, "w");
    if (!f)
        return fg_error("%s: cannot open for writing: %s", gp, strerror(errno));
    fprintf(f, "# Drawn by 'flowgrad ablate': test bits/dim per cell, the band spans the "
            "seeds (min to max), the line is their mean.\n"
            "set terminal png size 1000,650\nset output 'plot.png'\n"
            "set title 'Glow ablation: coupling x permutation'\n"
            "set xlabel 'epoch'\nset ylabel 'test bits/dim'\nset key top right\n"
            "set grid\nset style fill transparent solid 0.15 noborder\nplot \\\n");
    for (int k = 0; k < n_groups; k++)
        fprintf(f, "  'plot.dat' index %d using 1:3:4 with filledcurves lc %d notitle, \\\n"
                "  'plot.dat' index %d using 1:2 with linespoints lc %d lw 2 pt %d "
                "title '%s'%s\n", k, k + 1, k, k + 1, k + 1, titles[k],
                k + 1 < n_groups ? ", \\" : "");
    if (fclose(f) != 0)
        return fg_error("%s: cannot write", gp);
    /* GNUPLOT names another program (or a copy outside PATH). */
    const char *program = getenv("GNUPLOT") && *getenv("GNUPLOT") ? getenv("GNUPLOT") : "gnuplot";
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return fg_error("cannot fork gnuplot: %s", strerror(errno));
    if (pid == 0) {
        if (chdir(gr->out) != 0)
            _exit(126);
        execlp(program, program, "plot.gp", (char *)NULL);
        _exit(errno == ENOENT ? 127 : 126);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return fg_error("waiting for gnuplot: %s", strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return fg_error("'%s' not found: gnuplot is not installed, so %s was not drawn "
                        "(%s and %s are ready for it); install it with 'apt-get install "
                        "gnuplot-nox' and rerun the same command", program, png, gp, dat);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return fg_error("gnuplot failed on %s", gp);
    return FG_OK;
}
