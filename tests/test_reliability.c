/* flowgrad train under faults: SIGKILL at random moments (also during a
 * checkpoint write) always leaves a complete checkpoint that --resume
 * continues from; SIGINT/SIGTERM end with a checkpoint and status 130/143;
 * a write that fails for lack of space leaves the previous checkpoint as it
 * was; a run that blows up stops naming the step and never writes NaN; the
 * invconv condition estimate agrees with hand-computed values. */
#include "check_main.h"
#include "flowgrad.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];

/* A tiny model that writes a checkpoint after every step, so that a large
 * share of its run time is spent inside checkpoint writes. */
static const char tiny_yaml[] =
    "model: {type: glow, height: 8, width: 8, channels: 1, levels: 2, steps: 2,\n"
    "        hidden: 16, coupling: affine, permutation: invconv, lu: true,\n"
    "        learn_top: true, n_bits: 5}\n"
    "train:\n"
    "  dataset: {name: synthetic}\n"
    "  batch: 16\n"
    "  optimizer: adam\n"
    "  lr: %s\n"
    "  warmup: %d\n"
    "  grad_clip: %s\n"
    "  ema: 0.9\n"
    "  seed: 3\n"
    "  steps: 100000\n"
    "  checkpoint_every: 1\n"
    "  sample_every: 1000000\n"
    "  test_every: 1000000\n";

static void setup(void)
{
    fg_test_scratch_dir("rel", tmpdir, sizeof tmpdir);
}

static void write_config(const char *path, const char *lr, int warmup, const char *clip)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, tiny_yaml, lr, warmup, clip);
    fclose(f);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

/* Starts flowgrad with argv (NULL-terminated), output to log; fsize > 0
 * limits the size of files it writes (RLIMIT_FSIZE), as a full disk would. */
static pid_t spawn(char *const *argv, const char *log, long fsize)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fsize > 0) {
            struct rlimit lim = {(rlim_t)fsize, (rlim_t)fsize};
            signal(SIGXFSZ, SIG_IGN); /* write() fails with EFBIG instead */
            setrlimit(RLIMIT_FSIZE, &lim);
        }
        execv("./examples/flowgrad", argv);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits until the log says training started (the line with the parameter
 * count), so that delays count from the first step whatever the build's
 * speed. Returns 0 if the process ended first. */
static int wait_started(pid_t pid, const char *log)
{
    for (int i = 0; i < 60000; i++) {
        size_t n;
        char *s = slurp(log, &n);
        int up = s && strstr(s, " parameters, ");
        free(s);
        if (up)
            return 1;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return 0;
        sleep_ms(2);
    }
    return 0;
}

/* Reads a checkpoint completely; returns its step, or -1 if it is invalid.
 * Valid means: it parses, its train state is there, every float is finite. */
