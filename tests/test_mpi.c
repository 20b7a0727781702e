/* Data-parallel training: `mpirun -np 2 flowgrad train` against one process
 * at the same global batch, on the tiny synthetic config of the command-line
 * tests. Skipped (with a message) when mpirun is missing or the library was
 * built without MPI.
 *
 * Tolerances, and why they are not zero: two ranks average two half-batch
 * gradients in float32, where one process sums the whole batch at once, so
 * the first gradients differ in the last bits (checked at 1e-5 of each
 * tensor's largest value). Adam then moves every weight by about lr
 * whatever the size of its gradient, so a weight whose gradient is near zero
 * can step the other way on a rounding difference: after 20 steps the losses
 * drift apart by ~1e-4 bits/dim and single weights by up to about lr = 2e-3.
 * The checks bound that drift well below the distance the weights travel. */
#include "check_main.h"
#include "flowgrad.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tiny[1024], init_cfg[1024];
static char tmpdir[256];
static const char mpirun[] =
    "mpirun --oversubscribe --allow-run-as-root -x ASAN_OPTIONS=detect_leaks=0";

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[4608];
    snprintf(full, sizeof full, "%s >>%s/log 2>&1", cmd, tmpdir);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* 1 when the test can run; else prints why not. */
static int setup(void)
{
    fg_test_path("tests/configs/cli-tiny.yaml", tiny, sizeof tiny);
    fg_test_path("tests/configs/mpi-init.yaml", init_cfg, sizeof init_cfg);
    fg_test_scratch_dir("mpi", tmpdir, sizeof tmpdir);
    if (!fg_dist_available()) {
        printf("test_mpi: skipped, flowgrad was built without MPI (configure --with-mpi)\n");
        return 0;
    }
    if (system("command -v mpirun >/dev/null 2>&1") != 0) {
        printf("test_mpi: skipped, mpirun not found (apt-get install openmpi-bin)\n");
        return 0;
    }
    /* ASAN_OPTIONS must exist for mpirun -x to forward it. */
    if (!getenv("ASAN_OPTIONS"))
        setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    return 1;
}

/* Column 3 (train bits/dim) of metrics.csv, rows with a step. */
static int read_losses(const char *dir, double *out, int max)
{
    char p[1024], line[512];
    snprintf(p, sizeof p, "%s/%s/metrics.csv", tmpdir, dir);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    int n = 0;
    if (!fgets(line, sizeof line, f))
        line[0] = 0;
    while (fgets(line, sizeof line, f) && n < max) {
        long step, epoch;
        double bpd;
        if (sscanf(line, "%ld,%ld,%lf,", &step, &epoch, &bpd) == 3)
            out[n++] = bpd;
    }
    fclose(f);
    return n;
}

static void read_ckpt(const char *dir, fg_safetensors *st)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/checkpoint.safetensors", tmpdir, dir);
    fg_st_init(st);
    ck_assert_msg(fg_st_read(st, p) == FG_OK, "%s", fg_last_error());
}

static const float *f32(const fg_safetensors *st, const char *name, size_t *n)
{
    const fg_st_tensor *t = fg_st_find(st, name);
    ck_assert_msg(t != NULL, "%s missing", name);
    ck_assert_int_eq(t->dtype, FG_DT_F32);
    *n = t->nbytes / sizeof(float);
    return t->data;
}

static int is_weight(const char *name)
{
    return strncmp(name, "optim.", 6) != 0 && strncmp(name, "ema.", 4) != 0 &&
           !strstr(name, "initialized");
}

