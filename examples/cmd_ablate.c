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
#include "models/config_edit.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

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
         "  --couplings LIST     comma-separated, of additive,affine (default both)\n"
         "  --permutations LIST  comma-separated, of reverse,shuffle,invconv (default all)\n"
         "  --epochs E           train each cell for E epochs (overrides the config)\n"
         "  --steps N            train each cell for N steps (overrides the config); the\n"
         "                       last one needs a test evaluation: a whole number of epochs\n"
         "                       or a multiple of train.test_every\n"
         "  --jobs J             cells trained at once (default 1), threads split among them\n"
         "  --threads T          compute threads in all (default FLOWGRAD_THREADS or all\n"
         "                       cores)\n"
         "  --help               this text\n"
         "\n"
         "Writes DIR/results.csv (test bits/dim at every evaluation of every cell),\n"
         "DIR/summary.md (per cell: mean and std over seeds of the final test bits/dim,\n"
         "each seed's value, training seconds per epoch, parameters) and DIR/plot.png\n"
         "(drawn by gnuplot, or by the program named in $GNUPLOT). Rerunning skips\n"
         "finished cells and resumes interrupted ones from their checkpoints.");
}

static const char *const coupling_names[] = {"additive", "affine", NULL};
static const char *const permutation_names[] = {"reverse", "shuffle", "invconv", NULL};

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

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

static int write_file_atomic(const char *path, const char *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return fg_error("%s: cannot open for writing: %s", tmp, strerror(errno));
    int ok = fputs(text, f) >= 0;
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0)
        return fg_error("%s: cannot write", path);
    return FG_OK;
}

/* The whole of a small text file, or NULL. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *s = fg_xmalloc(cap, "text file");
    size_t got;
    while ((got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap)
            s = fg_xrealloc(s, cap *= 2, "text file");
    }
    fclose(f);
    s[n] = '\0';
    return s;
}

static const char *cell_file(const cell *c, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", c->dir, name);
    return buf;
}

/* Test evaluations from the cell's metrics.csv: rows with a test value.
 * A resumed run may repeat rows written after its checkpoint; they are
 * identical (training resumes exactly), so the later copy replaces the
 * earlier one. */
static int read_evaluations(cell *c, long steps_per_epoch)
{
    char path[4200];
    cell_file(c, "metrics.csv", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f)
        return fg_error("%s: cannot open: %s", path, strerror(errno));
    free(c->ev);
    c->ev = NULL;
    c->n_ev = 0;
    int cap = 0;
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        if (++lineno == 1)
            continue;   /* header */
        char *field[7];
        int nf = 0;
        char *p = line;
        field[nf++] = p;
        while (*p && nf < 7) {
            if (*p == ',') {
                *p = '\0';
                field[nf++] = p + 1;
            }
            p++;
        }
        if (nf < 7 || !*field[3])
            continue;
        eval_point e = {atol(field[0]), 0, atof(field[3]), atof(field[6])};
        e.epoch = (double)e.step / (double)steps_per_epoch;
        if (!isfinite(e.test_bpd))
            continue;
        int k = c->n_ev;
        while (k > 0 && c->ev[k - 1].step >= e.step)
            k--;
        c->n_ev = k;   /* drop the rows a resume wrote again */
        if (c->n_ev == cap)
            c->ev = fg_xrealloc(c->ev, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *c->ev,
                                "evaluations");
        if (c->n_ev < MAX_EVALS)
            c->ev[c->n_ev++] = e;
    }
    fclose(f);
    return FG_OK;
}

static int checkpoint_step(const char *path, long *step)
{
    fg_safetensors st;
    fg_st_init(&st);
    int64_t s[4];
    int rc = fg_st_read(&st, path) == FG_OK && fg_checkpoint_check_values(&st) == FG_OK &&
                     fg_st_get_i64(&st, "train.state", s, 4) == FG_OK
                 ? FG_OK : FG_ERR;
    if (rc == FG_OK)
        *step = (long)s[0];
    fg_st_free(&st);
    return rc;
}

