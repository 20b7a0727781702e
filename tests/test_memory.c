/* The memory estimate of flowgrad info --batch against the peak RSS of real
 * training runs, and flowgrad train refusing up front a run that cannot fit. */
#include "check_main.h"
#include "flowgrad.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char config[1024];
static char tmpdir[256];
static char out_path[512];

static void setup(void)
{
    fg_test_path("tests/configs/cli-tiny.yaml", config, sizeof config);
    fg_test_scratch_dir("memory", tmpdir, sizeof tmpdir);
    snprintf(out_path, sizeof out_path, "%s/out", tmpdir);
}

/* Runs ./examples/flowgrad with argv (NULL-terminated) and the environment
 * assignments env (NULL-terminated), stdout and stderr into out_path; returns
 * the exit status and the child's peak RSS in bytes. */
static int run_flowgrad(const char *const *env, const char *const *argv, double *max_rss)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv("./examples/flowgrad", (char *const *)argv);
        _exit(127);
    }
    int st;
    struct rusage ru;
    ck_assert_int_eq(wait4(pid, &st, 0, &ru), pid);
    if (max_rss)
        *max_rss = ru.ru_maxrss * 1024.0; /* Linux reports KiB */
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *output(void)
{
    static char buf[65536];
    FILE *f = fopen(out_path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* The number after "\"key\": " in the output. */
static double json_number(const char *text, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(text, pat);
    ck_assert_msg(p != NULL, "no %s in: %s", key, text);
    return atof(p + strlen(pat));
}

/* No gnuplot: train draws curves.png at its end in a gnuplot child, and
 * wait4 reports the peak RSS of the largest process of the tree, which on
 * this tiny model would be gnuplot's (about 25 MB), not flowgrad's. */
static const char *one_thread[] = {"FLOWGRAD_THREADS=1", "GNUPLOT=/nonexistent/gnuplot", NULL};

/* Fields estimate_mode fills: step, parameter, dataset and runtime bytes,
 * the step line's fixed and per-image bytes, sampling, the replayed step. */
#define ESTIMATE_FIELDS 8

/* Estimated total bytes (JSON) of config at batch, one compute thread, in
 * the config's memory mode or (invert) in train.memory: invert; fields, if
 * not NULL, gets ESTIMATE_FIELDS values. */
static double estimate_mode(const char *cfg, int batch, int invert, double *params,
                            double *fields)
{
    char b[32];
    snprintf(b, sizeof b, "%d", batch);
    const char *argv[] = {"flowgrad", "info", cfg, "--batch", b, "--json", NULL};
    ck_assert_int_eq(run_flowgrad(one_thread, argv, NULL), 0);
    const char *text = output();
    ck_assert_ptr_nonnull(strstr(text, "\"memory\": {\"mode\": \"store\""));
    if (invert) {
        text = strstr(text, "\"memory_invert\": {\"mode\": \"invert\"");
        ck_assert_ptr_nonnull(text);
    }
    if (params)
        *params = json_number(text, "parameters");
    if (fields)
        fields[0] = json_number(text, "step_bytes"), fields[1] = json_number(text, "parameter_bytes"),
        fields[2] = json_number(text, "dataset_bytes"), fields[3] = json_number(text, "runtime_bytes"),
        fields[4] = json_number(text, "step_fixed_bytes"),
        fields[5] = json_number(text, "step_per_image_bytes"),
        fields[6] = json_number(text, "sample_bytes"),
        fields[7] = json_number(text, "step_replayed_bytes");
    return json_number(text, "total_bytes");
}

static double estimate(const char *cfg, int batch, double *params, double *fields)
{
    return estimate_mode(cfg, batch, 0, params, fields);
}

START_TEST(estimate_matches_peak_rss)
{
    setup();
#ifdef __SANITIZE_ADDRESS__
    /* Shadow memory and the quarantine make RSS say nothing about the
     * program's own allocations. */
    return;
#endif
    static const int batches[2] = {16, 256};
    for (int i = 0; i < 4; i++) {
        int batch = batches[i % 2], invert = i / 2;
        char b[32], dir[512];
        snprintf(b, sizeof b, "%d", batch);
        snprintf(dir, sizeof dir, "%s/run%d-%d", tmpdir, batch, invert);
        const char *argv[] = {"flowgrad", "train", config, "--batch", b, "--steps", "3",
                              "--threads", "1", "--memory", invert ? "invert" : "store",
                              "--out", dir, NULL};
        double rss;
        ck_assert_int_eq(run_flowgrad(one_thread, argv, &rss), 0);
        double est = estimate_mode(config, batch, invert, NULL, NULL);
        /* The estimate guards against running out of memory, so it must not
         * fall below what the run takes; on this tiny model the fixed
         * runtime allowance dominates, and keeps it within a factor of 2. */
        ck_assert_msg(est >= rss && est <= 2.0 * rss,
                      "batch %d, %s: estimate %.0f bytes, peak RSS %.0f bytes", batch,
                      invert ? "invert" : "store", est, rss);
    }
}
END_TEST

START_TEST(info_prints_the_breakdown)
{
    setup();
    double params, f[ESTIMATE_FIELDS];
    double total = estimate(config, 100, &params, f);
    /* tiny config: Adam and an EMA, so 5 copies of every parameter, and the
     * step guard's copy of values, moments and EMA: 4 more */
    ck_assert_double_eq_tol(f[1], params * 4 * (5 + 4), 0.5);
    ck_assert_double_eq_tol(total, f[0] + f[1] + f[2] + f[3], 1.0);
    /* The step line at batch 100, or the replayed arenas where they touch
     * more, unless sampling 64 images is larger. */
    double step = f[4] + f[5] * 100;
    ck_assert(f[7] > 0);
    if (f[7] > step)
        step = f[7];
    ck_assert_double_eq_tol(f[0], step > f[6] ? step : f[6], 1.0);
    ck_assert(f[5] > 0);
    /* Synthetic data: 1024 train and 256 test images of 8x8x1, plus labels
     * and the epoch permutation's ints. */
    ck_assert_double_eq_tol(f[2], (1024 + 256) * (64 + 1 + 4.0), 0.5);
    /* The runtime allowance on one thread: 8 MiB + 4 MiB. */
    ck_assert_double_eq_tol(f[3], 12.0 * 1024 * 1024, 0.5);

    const char *argv[] = {"flowgrad", "info", config, "--batch", "100", NULL};
    ck_assert_int_eq(run_flowgrad(one_thread, argv, NULL), 0);
    const char *text = output();
    ck_assert_ptr_nonnull(strstr(text, "training memory at batch 100"));
    ck_assert_ptr_nonnull(strstr(text, "step intermediates"));
    ck_assert_ptr_nonnull(strstr(text, "2 optimizer moments, EMA"));
    ck_assert_ptr_nonnull(strstr(text, "total"));
}
END_TEST

START_TEST(train_refuses_what_cannot_fit)
{
    setup();
    /* 20 MiB available: the suggested batch must fit and the next must not. */
    const char *small[] = {"FLOWGRAD_THREADS=1", "FLOWGRAD_MEMORY_AVAILABLE=20M", NULL};
    char dir[512];
    snprintf(dir, sizeof dir, "%s/refused", tmpdir);
    const char *argv[] = {"flowgrad", "train", config, "--batch", "1024", "--steps", "1",
                          "--out", dir, NULL};
    ck_assert_int_eq(run_flowgrad(small, argv, NULL), 1);
    const char *text = output();
    ck_assert_msg(strstr(text, "needs about") && strstr(text, "at batch 1024") &&
                  strstr(text, "only 20 MiB available"), "%s", text);
    const char *fits = strstr(text, "--batch ");
    ck_assert_msg(fits != NULL, "%s", text);
    int b = atoi(fits + 8);
    ck_assert_int_gt(b, 16);
    ck_assert_int_lt(b, 1024);
    ck_assert(estimate(config, b, NULL, NULL) <= 20.0 * 1024 * 1024);
    ck_assert(estimate(config, b + 1, NULL, NULL) > 20.0 * 1024 * 1024);

    /* Nothing fits in 1 MiB; the flag and the variable override the check. */
    const char *tiny[] = {"FLOWGRAD_THREADS=1", "FLOWGRAD_MEMORY_AVAILABLE=1M", NULL};
    const char *argv16[] = {"flowgrad", "train", config, "--batch", "16", "--steps", "1",
                            "--out", dir, NULL};
    ck_assert_int_eq(run_flowgrad(tiny, argv16, NULL), 1);
    ck_assert_msg(strstr(output(), "no batch fits") != NULL, "%s", output());
    const char *forced[] = {"flowgrad", "train", config, "--batch", "16", "--steps", "1",
                            "--out", dir, "--no-memory-check", NULL};
    ck_assert_int_eq(run_flowgrad(tiny, forced, NULL), 0);
    const char *tiny_off[] = {"FLOWGRAD_THREADS=1", "FLOWGRAD_MEMORY_AVAILABLE=1M",
                              "FLOWGRAD_NO_MEMORY_CHECK=1", NULL};
    ck_assert_int_eq(run_flowgrad(tiny_off, argv16, NULL), 0);
}
END_TEST

/* A larger model at the largest batch needs hundreds of GiB: refused with the real
 * MemAvailable, before anything of that size is allocated. */
START_TEST(train_refuses_a_huge_batch_without_allocating_it)
{
    setup();
    FILE *in = fopen(config, "r");
    ck_assert_ptr_nonnull(in);
    char wide[512], line[512];
    snprintf(wide, sizeof wide, "%s/wide.yaml", tmpdir);
    FILE *out = fopen(wide, "w");
    ck_assert_ptr_nonnull(out);
    while (fgets(line, sizeof line, in)) {
        if (!strcmp(line, "  height: 8\n"))
            strcpy(line, "  height: 128\n");
        else if (!strcmp(line, "  width: 8\n"))
            strcpy(line, "  width: 128\n");
        else if (!strcmp(line, "  hidden: 16\n"))
            strcpy(line, "  hidden: 64\n");
        fputs(line, out);
    }
    fclose(in);
    fclose(out);
    double per_image[ESTIMATE_FIELDS];
    estimate(wide, 1, NULL, per_image);
    /* More than the 139 GiB of the largest machines this suite runs on. */
    ck_assert(per_image[5] * 65536 > 200.0 * 1024 * 1024 * 1024);

    char dir[512];
    snprintf(dir, sizeof dir, "%s/huge", tmpdir);
    const char *argv[] = {"flowgrad", "train", wide, "--batch", "65536", "--steps", "1",
                          "--out", dir, NULL};
    double rss;
    ck_assert_int_eq(run_flowgrad(one_thread, argv, &rss), 1);
    const char *text = output();
    ck_assert_msg(strstr(text, "needs about") && strstr(text, "at batch 65536") &&
                  strstr(text, "per image") && strstr(text, "available"), "%s", text);
#ifndef __SANITIZE_ADDRESS__
    ck_assert_msg(rss < 256.0 * 1024 * 1024, "peak RSS %.0f bytes", rss);
#endif
}
END_TEST

/* A valid safetensors buffer whose one tensor is too large to copy under an
 * address-space limit: fg_st_parse must return an error naming it, not
 * stop the process. */
START_TEST(safetensors_copy_failure_is_an_error)
{
#ifdef __SANITIZE_ADDRESS__
    return; /* the sanitizer's shadow memory needs an unlimited address space */
#endif
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        const size_t n = (size_t)256 << 20;
        char header[128];
        int hl = snprintf(header, sizeof header,
                          "{\"big\":{\"dtype\":\"U8\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}}",
                          n, n);
        size_t len = 8 + (size_t)hl + n;
        unsigned char *buf = calloc(len, 1); /* pages stay untouched */
        if (!buf)
            _exit(10);
        for (int i = 0; i < 8; i++)
            buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
        memcpy(buf + 8, header, (size_t)hl);
        FILE *f = fopen("/proc/self/statm", "r");
        unsigned long pages = 0;
        if (!f || fscanf(f, "%lu", &pages) != 1)
            _exit(11);
        fclose(f);
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max =
            (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)64 << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(12);
        fg_safetensors st;
        int rc = fg_st_parse(&st, buf, len, "big.safetensors");
        _exit(rc == FG_ERR && strstr(fg_last_error(), "big.safetensors: tensor 'big': cannot "
                                     "allocate") ? 0 : 13);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("memory");
    TCase *tc = fg_tcase("memory");
    tcase_add_test(tc, info_prints_the_breakdown);
    tcase_add_test(tc, estimate_matches_peak_rss);
    tcase_add_test(tc, train_refuses_what_cannot_fit);
    tcase_add_test(tc, train_refuses_a_huge_batch_without_allocating_it);
    tcase_add_test(tc, safetensors_copy_failure_is_an_error);
    suite_add_tcase(s, tc);
    return s;
}
