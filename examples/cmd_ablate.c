/* flowgrad ablate: the Glow paper's comparison of couplings and
 * permutations, every cell of coupling x permutation x seed trained by a
 * child 'flowgrad train' in a folder of its own, then one table, one
 * summary and one plot.
 *
 * Restartable by construction: each cell's folder holds its derived
 * config, its checkpoint and a 'done' marker written (atomically, by
 * rename) only after the final evaluation is on disk. A rerun skips cells
 * whose marker names the same training length and resumes the others from
 * their checkpoints, which train continues bit for bit. */
#include "examples/ablate.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char cmd[] = "ablate";

static void help(void)
{
    puts("usage: flowgrad ablate CONFIG [options]\n"
         "\n"
         "Trains CONFIG (a glow model) for every coupling x permutation x seed and\n"
         "compares them by test bits/dim, as in the Glow paper's ablation.\n"
         "\n"
         "  --out DIR            output folder (default runs/ablate-<config name>); each\n"
         "                       cell trains in DIR/<coupling>-<permutation>-seed<S>/\n"
         "  --seeds N            seeds per cell: the config's seed and the N-1 after it\n"
         "                       (default 3)\n"
         "  --couplings LIST     comma-separated, of additive,affine,spline (default\n"
         "                       additive,affine)\n"
         "  --permutations LIST  comma-separated, of reverse,shuffle,invconv (default all)\n"
         "  --epochs E           train each cell for E epochs (overrides the config)\n"
         "  --steps N            train each cell for N steps (overrides the config); the\n"
         "                       last one needs a test evaluation: a whole number of epochs\n"
         "                       or a multiple of train.test_every\n"
         "  --jobs J             cells trained at once (default 1), threads split among them\n"
         "  --threads T          compute threads in all (default FLOWGRAD_THREADS or all\n"
         "                       cores)\n"
         "  --report             train nothing: write the tables and the plot from the\n"
         "                       cells already finished in DIR (while a grid still runs,\n"
         "                       or to gather cells trained by several runs into one DIR)\n"
         "  --help               this text\n"
         "\n"
         "Writes DIR/results.csv (test bits/dim at every evaluation of every cell),\n"
         "DIR/summary.md (per cell: mean and std over seeds of the final test bits/dim,\n"
         "each seed's value, training seconds per epoch, parameters) and DIR/plot.png\n"
         "(drawn by gnuplot, or by the program named in $GNUPLOT). Rerunning skips\n"
         "finished cells and resumes interrupted ones from their checkpoints.");
}

static const char *const coupling_names[] = {"additive", "affine", "spline", NULL};
static const char *const permutation_names[] = {"reverse", "shuffle", "invconv", NULL};

static int parse_names(const char *opt, const char *s, const char *const *allowed,
                       const char **out, int *n)
{
    char buf[256];
    if (strlen(s) >= sizeof buf)
        return fg_error("%s: list too long", opt);
    strcpy(buf, s);
    *n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (allowed[k] && strcmp(allowed[k], tok))
            k++;
        if (!allowed[k])
            return fg_error("%s: expected a comma-separated list of %s%s%s, got '%s'", opt,
                            allowed[0], allowed[1] ? "," : "", allowed[1] ? allowed[1] : "",
                            tok);
        for (int j = 0; j < *n; j++)
            if (out[j] == allowed[k])
                return fg_error("%s: '%s' given twice", opt, tok);
        if (*n == MAX_LIST)
            return fg_error("%s: too many entries in '%s'", opt, s);
        out[(*n)++] = allowed[k];
    }
    if (*n == 0)
        return fg_error("%s: expected at least one name, got '%s'", opt, s);
    return FG_OK;
}