/* 20 steps of batch 16: one process, and two ranks of 8 each. */
START_TEST(two_ranks_follow_one_process)
{
    if (!setup())
        return;
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/one --threads 1 --steps 20",
                         tiny, tmpdir), 0);
    ck_assert_int_eq(run("%s -np 2 ./examples/flowgrad train %s --out %s/two --threads 1 "
                         "--steps 20", mpirun, tiny, tmpdir), 0);
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/start --threads 1 --steps 1",
                         init_cfg, tmpdir), 0);
    double one[32], two[32];
    ck_assert_int_eq(read_losses("one", one, 32), 20);
    ck_assert_int_eq(read_losses("two", two, 32), 20);
    /* Step 1 sees the same weights, data and noise: equal to the 6 printed
     * decimals. */
    ck_assert_msg(fabs(one[0] - two[0]) <= 1.5e-6, "step 1: %.6f vs %.6f", one[0], two[0]);
    for (int i = 0; i < 20; i++)
        ck_assert_msg(fabs(one[i] - two[i]) < 1e-3, "step %d: %.6f vs %.6f", i + 1,
                      one[i], two[i]);

    /* Final weights: the distance between the two runs against the distance
     * each travelled from the start (the lr 1e-12 run's weights). */
    fg_safetensors a, b, s;
    read_ckpt("one", &a);
    read_ckpt("two", &b);
    read_ckpt("start", &s);
    double apart = 0, moved = 0, worst = 0;
    int tensors = 0;
    for (int i = 0; i < a.n; i++) {
        const char *name = a.t[i].name;
        if (a.t[i].dtype != FG_DT_F32 || !is_weight(name))
            continue;
        size_t n, nb, ns;
        const float *pa = f32(&a, name, &n), *pb = f32(&b, name, &nb), *ps = f32(&s, name, &ns);
        ck_assert_uint_eq(n, nb);
        ck_assert_uint_eq(n, ns);
        for (size_t j = 0; j < n; j++) {
            double d = (double)pa[j] - pb[j], m = (double)pa[j] - ps[j];
            apart += d * d;
            moved += m * m;
            worst = fmax(worst, fabs(d));
        }
        tensors++;
    }
    ck_assert_int_gt(tensors, 20);
    ck_assert_msg(moved > 0.0, "the weights did not move");
    ck_assert_msg(worst < 1e-2, "largest weight difference %g", worst);
    ck_assert_msg(sqrt(apart) < 0.05 * sqrt(moved), "runs %g apart, moved %g", sqrt(apart),
                  sqrt(moved));
    fg_st_free(&a);
    fg_st_free(&b);
    fg_st_free(&s);
}
END_TEST

/* After one step at lr 1e-12 the checkpoint holds actnorm's data-dependent
 * init untouched, and Adam's first moment holds 0.1 x the first gradient. */