static pid_t launch(const grid *gr, cell *c, int index)
{
    char cfg[4200], ckpt[4200], log[4200], threads[16];
    cell_file(c, "config.yaml", cfg, sizeof cfg);
    cell_file(c, "checkpoint.safetensors", ckpt, sizeof ckpt);
    cell_file(c, "train.log", log, sizeof log);
    snprintf(threads, sizeof threads, "%d", gr->threads_per_job);
    long at = 0;
    int resume = access(ckpt, F_OK) == 0;
    if (resume && checkpoint_step(ckpt, &at) != FG_OK) {
        printf("[%d/%d] %s: unreadable checkpoint (%s); starting over\n", index + 1, gr->n,
               c->name, fg_last_error());
        resume = 0;
    }
    if (resume)
        printf("[%d/%d] %s: resuming from its checkpoint at step %ld of %ld\n", index + 1,
               gr->n, c->name, at, gr->total_steps);
    else
        printf("[%d/%d] %s: training, %ld steps\n", index + 1, gr->n, c->name,
               gr->total_steps);
    fflush(stdout);
    const char *argv[16];
    int n = 0;
    argv[n++] = "flowgrad";
    argv[n++] = "train";
    argv[n++] = cfg;
    argv[n++] = "--out";
    argv[n++] = c->dir;
    argv[n++] = "--threads";
    argv[n++] = threads;
    if (gr->length_opt[0]) {
        argv[n++] = gr->length_opt;
        argv[n++] = gr->length_val;
    }
    if (resume) {
        argv[n++] = "--resume";
        argv[n++] = ckpt;
    }
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0666);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv("/proc/self/exe", (char *const *)argv);
        fprintf(stderr, "flowgrad ablate: cannot run /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    return pid;
}

/* After a child exits: the final evaluation must be there before the
 * marker certifies the cell. */
static void finish(const grid *gr, cell *c, int index, int status, double seconds)
{
    char log[4200];
    cell_file(c, "train.log", log, sizeof log);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        c->failed = 1;
        if (WIFEXITED(status))
            printf("[%d/%d] %s: FAILED (train exited with status %d), see %s\n", index + 1,
                   gr->n, c->name, WEXITSTATUS(status), log);
        else
            printf("[%d/%d] %s: FAILED (train ended by signal %d), see %s\n", index + 1,
                   gr->n, c->name, WTERMSIG(status), log);
        return;
    }
    if (read_evaluations(c, gr->steps_per_epoch) != FG_OK ||
        c->n_ev == 0 || c->ev[c->n_ev - 1].step != gr->total_steps) {
        c->failed = 1;
        printf("[%d/%d] %s: FAILED: no test evaluation at the last step %ld (with --steps, "
               "give a whole number of epochs of %ld steps or a multiple of "
               "train.test_every)\n", index + 1, gr->n, c->name, gr->total_steps,
               gr->steps_per_epoch);
        return;
    }
    const eval_point *e = &c->ev[c->n_ev - 1];
    char marker[4200], text[256];
    snprintf(text, sizeof text, "%s\nstep %ld\ntest_bpd %.6f\n", gr->target, e->step,
             e->test_bpd);
    if (write_file_atomic(cell_file(c, "done", marker, sizeof marker), text) != FG_OK) {
        c->failed = 1;
        printf("[%d/%d] %s: FAILED: %s\n", index + 1, gr->n, c->name, fg_last_error());
        return;
    }
    c->finished = 1;
    printf("[%d/%d] %s: done in %.0f s, test %.4f bits/dim after %.2f epochs\n", index + 1,
           gr->n, c->name, seconds, e->test_bpd, e->epoch);
    fflush(stdout);
}

