/* flowgrad ablate's cells: each one's config, its 'flowgrad train' child
 * process, and what it left on disk (see ablate.h). */
#include "examples/ablate.h"
#include "models/run_metrics.h"
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

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
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

/* Test evaluations from the cell's metrics.csv: rows with a test value,
 * read by column name (metrics.h). A resumed run may repeat rows written
 * after its checkpoint; they are identical (training resumes exactly), so
 * the later copy replaces the earlier one, and of a step's two rows (its
 * own and its epoch's end) the later. */
static int read_evaluations(cell *c, long steps_per_epoch)
{
    static const char *const cols[] = {"step", "test_bpd", "elapsed_s"};
    char path[4200];
    cell_file(c, "metrics.csv", path, sizeof path);
    fg_run_metrics t;
    if (fg_run_metrics_read(path, cols, 3, &t) != FG_OK)
        return FG_ERR;
    free(c->ev);
    c->ev = NULL;
    c->n_ev = 0;
    int cap = 0;
    for (int r = 0; r < t.n_rows; r++) {
        eval_point e = {(long)fg_run_metrics_at(&t, r, 0), 0, fg_run_metrics_at(&t, r, 1),
                        fg_run_metrics_at(&t, r, 2)};
        e.epoch = (double)e.step / (double)steps_per_epoch;
        if (!isfinite(e.test_bpd))
            continue;
        int k = c->n_ev;
        while (k > 0 && c->ev[k - 1].step >= e.step)
            k--;
        c->n_ev = k;
        if (c->n_ev == cap)
            c->ev = fg_xrealloc(c->ev, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *c->ev,
                                "evaluations");
        if (c->n_ev < MAX_EVALS)
            c->ev[c->n_ev++] = e;
    }
    fg_run_metrics_free(&t);
    return FG_OK;
}

static pid_t launch(const grid *gr, cell *c, int index)
{
    char cfg[4200], ckpt[4200], log[4200], threads[16];
    cell_file(c, "config.yaml", cfg, sizeof cfg);
    cell_file(c, "checkpoint.safetensors", ckpt, sizeof ckpt);
    cell_file(c, "train.log", log, sizeof log);
    snprintf(threads, sizeof threads, "%d", gr->threads_per_job);
    fg_train_state at = {0};
    int resume = access(ckpt, F_OK) == 0;
    if (resume && fg_checkpoint_read_state(ckpt, &at) != FG_OK) {
        printf("[%d/%d] %s: unreadable checkpoint (%s); starting over\n", index + 1, gr->n,
               c->name, fg_last_error());
        resume = 0;
    }
    if (resume)
        printf("[%d/%d] %s: resuming from its checkpoint at step %ld of %ld\n", index + 1,
               gr->n, c->name, at.step, gr->total_steps);
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

/* The next line of YAML text at *p with its comment and trailing blanks
 * cut, skipping lines left empty; *n its length, NULL at the end. A '#'
 * starts a comment at a line's start or after a blank, outside quotes. */
static const char *next_setting(const char **p, size_t *n)
{
    while (**p) {
        const char *line = *p, *end = line + strcspn(line, "\n");
        *p = *end ? end + 1 : end;
        const char *cut = end;
        char quote = 0;
        for (const char *q = line; q < end; q++) {
            if (quote) {
                quote = *q == quote ? 0 : quote;
            } else if (*q == '"' || *q == '\'') {
                quote = *q;
            } else if (*q == '#' && (q == line || q[-1] == ' ' || q[-1] == '\t')) {
                cut = q;
                break;
            }
        }
        while (cut > line && (cut[-1] == ' ' || cut[-1] == '\t' || cut[-1] == '\r'))
            cut--;
        if (cut > line) {
            *n = (size_t)(cut - line);
            return line;
        }
    }
    return NULL;
}

/* Whether two configs say the same, comments aside: editing a comment of
 * the base config must not orphan the cells already trained from it. */
static int same_settings(const char *a, const char *b)
{
    for (;;) {
        size_t na = 0, nb = 0;
        const char *la = next_setting(&a, &na), *lb = next_setting(&b, &nb);
        if (!la || !lb)
            return !la && !lb;
        if (na != nb || memcmp(la, lb, na) != 0)
            return 0;
    }
}

/* Derived config, parameter count and state of one cell. */
int ablate_prepare_cell(const grid *gr, const fg_config *base, cell *c)
{
    snprintf(c->name, sizeof c->name, "%s-%s-seed%llu", c->coupling, c->permutation,
             (unsigned long long)c->seed);
    snprintf(c->dir, sizeof c->dir, "%s/%s", gr->out, c->name);
    if (!gr->report_only && mkdir(c->dir, 0777) != 0 && errno != EEXIST)
        return fg_error("%s: cannot create the folder: %s", c->dir, strerror(errno));
    char coupling[64], permutation[64], seed[64];
    snprintf(coupling, sizeof coupling, "model.coupling=%s", c->coupling);
    snprintf(permutation, sizeof permutation, "model.permutation=%s", c->permutation);
    snprintf(seed, sizeof seed, "train.seed=%llu", (unsigned long long)c->seed);
    /* 'lu' belongs to invconv alone, 'bins' and 'bound' to spline couplings. */
    const char *edits[6] = {coupling, permutation, seed};
    int n_edits = 3;
    if (strcmp(c->permutation, "invconv"))
        edits[n_edits++] = "-model.lu";
    if (strcmp(c->coupling, "spline")) {
        edits[n_edits++] = "-model.bins";
        edits[n_edits++] = "-model.bound";
    }
    char *text;
    if (fg_config_edit(base->text, base->text_len, base->name, edits, n_edits, &text) != FG_OK)
        return FG_ERR;
    char path[4200];
    cell_file(c, "config.yaml", path, sizeof path);
    char *old = read_text(path);
    int rc = FG_OK;
    /* A config that changed under a checkpoint would not resume it, and
     * its results would not be this cell's. One that differs in comments
     * only is kept as it is: the checkpoint was trained from that text. */
    if (!old || !same_settings(old, text)) {
        char ckpt[4200];
        if (old && access(cell_file(c, "checkpoint.safetensors", ckpt, sizeof ckpt), F_OK) == 0)
            rc = fg_error("%s: differs from what %s was trained with (the base config "
                          "changed?); use another --out or remove the folder", path, c->dir);
        else if (!gr->report_only)
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


int ablate_run(grid *gr, int jobs)
{
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    run_cells(gr, jobs);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return (int)stop_signal;
}

void ablate_set_length(grid *gr, const fg_train_spec *t, long long epochs, long long steps)
{
    if (epochs > 0 || (steps <= 0 && t->epochs > 0)) {
        long e = epochs > 0 ? (long)epochs : t->epochs;
        gr->total_steps = e * gr->steps_per_epoch;
        snprintf(gr->target, sizeof gr->target, "epochs %ld", e);
        snprintf(gr->length_opt, sizeof gr->length_opt, "--epochs");
        snprintf(gr->length_val, sizeof gr->length_val, "%ld", e);
    } else {
        gr->total_steps = steps > 0 ? (long)steps : (long)t->steps;
        snprintf(gr->target, sizeof gr->target, "steps %ld", gr->total_steps);
        snprintf(gr->length_opt, sizeof gr->length_opt, "--steps");
        snprintf(gr->length_val, sizeof gr->length_val, "%ld", gr->total_steps);
    }
}