int cmd_ablate(int argc, char **argv)
{
    const char *config = NULL, *out = NULL;
    const char *couplings[MAX_LIST] = {"additive", "affine"};
    const char *permutations[MAX_LIST] = {"reverse", "shuffle", "invconv"};
    int n_couplings = 2, n_permutations = 3;
    long long seeds = 3, epochs = -1, steps = -1, jobs = 1, threads = -1;
    int report_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long long *target = NULL, lo = 1, hi = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        } else if (!strcmp(a, "--report")) {
            report_only = 1;
            continue;
        } else if (!strcmp(a, "--out")) {
            if (!(out = cli_value(argc, argv, &i)))
                return cli_usage_error(cmd, "%s", fg_last_error());
            continue;
        } else if (!strcmp(a, "--couplings") || !strcmp(a, "--permutations")) {
            int c = a[2] == 'c';
            if (!(v = cli_value(argc, argv, &i)) ||
                parse_names(a, v, c ? coupling_names : permutation_names,
                            c ? couplings : permutations,
                            c ? &n_couplings : &n_permutations) != FG_OK)
                return cli_usage_error(cmd, "%s", fg_last_error());
            continue;
        } else if (!strcmp(a, "--seeds")) {
            target = &seeds, hi = MAX_SEEDS;
        } else if (!strcmp(a, "--epochs")) {
            target = &epochs, hi = 1000000;
        } else if (!strcmp(a, "--steps")) {
            target = &steps, hi = FG_CONFIG_MAX_STEPS;
        } else if (!strcmp(a, "--jobs")) {
            target = &jobs, hi = 64;
        } else if (!strcmp(a, "--threads")) {
            target = &threads, hi = 1024;
        } else {
            int rc = cli_positional(cmd, a, &config, "CONFIG");
            if (rc)
                return rc;
            continue;
        }
        if (!(v = cli_value(argc, argv, &i)) || cli_int(a, v, lo, hi, target) != FG_OK)
            return cli_usage_error(cmd, "%s", fg_last_error());
    }
    if (!config)
        return cli_usage_error(cmd, "missing CONFIG: expected a YAML glow config");
    if (steps > 0 && epochs > 0)
        return cli_usage_error(cmd, "--steps and --epochs: give one, not both");

    fg_config *base;
    if (fg_config_load_file(config, &base) != FG_OK)
        return cli_fail(cmd, "%s", fg_last_error());
    int status = 1;
    grid gr;
    memset(&gr, 0, sizeof gr);
    fg_dataset train;
    memset(&train, 0, sizeof train);
    if (base->model.type != FG_MODEL_GLOW || !base->has_train) {
        cli_fail(cmd, "%s: expected a 'type: glow' model with a train: section (the grid "
                 "sets model.coupling and model.permutation)", config);
        goto out;
    }
    const fg_train_spec *t = &base->train;
    if (fg_config_load_split(base, 1, fg_memory_available(), &train) != FG_OK) {
        cli_fail(cmd, "%s", fg_last_error());
        goto out;
    }
    gr.steps_per_epoch = train.n / t->batch;
    if (gr.steps_per_epoch < 1) {
        cli_fail(cmd, "batch %d: larger than the %d training images", t->batch, train.n);
        goto out;
    }
    ablate_set_length(&gr, t, epochs, steps);
    int total_threads = threads > 0 ? (int)threads : fg_get_threads();
    gr.threads_per_job = total_threads / (int)jobs > 0 ? total_threads / (int)jobs : 1;

    char default_out[4096];
    struct stat st;
    if (report_only) {
        out = cli_out_name(out, config, "ablate-", default_out, sizeof default_out);
        if (stat(out, &st) != 0 || !S_ISDIR(st.st_mode)) {
            cli_fail(cmd, "%s: no such folder; --report reads the cells a grid trained there "
                     "(--out DIR)", out);
            goto out;
        }
    }
    if (!(out = cli_out_dir(cmd, out, config, "ablate-", default_out, sizeof default_out)))
        goto out;
    gr.out = out;
    gr.report_only = report_only;
    gr.n = n_couplings * n_permutations * (int)seeds;
    gr.cells = fg_xcalloc((size_t)gr.n, sizeof *gr.cells, "ablation cells");
    int k = 0;
    for (int c = 0; c < n_couplings; c++)
        for (int p = 0; p < n_permutations; p++)
            for (int s = 0; s < seeds; s++, k++) {
                cell *ce = &gr.cells[k];
                ce->coupling = couplings[c];
                ce->permutation = permutations[p];
                ce->seed = t->seed + (uint64_t)s;
                if (ablate_prepare_cell(&gr, base, ce) != FG_OK) {
                    cli_fail(cmd, "%s", fg_last_error());
                    goto out;
                }
            }
    if (report_only)
        printf("%s: %d cells (%d couplings x %d permutations x %lld seeds), %s = %ld steps "
               "of batch %d each: report of %s, nothing trains\n", config, gr.n, n_couplings,
               n_permutations, seeds, gr.target, gr.total_steps, t->batch, out);
    else
        printf("%s: %d cells (%d couplings x %d permutations x %lld seeds), %s = %ld steps "
               "of batch %d each, %d at once on %d thread%s each -> %s\n", config, gr.n,
               n_couplings, n_permutations, seeds, gr.target, gr.total_steps, t->batch,
               (int)jobs, gr.threads_per_job, gr.threads_per_job == 1 ? "" : "s", out);

    int stopped = report_only ? 0 : ablate_run(&gr, (int)jobs);

    int finished = 0;
    for (int i = 0; i < gr.n; i++)
        finished += gr.cells[i].finished;
    if (ablate_write_tables(&gr) != FG_OK) {
        cli_fail(cmd, "%s", fg_last_error());
        goto out;
    }
    printf("%d of %d cells finished; wrote %s/results.csv and %s/summary.md\n", finished,
           gr.n, out, out);
    int plotted = ablate_draw_plot(&gr) == FG_OK;
    if (plotted)
        printf("wrote %s/plot.png\n", out);
    else
        cli_fail(cmd, "%s", fg_last_error());
    if (stopped) {
        printf("stopped by signal %d; rerun the same command to resume\n", stopped);
        status = 128 + stopped;
    } else {
        /* A report is complete when it is written; a run, when every
         * cell has trained. */
        status = (report_only || finished == gr.n) && plotted ? 0 : 1;
        for (int i = 0; report_only && i < gr.n; i++)
            if (!gr.cells[i].finished)
                printf("%s: not finished\n", gr.cells[i].name);
    }
out:
    for (int i = 0; i < gr.n && gr.cells; i++)
        free(gr.cells[i].ev);
    free(gr.cells);
    fg_dataset_free(&train);
    fg_config_free(base);
    fflush(stdout);
    return status;
}