START_TEST(actnorm_init_and_first_gradient_match)
{
    if (!setup())
        return;
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/i1 --threads 1 --steps 1",
                         init_cfg, tmpdir), 0);
    ck_assert_int_eq(run("%s -np 2 ./examples/flowgrad train %s --out %s/i2 --threads 1 "
                         "--steps 1", mpirun, init_cfg, tmpdir), 0);
    fg_safetensors a, b;
    read_ckpt("i1", &a);
    read_ckpt("i2", &b);
    /* A gradient that is zero in exact arithmetic (actnorm's bias right
     * after its data init, whose output has zero batch mean) is a rounding
     * residue of ~1e-9: the floor is 1e-7 of the largest gradient. */
    double largest = 0;
    for (int i = 0; i < a.n; i++)
        if (a.t[i].dtype == FG_DT_F32 && !strncmp(a.t[i].name, "optim.m.", 8)) {
            const float *p = a.t[i].data;
            for (size_t j = 0; j < a.t[i].nbytes / sizeof(float); j++)
                largest = fmax(largest, fabs(p[j]));
        }
    ck_assert(largest > 0);
    int norms = 0, grads = 0;
    for (int i = 0; i < a.n; i++) {
        const char *name = a.t[i].name;
        if (a.t[i].dtype != FG_DT_F32)
            continue;
        size_t len = strlen(name);
        int actnorm_value = strncmp(name, "optim.", 6) && strncmp(name, "ema.", 4) &&
                            len > 5 && (!strcmp(name + len - 5, ".bias") ||
                                        !strcmp(name + len - 5, ".logs"));
        int first_moment = !strncmp(name, "optim.m.", 8);
        if (!actnorm_value && !first_moment)
            continue;
        /* Only actnorm's bias and logs come from the data: find the flag
         * beside them. */
        if (actnorm_value) {
            char flag[512];
            snprintf(flag, sizeof flag, "%.*sinitialized", (int)(len - 4), name);
            if (!fg_st_find(&a, flag))
                continue;
        }
        size_t n, nb;
        const float *pa = f32(&a, name, &n), *pb = f32(&b, name, &nb);
        ck_assert_uint_eq(n, nb);
        double scale = 0;
        for (size_t j = 0; j < n; j++)
            scale = fmax(scale, fabs(pa[j]));
        double tol = actnorm_value ? 1e-6 * fmax(scale, 1.0)
                                   : 1e-5 * fmax(scale, 1e-2 * largest);
        for (size_t j = 0; j < n; j++)
            ck_assert_msg(fabs((double)pa[j] - pb[j]) <= tol, "%s[%zu]: %.9g vs %.9g",
                          name, j, pa[j], pb[j]);
        if (actnorm_value)
            norms++;
        else
            grads++;
    }
    ck_assert_int_ge(norms, 8);
    ck_assert_int_gt(grads, 20);
    fg_st_free(&a);
    fg_st_free(&b);
}
END_TEST

/* A checkpoint written by two ranks resumes on one, and the other way. */
START_TEST(checkpoints_move_between_rank_counts)
{
    if (!setup())
        return;
    /* The run is chained by --steps, which moves a decaying schedule's
     * horizon: at a constant rate the three segments are one run. */
    char constant[1024];
    snprintf(constant, sizeof constant, "%s/constant.yaml", tmpdir);
    FILE *in = fopen(tiny, "r"), *out = fopen(constant, "w");
    ck_assert(in && out);
    int c;
    while ((c = fgetc(in)) != EOF)
        fputc(c, out);
    fputs("  schedule: constant\n", out);
    fclose(in);
    fclose(out);
    const char *tiny = constant;
    ck_assert_int_eq(run("%s -np 2 ./examples/flowgrad train %s --out %s/r2 --threads 1 "
                         "--steps 10", mpirun, tiny, tmpdir), 0);
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/r2 --threads 1 --steps 14 "
                         "--resume %s/r2/checkpoint.safetensors", tiny, tmpdir, tmpdir), 0);
    ck_assert_int_eq(run("%s -np 2 ./examples/flowgrad train %s --out %s/r2 --threads 1 "
                         "--steps 18 --resume %s/r2/checkpoint.safetensors", mpirun, tiny,
                         tmpdir, tmpdir), 0);
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/ref --threads 1 --steps 18",
                         tiny, tmpdir), 0);
    double mixed[32], ref[32];
    ck_assert_int_eq(read_losses("r2", mixed, 32), 18);
    ck_assert_int_eq(read_losses("ref", ref, 32), 18);
    for (int i = 0; i < 18; i++)
        ck_assert_msg(fabs(mixed[i] - ref[i]) < 1e-3, "step %d: %.6f vs %.6f", i + 1,
                      mixed[i], ref[i]);
    fg_safetensors st;
    read_ckpt("r2", &st);
    fg_train_state s;
    ck_assert_int_eq(fg_checkpoint_get_state(&st, &s), FG_OK);
    ck_assert_int_eq(s.step, 18);
    fg_st_free(&st);
}
END_TEST

