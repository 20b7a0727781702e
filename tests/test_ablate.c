/* flowgrad ablate end to end on the tiny synthetic config: a 2-cell grid
 * writes its table, summary and plot; a rerun trains nothing, nor does
 * --report, which a comment edit of the config does not disturb; a cell killed
 * after its first checkpoint resumes and ends where an uninterrupted run
 * ends. And the plot's axis is cut above diverged runs, and only then. */
#include "check_main.h"
#include "flowgrad.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char config[1024];
static char tmpdir[256];

static int run(const char *out_file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(const char *out_file, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[4608];
    snprintf(full, sizeof full, "%s >%s/%s 2>&1", cmd, tmpdir, out_file);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *slurp(const char *fmt, ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char buf[8][1 << 16];
    static int slot;
    char *b = buf[slot++ % 8];
    size_t n = fread(b, 1, sizeof buf[0] - 1, f);
    b[n] = 0;
    fclose(f);
    return b;
}

static double mtime(const char *path)
{
    struct stat sb;
    ck_assert_msg(stat(path, &sb) == 0, "missing %s", path);
    return sb.st_mtim.tv_sec + sb.st_mtim.tv_nsec * 1e-9;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

static void setup(void)
{
    fg_test_path("tests/configs/cli-tiny.yaml", config, sizeof config);
    fg_test_scratch_dir("ablate", tmpdir, sizeof tmpdir);
}

static void teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static int have_gnuplot(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

/* The last test bits/dim the cell's own metrics.csv recorded, and the
 * lowest (best) in *best. */
static double last_metrics_bpd(const char *cell, double *best)
{
    char *m = slurp("%s/grid/%s/metrics.csv", tmpdir, cell);
    double last = NAN;
    *best = INFINITY;
    for (char *line = strtok(m, "\n"); line; line = strtok(NULL, "\n")) {
        const char *p = line;
        for (int k = 0; k < 3 && p; k++)
            p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
        if (p && *p && *p != ',' && strncmp(line, "step", 4)) {
            last = atof(p);
            *best = last < *best ? last : *best;
        }
    }
    return last;
}

START_TEST(grid_outputs_and_rerun)
{
    int plot = have_gnuplot();
    int rc = run("out1", "./examples/flowgrad ablate %s --out %s/grid --couplings "
                 "additive,affine --permutations reverse --seeds 1 --epochs 1 --jobs 2 "
                 "--threads 2", config, tmpdir);
    char *out = slurp("%s/out1", tmpdir);
    ck_assert_msg(rc == (plot ? 0 : 1), "exit %d:\n%s", rc, out);
    ck_assert_int_eq(count(out, ": done in "), 2);

    /* results.csv: 64 steps per epoch, test_every 10: evaluations at steps
     * 10..60 and the epoch's end, for each cell, agreeing with metrics.csv. */
    char *res = slurp("%s/grid/results.csv", tmpdir);
    ck_assert_int_eq(count(res, "\nadditive-reverse-seed7,additive,reverse,7,"), 7);
    ck_assert_int_eq(count(res, "\naffine-reverse-seed7,affine,reverse,7,"), 7);
    const char *fin = strstr(res, "affine-reverse-seed7,affine,reverse,7,64,1.0000,");
    ck_assert_msg(fin != NULL, "%s", res);
    double bpd = atof(fin + strlen("affine-reverse-seed7,affine,reverse,7,64,1.0000,"));
    double best;
    ck_assert_double_eq_tol(bpd, last_metrics_bpd("affine-reverse-seed7", &best), 1e-6);
    ck_assert(bpd > 2 && bpd < 6);

    /* summary.md: one seed, so the mean is that value; parameters differ
     * (affine couplings output a scale as well as a shift). */
    char *sum = slurp("%s/grid/summary.md", tmpdir);
    char row[128];
    snprintf(row, sizeof row, "| affine | reverse | 1 of 1 | 1.00 | %.4f | %.4f |", bpd, best);
    ck_assert_msg(strstr(sum, row) != NULL, "expected '%s' in\n%s", row, sum);
    ck_assert(strstr(sum, "| additive | reverse | 1 of 1 | 1.00 |") != NULL);
    snprintf(row, sizeof row, "| %.2f |\n", bpd);   /* the per-seed column, last */
    ck_assert_msg(strstr(sum, row) != NULL, "expected '%s' in\n%s", row, sum);

    char png[1024];
    snprintf(png, sizeof png, "%s/grid/plot.png", tmpdir);
    if (plot) {
        unsigned char h[24];
        FILE *f = fopen(png, "rb");
        ck_assert(f != NULL);
        ck_assert_int_eq(fread(h, 1, 24, f), 24);
        fclose(f);
        ck_assert(!memcmp(h, "\x89PNG\r\n\x1a\n", 8) && !memcmp(h + 12, "IHDR", 4));
        ck_assert_int_eq((h[16] << 24) | (h[17] << 16) | (h[18] << 8) | h[19], 1000);
    } else {
        ck_assert(strstr(out, "apt-get install gnuplot-nox") != NULL);
    }

    /* Rerun: both cells are finished, nothing trains; without a gnuplot the
     * error names the package and the table and summary are still written. */
    char ckpt[1024];
    snprintf(ckpt, sizeof ckpt, "%s/grid/affine-reverse-seed7/checkpoint.safetensors", tmpdir);
    double before = mtime(ckpt);
    remove(png);
    char res_path[1024];
    snprintf(res_path, sizeof res_path, "%s/grid/results.csv", tmpdir);
    remove(res_path);
    rc = run("out2", "GNUPLOT=/nonexistent/gnuplot ./examples/flowgrad ablate %s --out "
             "%s/grid --couplings additive,affine --permutations reverse --seeds 1 "
             "--epochs 1 --jobs 2 --threads 2", config, tmpdir);
    out = slurp("%s/out2", tmpdir);
    ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
    ck_assert_int_eq(count(out, "finished earlier, skipped"), 2);
    ck_assert_int_eq(count(out, "training"), 0);
    ck_assert(strstr(out, "apt-get install gnuplot-nox") != NULL);
    ck_assert(mtime(ckpt) == before);
    ck_assert(access(png, F_OK) != 0);
    ck_assert_str_eq(slurp("%s/grid/results.csv", tmpdir), res);

    /* --report over a config whose comments changed: the cells still
     * count, nothing trains or is written into them, and a cell the grid
     * never trained is listed, not created. */
    char *text = slurp("%s", config);
    char edited[1024];
    snprintf(edited, sizeof edited, "%s/commented.yaml", tmpdir);
    FILE *f = fopen(edited, "w");
    ck_assert(f != NULL);
    fprintf(f, "# a new first line\n%s", text);
    fclose(f);
    char *sum_before = slurp("%s/grid/summary.md", tmpdir);
    rc = run("out3", "GNUPLOT=/nonexistent/gnuplot ./examples/flowgrad ablate %s --out "
             "%s/grid --couplings additive,affine --permutations reverse,shuffle --seeds 1 "
             "--epochs 1 --report", edited, tmpdir);
    out = slurp("%s/out3", tmpdir);
    ck_assert_msg(rc == 1, "exit %d (1: no plot without gnuplot):\n%s", rc, out);
    ck_assert_msg(strstr(out, "nothing trains") && strstr(out, "2 of 4 cells finished") &&
                  strstr(out, "additive-shuffle-seed7: not finished"), "%s", out);
    ck_assert_int_eq(count(out, "training"), 0);
    ck_assert(mtime(ckpt) == before);
    char missing[1024];
    snprintf(missing, sizeof missing, "%s/grid/additive-shuffle-seed7", tmpdir);
    ck_assert_msg(access(missing, F_OK) != 0, "--report created %s", missing);
    ck_assert(strstr(slurp("%s/grid/summary.md", tmpdir), "| additive | shuffle | 0 of 1 |"));
    /* The trained rows are the same as before. */
    const char *row_end = strstr(sum_before, "| affine | reverse |");
    ck_assert(row_end != NULL);
    snprintf(row, sizeof row, "%.*s", (int)(strchr(row_end, '\n') - row_end), row_end);
    ck_assert_msg(strstr(slurp("%s/grid/summary.md", tmpdir), row), "lost '%s'", row);

    /* A config that says something else is refused, naming the cell. */
    char *lr = strstr(text, "lr: 2.0e-3");
    ck_assert(lr != NULL);
    snprintf(edited, sizeof edited, "%s/other.yaml", tmpdir);
    f = fopen(edited, "w");
    ck_assert(f != NULL);
    fprintf(f, "%.*slr: 3.0e-3%s", (int)(lr - text), text, lr + strlen("lr: 2.0e-3"));
    fclose(f);
    rc = run("out4", "./examples/flowgrad ablate %s --out %s/grid --couplings additive,affine "
             "--permutations reverse --seeds 1 --epochs 1 --report", edited, tmpdir);
    out = slurp("%s/out4", tmpdir);
    ck_assert_msg(rc == 1 && strstr(out, "additive-reverse-seed7/config.yaml: differs"), "%s",
                  out);

    /* And a folder that does not exist is an error, not an empty report. */
    rc = run("out5", "./examples/flowgrad ablate %s --out %s/nowhere --report", config, tmpdir);
    out = slurp("%s/out5", tmpdir);
    ck_assert_msg(rc == 1 && strstr(out, "no such folder"), "%s", out);
    snprintf(missing, sizeof missing, "%s/nowhere", tmpdir);
    ck_assert(access(missing, F_OK) != 0);
}
END_TEST

/* Starts an ablation in its own process group and kills the group once
 * the cell's first checkpoint is on disk. */
static void run_and_kill(const char *cmd, const char *ckpt)
{
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    struct timespec nap = {0, 2000000};
    for (int i = 0; i < 60000 && access(ckpt, F_OK) != 0; i++)
        nanosleep(&nap, NULL);
    kill(-pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
}

START_TEST(interrupted_cell_resumes)
{
    char cmd[4096], ckpt[1024];
    const char *grid = "--couplings affine --permutations reverse --seeds 1 --epochs 3 "
                       "--threads 1";
    snprintf(cmd, sizeof cmd, "./examples/flowgrad ablate %s --out %s/cut %s >%s/cut.out "
             "2>&1", config, tmpdir, grid, tmpdir);
    snprintf(ckpt, sizeof ckpt, "%s/cut/affine-reverse-seed7/checkpoint.safetensors", tmpdir);
    run_and_kill(cmd, ckpt);
    char done[1024];
    snprintf(done, sizeof done, "%s/cut/affine-reverse-seed7/done", tmpdir);
    ck_assert_msg(access(done, F_OK) != 0, "the cell finished before it was killed");

    int rc = run("cut2.out", "GNUPLOT=/nonexistent/gnuplot ./examples/flowgrad ablate %s --out "
                 "%s/cut %s", config, tmpdir, grid);
    char *out = slurp("%s/cut2.out", tmpdir);
    ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);   /* 1: no plot without gnuplot */
    ck_assert_msg(strstr(out, "resuming from its checkpoint at step") != NULL, "%s", out);
    ck_assert_int_eq(count(out, ": done in "), 1);

    rc = run("whole.out", "GNUPLOT=/nonexistent/gnuplot ./examples/flowgrad ablate %s --out "
             "%s/whole %s", config, tmpdir, grid);
    ck_assert_int_eq(rc, 1);
    /* Training resumes exactly, so the final evaluation agrees to the digit. */
    ck_assert_str_eq(slurp("%s/cut/affine-reverse-seed7/done", tmpdir),
                     slurp("%s/whole/affine-reverse-seed7/done", tmpdir));
}
END_TEST

START_TEST(bad_arguments)
{
    ck_assert_int_eq(run("bad", "./examples/flowgrad ablate %s --couplings additive,bogus",
                         config), 2);
    ck_assert(strstr(slurp("%s/bad", tmpdir), "bogus") != NULL);
    ck_assert_int_eq(run("bad", "./examples/flowgrad ablate %s --epochs 1 --steps 5",
                         config), 2);
    ck_assert_int_eq(run("bad", "./examples/flowgrad ablate"), 2);
}
END_TEST

/* The plot's axis is cut above a diverged run and only then
 * (fg_far_out_fence over every evaluation of the finished cells). */
START_TEST(plot_axis_is_cut_above_diverged_runs_only)
{
    double v[8] = {6.0, 5.6, 5.4, 5.3, 6.1, 5.5, 5.2, 5.1};
    ck_assert(isinf(fg_far_out_fence(v, 8)));
    /* Sorted: 5.2 5.3 5.4 5.5 5.6 6.0 6.1 18.6: Q1 = 5.4, Q3 = 6.1. */
    double w[8] = {6.0, 5.6, 5.4, 5.3, 6.1, 5.5, 5.2, 18.6};
    ck_assert_double_eq_tol(fg_far_out_fence(w, 8), 6.1 + 3 * (6.1 - 5.4), 1e-9);
    /* Too few values to call any an outlier. */
    double x[3] = {1, 2, 100};
    ck_assert(isinf(fg_far_out_fence(x, 3)));
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("ablate");
    TCase *tc = fg_tcase("ablate");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, grid_outputs_and_rerun);
    tcase_add_test(tc, plot_axis_is_cut_above_diverged_runs_only);
    tcase_add_test(tc, interrupted_cell_resumes);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}