static long checkpoint_step(const char *path)
{
    fg_safetensors st;
    fg_st_init(&st);
    if (fg_st_read(&st, path) != FG_OK)
        return -1;
    fg_train_state s;
    long step = fg_checkpoint_get_state(&st, &s) == FG_OK ? s.step : -1;
    for (int i = 0; i < st.n && step >= 0; i++)
        if (st.t[i].dtype == FG_DT_F32 &&
            !fg_k_all_finite(st.t[i].nbytes / sizeof(float), st.t[i].data))
            step = -1;
    fg_st_free(&st);
    return step;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Temporary files left by writes that a kill interrupted. */
static int count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

START_TEST(sigkill_at_random_moments_keeps_a_valid_checkpoint)
{
    setup();
    char cfg[512], out[512], ckpt[600], log[600];
    snprintf(cfg, sizeof cfg, "%s/kill.yaml", tmpdir);
    snprintf(out, sizeof out, "%s/kill", tmpdir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    snprintf(log, sizeof log, "%s/kill.log", tmpdir);
    write_config(cfg, "2.0e-3", 5, "50.0");
    unsigned seed = 12345;
    long last = -1;
    int kills = 0, resumed = 0;
    for (int round = 0; round < 24; round++) {
        char *argv[16];
        int k = 0;
        argv[k++] = "flowgrad", argv[k++] = "train", argv[k++] = cfg;
        argv[k++] = "--out", argv[k++] = out, argv[k++] = "--threads", argv[k++] = "1";
        int resuming = file_exists(ckpt);
        if (resuming)
            argv[k++] = "--resume", argv[k++] = ckpt;
        argv[k] = NULL;
        pid_t pid = spawn(argv, log, 0);
        if (wait_started(pid, log)) {
            sleep_ms(rand_r(&seed) % 120);
            kill(pid, SIGKILL);
            kills++;
        }
        int status = wait_status(pid);
        ck_assert_msg(status == 128 + SIGKILL, "round %d: exit status %d", round, status);
        if (!file_exists(ckpt)) {
            ck_assert_int_eq(last, -1); /* killed before the first checkpoint */
            continue;
        }
        long step = checkpoint_step(ckpt);
        ck_assert_msg(step >= 1, "round %d: invalid checkpoint: %s", round, fg_last_error());
        /* Old or new, never older than what a previous round left. */
        ck_assert_msg(step >= last, "round %d: step went back from %ld to %ld", round, last, step);
        resumed += resuming && step > last;
        last = step;
    }
    ck_assert_int_ge(kills, 20);
    ck_assert_int_ge(resumed, 5);
    /* The last one resumes and finishes, and its checkpoint is the target step. */
    char target[32];
    snprintf(target, sizeof target, "%ld", last + 3);
    char *argv[] = {"flowgrad", "train", cfg, "--out", out, "--threads", "1", "--resume", ckpt,
                    "--steps", target, NULL};
    ck_assert_int_eq(wait_status(spawn(argv, log, 0)), 0);
    ck_assert_int_eq(checkpoint_step(ckpt), last + 3);
    fprintf(stderr, "kill test: %d kills, %d resumed, %d writes interrupted, final step %ld\n",
            kills, resumed, count_tmp(out), last + 3);
}
END_TEST

/* SIGINT and SIGTERM: the step ends, the checkpoint holds it, the status
 * says which signal, and --resume goes on from there. */
static void stop_by(int sig, const char *name)
{
    setup();
    char cfg[512], out[512], ckpt[600], log[600];
    snprintf(cfg, sizeof cfg, "%s/stop.yaml", tmpdir);
    snprintf(out, sizeof out, "%s/stop-%s", tmpdir, name);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    snprintf(log, sizeof log, "%s/stop-%s.log", tmpdir, name);
    write_config(cfg, "2.0e-3", 5, "50.0");
    char *argv[] = {"flowgrad", "train", cfg, "--out", out, "--threads", "1", NULL};
    pid_t pid = spawn(argv, log, 0);
    ck_assert(wait_started(pid, log));
    sleep_ms(150);
    kill(pid, sig);
    ck_assert_int_eq(wait_status(pid), 128 + sig);
    size_t n;
    char *text = slurp(log, &n);
    const char *msg = strstr(text, "stopped by signal");
    ck_assert_msg(msg != NULL, "no stop message in: %s", text);
    int got_sig;
    long step;
    ck_assert_int_eq(sscanf(msg, "stopped by signal %d after step %ld", &got_sig, &step), 2);
    ck_assert_int_eq(got_sig, sig);
    ck_assert_int_eq(checkpoint_step(ckpt), step);
    free(text);
    char target[32];
    snprintf(target, sizeof target, "%ld", step + 2);
    char *again[] = {"flowgrad", "train", cfg, "--out", out, "--threads", "1", "--resume", ckpt,
                     "--steps", target, NULL};
    ck_assert_int_eq(wait_status(spawn(again, log, 0)), 0);
    ck_assert_int_eq(checkpoint_step(ckpt), step + 2);
}

START_TEST(sigint_and_sigterm_write_a_checkpoint)
{
    stop_by(SIGINT, "int");
    stop_by(SIGTERM, "term");
}
END_TEST

START_TEST(failed_write_keeps_the_previous_checkpoint)
{
    setup();
    char cfg[512], out[512], ckpt[600], log[600];
    snprintf(cfg, sizeof cfg, "%s/full.yaml", tmpdir);
    snprintf(out, sizeof out, "%s/full", tmpdir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    snprintf(log, sizeof log, "%s/full.log", tmpdir);
    write_config(cfg, "2.0e-3", 5, "50.0");
    char *first[] = {"flowgrad", "train", cfg, "--out", out, "--threads", "1", "--steps", "2",
                     NULL};
    ck_assert_int_eq(wait_status(spawn(first, log, 0)), 0);
    size_t old_len, now_len, n;
    char *old = slurp(ckpt, &old_len);
    ck_assert_uint_gt(old_len, 4096);
    /* Room for the metrics line but not for a whole checkpoint. */
    char *again[] = {"flowgrad", "train", cfg, "--out", out, "--threads", "1", "--resume", ckpt,
                     "--steps", "4", NULL};
    ck_assert_int_eq(wait_status(spawn(again, log, (long)old_len / 2)), 1);
    char *text = slurp(log, &n);
    ck_assert_msg(strstr(text, "checkpoint.safetensors: write failed") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "left untouched") != NULL, "%s", text);
    free(text);
    char *now = slurp(ckpt, &now_len);
    ck_assert_uint_eq(now_len, old_len);
    ck_assert_int_eq(memcmp(now, old, old_len), 0);
    ck_assert_int_eq(checkpoint_step(ckpt), 2);
    ck_assert_int_eq(count_tmp(out), 0);
    free(old);
    free(now);
}
END_TEST

/* lr 1.0 without clipping overflows at a step known from a first run; the
 * message names it, and the checkpoint of the step before stays valid. */
START_TEST(blow_up_stops_and_keeps_the_last_good_checkpoint)
{
    setup();
    char cfg[512], out[512], ckpt[600], log[600];
    snprintf(cfg, sizeof cfg, "%s/blow.yaml", tmpdir);
    snprintf(out, sizeof out, "%s/blow", tmpdir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    snprintf(log, sizeof log, "%s/blow.log", tmpdir);
    write_config(cfg, "1.0", 0, "0");
    char *argv[] = {"flowgrad", "train", cfg, "--out", out, "--threads", "1", "--steps", "50",
                    NULL};
    ck_assert_int_eq(wait_status(spawn(argv, log, 0)), 1);
    size_t n;
    char *text = slurp(log, &n);
    const char *msg = strstr(text, "flowgrad train: step ");
    ck_assert_msg(msg != NULL, "%s", text);
    long bad_step;
    ck_assert_int_eq(sscanf(msg, "flowgrad train: step %ld:", &bad_step), 1);
    ck_assert_msg(strstr(msg, "non-finite") || strstr(msg, "the loss is"), "%s", msg);
    ck_assert_ptr_nonnull(strstr(msg, "the last good one is kept"));
    free(text);
    ck_assert_int_ge(bad_step, 2);
    ck_assert_int_eq(checkpoint_step(ckpt), bad_step - 1);

    /* --skip-nonfinite: the weights are broken for good, so every later
     * batch is bad too; exactly 3 are skipped, then the run stops. */
    char *skip[] = {"flowgrad", "train", cfg, "--out", out, "--threads", "1", "--steps", "50",
                    "--resume", ckpt, "--skip-nonfinite", "3", NULL};
    ck_assert_int_eq(wait_status(spawn(skip, log, 0)), 1);
    text = slurp(log, &n);
    int skipped = 0;
    for (const char *p = text; (p = strstr(p, "batch skipped")); p++)
        skipped++;
    ck_assert_int_eq(skipped, 3);
    ck_assert_ptr_nonnull(strstr(text, "(3 of 3 allowed)"));
    free(text);
    ck_assert_int_eq(checkpoint_step(ckpt), bad_step - 1);
}
END_TEST

/* A checkpoint holding a NaN parameter is refused by --resume, naming it. */
START_TEST(nan_in_checkpoint_is_refused)
{
    setup();
    char cfg[512], out[512], ckpt[600], bad[600], log[600];
    snprintf(cfg, sizeof cfg, "%s/nan.yaml", tmpdir);
    snprintf(out, sizeof out, "%s/nan", tmpdir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    snprintf(bad, sizeof bad, "%s/nan.safetensors", tmpdir);
    snprintf(log, sizeof log, "%s/nan.log", tmpdir);
    write_config(cfg, "2.0e-3", 5, "50.0");
    char *argv[] = {"flowgrad", "train", cfg, "--out", out, "--threads", "1", "--steps", "2",
                    NULL};
    ck_assert_int_eq(wait_status(spawn(argv, log, 0)), 0);
    fg_safetensors st;
    fg_st_init(&st);
    ck_assert_int_eq(fg_st_read(&st, ckpt), FG_OK);
    /* A coupling weight, not its optimizer moments (named with a prefix). */
    fg_st_tensor *victim = NULL;
    for (int i = 0; i < st.n && !victim; i++)
        if (!strncmp(st.t[i].name, "flow.", 5) && strstr(st.t[i].name, "coupling") &&
            st.t[i].dtype == FG_DT_F32 && st.t[i].nbytes > 0)
            victim = &st.t[i];
    ck_assert_ptr_nonnull(victim);
    ((float *)victim->data)[0] = NAN;
    char name[256];
    snprintf(name, sizeof name, "%s", victim->name);
    ck_assert_int_eq(fg_st_write(&st, bad), FG_OK);
    fg_st_free(&st);
    char *resume[] = {"flowgrad", "train", cfg, "--out", out, "--threads", "1", "--resume", bad,
                      NULL};
    ck_assert_int_eq(wait_status(spawn(resume, log, 0)), 1);
    size_t n;
    char *text = slurp(log, &n);
    ck_assert_msg(strstr(text, name) != NULL, "'%s' not named in: %s", name, text);
    free(text);
    ck_assert_int_eq(checkpoint_step(ckpt), 2);
}
END_TEST

START_TEST(condition_estimate)
{
    /* [[1,2],[3,4]]: inverse [[-2,1],[1.5,-0.5]]; column sums 4,6 and 3.5,1.5. */
    const float a[4] = {1, 2, 3, 4};
    ck_assert_double_eq_tol(fg_mat_condition_1(2, a), 6 * 3.5, 1e-9);
    const float d[9] = {1, 0, 0, 0, 1e-6f, 0, 0, 0, 2};
    ck_assert_double_eq_tol(fg_mat_condition_1(3, d) / 2e6, 1, 1e-6);
    const float s[4] = {1, 2, 2, 4};
    ck_assert(isinf(fg_mat_condition_1(2, s)));

    /* Only plain invconv weights are looked at. */
    int sh[2] = {3, 3};
    fg_var *w = fg_leaf_new(2, sh, 1), *other = fg_leaf_new(2, sh, 1);
    memcpy(w->t.data, d, sizeof d);
    memcpy(other->t.data, d, sizeof d);
    fg_state_list l;
    fg_state_list_init(&l);
    fg_state_list_add(&l, "flow.level0.step0.invconv.weight", w, FG_PARAM);
    fg_state_list_add(&l, "flow.level0.step0.coupling.weight", other, FG_PARAM);
    ck_assert_int_eq(fg_state_report_ill_conditioned(&l, 1e4, 7), 1);
    ck_assert_int_eq(fg_state_report_ill_conditioned(&l, 1e7, 7), 0);
    fg_state_list_free(&l);
    fg_leaf_free(w);
    fg_leaf_free(other);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("reliability");
    TCase *tc = fg_tcase("reliability");
    tcase_add_test(tc, sigkill_at_random_moments_keeps_a_valid_checkpoint);
    tcase_add_test(tc, sigint_and_sigterm_write_a_checkpoint);
    tcase_add_test(tc, failed_write_keeps_the_previous_checkpoint);
    tcase_add_test(tc, blow_up_stops_and_keeps_the_last_good_checkpoint);
    tcase_add_test(tc, nan_in_checkpoint_is_refused);
    tcase_add_test(tc, condition_estimate);
    suite_add_tcase(s, tc);
    return s;
}