/* A global batch that the ranks cannot share evenly is refused. */
START_TEST(uneven_batch_is_refused)
{
    if (!setup())
        return;
    int rc = run("%s -np 2 ./examples/flowgrad train %s --out %s/odd --threads 1 "
                 "--steps 2 --batch 15", mpirun, tiny, tmpdir);
    ck_assert_int_ne(rc, 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "grep -q 'must divide evenly among the 2 ranks' %s/log",
             tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Two ranks train tiny into tmpdir/dir without a step limit; once the first
 * checkpoint is on disk (and `after` more seconds), `kill -SIG` reaches rank
 * 1 alone. Rank 0's stderr goes to tmpdir/dir.rank0. mpirun's status. */
static int two_ranks_then_signal(const char *dir, const char *sig, const char *after)
{
    char out[512];
    snprintf(out, sizeof out, "%s/%s", tmpdir, dir);
    return run("timeout 300 %s -np 1 sh -c './examples/flowgrad train %s --out %s "
               "--threads 1 --steps 100000000 2>%s.rank0' : -np 1 sh -c "
               "'./examples/flowgrad train %s --out %s --threads 1 --steps 100000000 & "
               "p=$!; while [ ! -f %s/checkpoint.safetensors ]; do sleep 0.05; done; "
               "sleep %s; kill -%s $p; wait $p'", mpirun, tiny, out, out, tiny, out, out,
               after, sig);
}

/* The step of tmpdir/dir's checkpoint; then checks that one process resumes
 * from it. */
static long checkpoint_step_and_resume(const char *dir)
{
    fg_safetensors st;
    read_ckpt(dir, &st);
    fg_train_state s;
    ck_assert_int_eq(fg_checkpoint_get_state(&st, &s), FG_OK);
    fg_st_free(&st);
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/%s --threads 1 --steps %lld "
                         "--resume %s/%s/checkpoint.safetensors", tiny, tmpdir, dir,
                         (long long)s.step + 2, tmpdir, dir), 0);
    return s.step;
}

/* Rank 1 is killed after the first checkpoint: the job ends (no hang), not
 * with success, and the checkpoint it leaves resumes on one process. */
START_TEST(a_dying_rank_stops_the_job)
{
    if (!setup())
        return;
    int rc = two_ranks_then_signal("die", "9", "0");
    ck_assert_msg(rc != 0 && rc != 124, "mpirun exit status %d", rc);
    long step = checkpoint_step_and_resume("die");
    ck_assert_int_ge(step, 10);
    ck_assert_int_eq(step % 10, 0);
}
END_TEST

/* SIGINT reaches rank 1 only: both ranks stop after the same step, rank 0
 * writes the checkpoint of that step, and MPI ends normally with the
 * signal's status (130), not by an abort. */
START_TEST(a_stop_signal_on_one_rank_stops_all_after_the_same_step)
{
    if (!setup())
        return;
    int rc = two_ranks_then_signal("sig", "INT", "0.3");
    ck_assert_msg(rc == 130, "mpirun exit status %d (see %s/log)", rc, tmpdir);
    char path[1024], text[8192];
    snprintf(path, sizeof path, "%s/sig.rank0", tmpdir);
    FILE *f = fopen(path, "r");
    ck_assert(f != NULL);
    size_t got = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[got] = 0;
    const char *said = strstr(text, "stopped by signal 2 after step ");
    ck_assert_msg(said != NULL, "rank 0 did not stop by the signal:\n%s", text);
    long stopped = atol(said + strlen("stopped by signal 2 after step "));
    ck_assert_int_eq(checkpoint_step_and_resume("sig"), stopped);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("mpi");
    TCase *tc = fg_tcase("mpi");
    tcase_add_test(tc, two_ranks_follow_one_process);
    tcase_add_test(tc, actnorm_init_and_first_gradient_match);
    tcase_add_test(tc, checkpoints_move_between_rank_counts);
    tcase_add_test(tc, uneven_batch_is_refused);
    tcase_add_test(tc, a_dying_rank_stops_the_job);
    tcase_add_test(tc, a_stop_signal_on_one_rank_stops_all_after_the_same_step);
    suite_add_tcase(s, tc);
    return s;
}