/* Runs the unfinished cells, at most `jobs` at once. */
static void run_cells(grid *gr, int jobs)
{
    pid_t pid[64];
    int which[64];
    double started[64];
    int running = 0, next = 0;
    for (;;) {
        while (!stop_signal && running < jobs && next < gr->n) {
            cell *c = &gr->cells[next];
            if (c->finished) {
                printf("[%d/%d] %s: finished earlier, skipped\n", next + 1, gr->n, c->name);
                next++;
                continue;
            }
            pid_t p = launch(gr, c, next);
            if (p < 0) {
                printf("[%d/%d] %s: FAILED: cannot fork: %s\n", next + 1, gr->n, c->name,
                       strerror(errno));
                c->failed = 1;
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                pid[running] = p;
                which[running] = next;
                started[running++] = ts.tv_sec + ts.tv_nsec * 1e-9;
            }
            next++;
        }
        fflush(stdout);
        if (running == 0)
            break;
        int status;
        pid_t p = waitpid(-1, &status, 0);
        if (p < 0) {
            if (errno == EINTR) {
                /* A terminal's Ctrl-C reaches the children too; a signal sent
                 * to this process alone is passed on, once. */
                static int forwarded;
                if (stop_signal == SIGTERM && !forwarded++)
                    for (int k = 0; k < running; k++)
                        kill(pid[k], SIGTERM);
                continue;
            }
            break;
        }
        for (int k = 0; k < running; k++) {
            if (pid[k] != p)
                continue;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            finish(gr, &gr->cells[which[k]], which[k], status,
                   ts.tv_sec + ts.tv_nsec * 1e-9 - started[k]);
            pid[k] = pid[running - 1];
            which[k] = which[running - 1];
            started[k] = started[running - 1];
            running--;
            break;
        }
    }
}

/* Derived config, parameter count and state of one cell. */
static int prepare_cell(const grid *gr, const fg_config *base, cell *c)
{
    snprintf(c->name, sizeof c->name, "%s-%s-seed%llu", c->coupling, c->permutation,
             (unsigned long long)c->seed);
    snprintf(c->dir, sizeof c->dir, "%s/%s", gr->out, c->name);
    if (mkdir(c->dir, 0777) != 0 && errno != EEXIST)
        return fg_error("%s: cannot create the folder: %s", c->dir, strerror(errno));
    char coupling[64], permutation[64], seed[64];
    snprintf(coupling, sizeof coupling, "model.coupling=%s", c->coupling);
    snprintf(permutation, sizeof permutation, "model.permutation=%s", c->permutation);
    snprintf(seed, sizeof seed, "train.seed=%llu", (unsigned long long)c->seed);
    /* 'lu' belongs to invconv alone. */
    const char *edits[4] = {coupling, permutation, seed, "-model.lu"};
    int n_edits = strcmp(c->permutation, "invconv") ? 4 : 3;
    char *text;
    if (fg_config_edit(base->text, base->text_len, base->name, edits, n_edits, &text) != FG_OK)
        return FG_ERR;
    char path[4200];
    cell_file(c, "config.yaml", path, sizeof path);
    char *old = read_text(path);
    int rc = FG_OK;
    /* A config that changed under a checkpoint would not resume it. */
    if (!old || strcmp(old, text) != 0) {
        char ckpt[4200];
        if (old && access(cell_file(c, "checkpoint.safetensors", ckpt, sizeof ckpt), F_OK) == 0)
            rc = fg_error("%s: differs from what %s was trained with (the base config "
                          "changed?); use another --out or remove the folder", path, c->dir);
        else
            rc = write_file_atomic(path, text);
    }
    free(old);
    /* Counted from the spec: building a model only to count it could take
     * more memory than the run it describes is later allowed (its train
     * checks that). */
    fg_config *cfg = NULL;
    if (rc == FG_OK && fg_config_load_string(text, strlen(text), path, &cfg) != FG_OK)
        rc = FG_ERR;
    if (cfg) {
        fg_model_size size;
        fg_model_spec_size(&cfg->model, &size);
        c->params = (size_t)size.params;
    }
    fg_config_free(cfg);
    free(text);
    if (rc != FG_OK)
        return rc;
    char marker[4200];
    char *done = read_text(cell_file(c, "done", marker, sizeof marker));
    size_t tl = strlen(gr->target);
    c->finished = done && !strncmp(done, gr->target, tl) && done[tl] == '\n';
    free(done);
    if (c->finished && read_evaluations(c, gr->steps_per_epoch) != FG_OK)
        return FG_ERR;
    if (c->finished && (c->n_ev == 0 || c->ev[c->n_ev - 1].step != gr->total_steps))
        c->finished = 0;   /* a marker without its evaluation: train again */
    return FG_OK;
}

int cmd_ablate(int argc, char **argv)
{
    const char *config = NULL, *out = NULL;
    const char *couplings[MAX_LIST] = {"additive", "affine"};
    const char *permutations[MAX_LIST] = {"reverse", "shuffle", "invconv"};
    int n_couplings = 2, n_permutations = 3;
    long long seeds = 3, epochs = -1, steps = -1, jobs = 1, threads = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long long *target = NULL, lo = 1, hi = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
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
    if (cli_load_split(base, 1, &train) != FG_OK) {
        cli_fail(cmd, "%s", fg_last_error());
        goto out;
    }
    gr.steps_per_epoch = train.n / t->batch;
    if (gr.steps_per_epoch < 1) {
        cli_fail(cmd, "batch %d: larger than the %d training images", t->batch, train.n);
        goto out;
    }
    if (epochs > 0 || (steps <= 0 && t->epochs > 0)) {
        long e = epochs > 0 ? (long)epochs : t->epochs;
        gr.total_steps = e * gr.steps_per_epoch;
        snprintf(gr.target, sizeof gr.target, "epochs %ld", e);
        snprintf(gr.length_opt, sizeof gr.length_opt, "--epochs");
        snprintf(gr.length_val, sizeof gr.length_val, "%ld", e);
    } else {
        gr.total_steps = steps > 0 ? (long)steps : (long)t->steps;
        snprintf(gr.target, sizeof gr.target, "steps %ld", gr.total_steps);
        snprintf(gr.length_opt, sizeof gr.length_opt, "--steps");
        snprintf(gr.length_val, sizeof gr.length_val, "%ld", gr.total_steps);
    }
    int total_threads = threads > 0 ? (int)threads : fg_get_threads();
    gr.threads_per_job = total_threads / (int)jobs > 0 ? total_threads / (int)jobs : 1;

    char default_out[4096];
    if (!(out = cli_out_dir(cmd, out, config, "ablate-", default_out, sizeof default_out)))
        goto out;
    gr.out = out;
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
                if (prepare_cell(&gr, base, ce) != FG_OK) {
                    cli_fail(cmd, "%s", fg_last_error());
                    goto out;
                }
            }
    printf("%s: %d cells (%d couplings x %d permutations x %lld seeds), %s = %ld steps of "
           "batch %d each, %d at once on %d thread%s each -> %s\n", config, gr.n, n_couplings,
           n_permutations, seeds, gr.target, gr.total_steps, t->batch, (int)jobs,
           gr.threads_per_job, gr.threads_per_job == 1 ? "" : "s", out);

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    run_cells(&gr, (int)jobs);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);

    int finished = 0;
    for (int i = 0; i < gr.n; i++)
        finished += gr.cells[i].finished;
    char path[4200];
    snprintf(path, sizeof path, "%s/results.csv", out);
    if (ablate_write_results(&gr, path) != FG_OK) {
        cli_fail(cmd, "%s", fg_last_error());
        goto out;
    }
    snprintf(path, sizeof path, "%s/summary.md", out);
    if (ablate_write_summary(&gr, path) != FG_OK) {
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
    if (stop_signal) {
        printf("stopped by signal %d; rerun the same command to resume\n", (int)stop_signal);
        status = 128 + stop_signal;
    } else {
        status = finished == gr.n && plotted ? 0 : 1;
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
