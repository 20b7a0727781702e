/* Checkpoints and outputs from a hostile world. A checkpoint that is
 * well-formed safetensors but means something impossible (a permutation
 * with a repeat, LU signs of 0, a config declaring a huge model over small
 * weights, a counter at 2^63 - 1, NaN in the EMA averages, a singular
 * weight) is refused by every command that loads it, with status 1 and a
 * message naming the tensor, never an abort; --out never replaces a device,
 * fifo or directory; the temporaries of killed writers are removed by the
 * next write. The files are made here: a tiny model trained for two steps,
 * then one tensor changed. */
#include "check_main.h"
#include "flowgrad.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

/* Glow with LU invconv (4 channels after the squeeze), EMA and Adam: every
 * kind of state a checkpoint holds. */
static const char tiny_yaml[] =
    "model: {type: glow, height: 8, width: 8, channels: 1, levels: 2, steps: 2,\n"
    "        hidden: 16, coupling: affine, permutation: invconv, lu: %s,\n"
    "        learn_top: true, n_bits: 5}\n"
    "train:\n"
    "  dataset: {name: synthetic}\n"
    "  batch: 16\n"
    "  optimizer: adam\n"
    "  lr: 2.0e-3\n"
    "  ema: 0.9\n"
    "  seed: 3\n"
    "  steps: 2\n";

static void setup(void)
{
    fg_test_scratch_dir("ckpt", tmpdir, sizeof tmpdir);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = 0;
    fclose(f);
    return buf;
}

/* Runs a shell command line (the program's stderr in *err, to free);
 * returns its exit status, or 128 + signal when it was killed (an abort
 * reads 134). */
static int run(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(char **err, const char *fmt, ...)
{
    char cmd[4096], full[4096 + 640], log[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(log, sizeof log, "%s/stderr", tmpdir);
    snprintf(full, sizeof full, "%s >/dev/null 2>%s", cmd, log);
    int st = system(full);
    if (err)
        *err = slurp(log);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    /* sh reports a child killed by a signal as 128 + signal. */
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Trains the tiny model (lu "true" or "false") for two steps into
 * tmpdir/name; fills config and checkpoint paths. */
static void train_tiny(const char *name, const char *lu, char *cfg, char *ckpt, size_t n)
{
    snprintf(cfg, n, "%s/%s.yaml", tmpdir, name);
    FILE *f = fopen(cfg, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, tiny_yaml, lu);
    fclose(f);
    char *err;
    int rc = run(&err, "./examples/flowgrad train %s --out %s/%s --threads 1", cfg, tmpdir,
                 name);
    ck_assert_msg(rc == 0, "train: %d: %s", rc, err);
    free(err);
    snprintf(ckpt, n, "%s/%s/checkpoint.safetensors", tmpdir, name);
}

static fg_st_tensor *tensor(fg_safetensors *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name))
            return &st->t[i];
    ck_abort_msg("no tensor '%s'", name);
    return NULL;
}

/* src with float entries of one tensor replaced (index -1: all of them),
 * written to tmpdir/dst. */
static const char *with_f32(const char *src, const char *dst, const char *name, int index,
                            float v)
{
    static char path[512];
    fg_safetensors st;
    fg_st_init(&st);
    ck_assert_int_eq(fg_st_read(&st, src), FG_OK);
    fg_st_tensor *t = tensor(&st, name);
    ck_assert_int_eq(t->dtype, FG_DT_F32);
    float *d = t->data;
    for (size_t i = 0; i < t->nbytes / sizeof(float); i++)
        if (index < 0 || (size_t)index == i)
            d[i] = v;
    snprintf(path, sizeof path, "%s/%s", tmpdir, dst);
    ck_assert_int_eq(fg_st_write(&st, path), FG_OK);
    fg_st_free(&st);
    return path;
}

static const char *with_i64(const char *src, const char *dst, const char *name, int index,
                            int64_t v)
{
    static char path[512];
    fg_safetensors st;
    fg_st_init(&st);
    ck_assert_int_eq(fg_st_read(&st, src), FG_OK);
    fg_st_tensor *t = tensor(&st, name);
    ck_assert_int_eq(t->dtype, FG_DT_I64);
    ((int64_t *)t->data)[index] = v;
    snprintf(path, sizeof path, "%s/%s", tmpdir, dst);
    ck_assert_int_eq(fg_st_write(&st, path), FG_OK);
    fg_st_free(&st);
    return path;
}

/* src with its embedded config's first `from` replaced by `to`. */
static const char *with_config(const char *src, const char *dst, const char *from,
                               const char *to)
{
    static char path[512];
    fg_safetensors st;
    fg_st_init(&st);
    ck_assert_int_eq(fg_st_read(&st, src), FG_OK);
    const char *text = fg_st_get_meta(&st, "config");
    ck_assert_ptr_nonnull(text);
    const char *at = strstr(text, from);
    ck_assert_ptr_nonnull(at);
    char edited[8192];
    snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    fg_st_set_meta(&st, "config", edited);
    snprintf(path, sizeof path, "%s/%s", tmpdir, dst);
    ck_assert_int_eq(fg_st_write(&st, path), FG_OK);
    fg_st_free(&st);
    return path;
}

/* Every command that loads a checkpoint refuses it with status 1 and a
 * message holding `expect`; train --resume too unless cfg is NULL (it
 * builds the model of its own config, not the file's). */
static void refused_by_all(const char *cfg, const char *bad, const char *expect)
{
    static const char *const loads[] = {
        "eval %s", "sample %s --n 4 --out %s/never.png", "reconstruct %s --out %s/never.png",
        "info %s",
    };
    for (size_t i = 0; i < sizeof loads / sizeof loads[0]; i++) {
        char args[2048], *err;
        snprintf(args, sizeof args, loads[i], bad, tmpdir);
        int rc = run(&err, "./examples/flowgrad %s", args);
        ck_assert_msg(rc == 1, "flowgrad %s: status %d: %s", args, rc, err);
        ck_assert_msg(strstr(err, bad) && strstr(err, expect), "flowgrad %s: '%s' not in: %s",
                      args, expect, err);
        free(err);
    }
    char *err;
    int rc = cfg ? run(&err, "./examples/flowgrad train %s --out %s/resumed --threads 1 "
                       "--steps 4 --resume %s", cfg, tmpdir, bad) : 1;
    if (cfg) {
        ck_assert_msg(rc == 1, "train --resume %s: status %d: %s", bad, rc, err);
        ck_assert_msg(strstr(err, expect), "train --resume: '%s' not in: %s", expect, err);
        free(err);
    }
    struct stat sb;
    char never[512];
    snprintf(never, sizeof never, "%s/never.png", tmpdir);
    ck_assert_int_ne(stat(never, &sb), 0);
}

/* Finding 1: a permutation that is not one (a repeat, a fraction, a
 * negative or a huge entry) aborted eval, sample, reconstruct and train. */
START_TEST(broken_permutation_is_refused)
{
    setup();
    char cfg[512], ckpt[512];
    train_tiny("perm", "true", cfg, ckpt, sizeof cfg);
    /* Entry 1 set to entry 0's value (a repeat), or to what no
     * permutation of 0..3 holds. */
    fg_safetensors st;
    fg_st_init(&st);
    ck_assert_int_eq(fg_st_read(&st, ckpt), FG_OK);
    float p0 = ((const float *)tensor(&st, "flow.2.invconv.p")->data)[0];
    fg_st_free(&st);
    char repeat[256];
    snprintf(repeat, sizeof repeat, "tensor 'flow.2.invconv.p' holds %g at index 0 and at "
             "index 1; expected a permutation of 0..3 (each whole number once)", p0);
    const struct { float v; const char *msg; } cases[] = {
        {p0, repeat},
        {2.5f, "tensor 'flow.2.invconv.p' holds 2.5 at index 1; expected a permutation of "
               "0..3 (each whole number once)"},
        {-1.0f, "tensor 'flow.2.invconv.p' holds -1 at index 1; expected a permutation"},
        {1e30f, "tensor 'flow.2.invconv.p' holds 1.00000002e+30 at index 1; expected"},
        {4.0f, "tensor 'flow.2.invconv.p' holds 4 at index 1; expected a permutation of 0..3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused_by_all(cfg, with_f32(ckpt, "perm.safetensors", "flow.2.invconv.p", 1,
                                     cases[i].v), cases[i].msg);
}
END_TEST

/* Finding 2: LU signs of 0 made W singular: sample, reconstruct and train
 * aborted and eval printed a wrong bits/dim. */
START_TEST(zero_lu_signs_are_refused)
{
    setup();
    char cfg[512], ckpt[512];
    train_tiny("sign", "true", cfg, ckpt, sizeof cfg);
    const char *bad = with_f32(ckpt, "sign.safetensors", "flow.5.invconv.sign", -1, 0.0f);
    refused_by_all(cfg, bad, "tensor 'flow.5.invconv.sign' holds 0 at index 0; expected +1 "
                             "or -1 (the signs of the LU diagonal; 0 makes W singular)");
}
END_TEST

/* A plain invconv weight that is singular, and LU factors that are each
 * fine but compose an overflowing W: refused after loading, as the ops
 * would see them, instead of stopping inside them. */
START_TEST(singular_weights_are_refused)
{
    setup();
    char cfg[512], ckpt[512];
    train_tiny("plain", "false", cfg, ckpt, sizeof cfg);
    /* EMA averages are what the commands run, so both copies. */
    const char *half = with_f32(ckpt, "half.safetensors", "flow.2.invconv.weight", -1, 0.0f);
    char half_copy[512];
    snprintf(half_copy, sizeof half_copy, "%s", half);
    const char *bad = with_f32(half_copy, "singular.safetensors", "ema.flow.2.invconv.weight",
                               -1, 0.0f);
    refused_by_all(cfg, bad, "tensor 'flow.2.invconv.weight': W is singular; expected an "
                             "invertible 4x4 matrix");

    train_tiny("lu", "true", cfg, ckpt, sizeof cfg);
    /* l[1][0] and l[2][0] at 3e38: their products with U overflow floats. */
    const char *one = with_f32(ckpt, "big1.safetensors", "ema.flow.2.invconv.l", 4, 3e38f);
    char one_copy[512];
    snprintf(one_copy, sizeof one_copy, "%s", one);
    bad = with_f32(one_copy, "big.safetensors", "ema.flow.2.invconv.l", 8, 3e38f);
    fg_checkpoint c;
    ck_assert_int_eq(fg_checkpoint_load(bad, -1, &c), FG_ERR);
    ck_assert_ptr_null(c.model);
    ck_assert_msg(strstr(fg_last_error(), "tensors 'flow.2.invconv.{p,sign,l,u,log_s}' "
                                          "(W = P L U): W "), "%s", fg_last_error());
    char *err;
    ck_assert_int_eq(run(&err, "./examples/flowgrad sample %s --n 4 --out %s/never.png", bad,
                         tmpdir), 1);
    free(err);
}
END_TEST

/* Finding 3: a config declaring a huge model was built before its shapes
 * were compared with the tensors (info ran out of memory). Now its size is
 * counted from the spec first; a model that matches but does not fit the
 * memory available is refused as well. */
START_TEST(huge_declared_model_is_refused_before_building)
{
    setup();
    char cfg[512], ckpt[512];
    train_tiny("huge", "true", cfg, ckpt, sizeof cfg);
    const char *bad = with_config(ckpt, "huge.safetensors", "hidden: 16", "hidden: 65536");
    refused_by_all(NULL, bad, "the config in its metadata declares a model of ");
    char *err;
    ck_assert_int_eq(run(&err, "./examples/flowgrad info %s", bad), 1);
    ck_assert_msg(strstr(err, "parameters, 60 buffers), but its model tensors hold ") &&
                  strstr(err, "expected the config the weights were trained with"), "%s", err);
    free(err);

    ck_assert_int_eq(run(&err, "FLOWGRAD_MEMORY_AVAILABLE=64K ./examples/flowgrad info %s",
                         ckpt), 1);
    ck_assert_msg(strstr(err, "needs about") && strstr(err, "more than the 64 KiB available"),
                  "%s", err);
    free(err);
    ck_assert_int_eq(run(&err, "./examples/flowgrad info %s", ckpt), 0);
    free(err);

    /* Image size is no parameter: the model builds, but the synthetic data
     * its config asks for is refused before it is generated. */
    const char *wide = with_config(ckpt, "wide.safetensors", "height: 8, width: 8",
                                   "height: 8192, width: 8192");
    ck_assert_int_eq(run(&err, "FLOWGRAD_MEMORY_AVAILABLE=1G ./examples/flowgrad eval %s",
                         wide), 1);
    ck_assert_msg(strstr(err, " synthetic 8192x8192x1 images need about") &&
                  strstr(err, "lower height, width or channels"), "%s", err);
    free(err);

    /* The same model in a config of one's own: counted, not built (building
     * it stopped in malloc). */
    char big[512];
    snprintf(big, sizeof big, "%s/big.yaml", tmpdir);
    FILE *f = fopen(big, "w");
    char *text = slurp(cfg);
    char *at = strstr(text, "hidden: 16,");
    fprintf(f, "%.*shidden: 65536,%s", (int)(at - text), text, at + strlen("hidden: 16,"));
    fclose(f);
    free(text);
    static const char *const builds[] = {"info %s", "info %s --batch 4", "check %s",
                                         "train %s --out %s/big --steps 1"};
    for (int i = 0; i < 4; i++) {
        char args[1200];
        snprintf(args, sizeof args, builds[i], big, tmpdir);
        int rc = run(&err, "FLOWGRAD_MEMORY_AVAILABLE=1G ./examples/flowgrad %s", args);
        ck_assert_msg(rc == 1, "flowgrad %s: status %d: %s", args, rc, err);
        ck_assert_msg(strstr(err, "the model needs about ") &&
                      strstr(err, "more than the 1 GiB available: lower hidden, steps or "
                             "levels"), "flowgrad %s: %s", args, err);
        free(err);
    }
}
END_TEST

/* Finding 4: optim.step = 2^63 - 1 overflowed on the next step; counters
 * beyond any run are refused, and so are the train state's. */
START_TEST(counters_out_of_range_are_refused)
{
    setup();
    char cfg[512], ckpt[512];
    train_tiny("count", "true", cfg, ckpt, sizeof cfg);
    const char *bad = with_i64(ckpt, "step.safetensors", "optim.step", 0, INT64_MAX);
    refused_by_all(cfg, bad, "tensor 'optim.step' holds 9223372036854775807; expected a count "
                             "in [0, 1099511627776]");
    bad = with_i64(ckpt, "state.safetensors", "train.epoch", 0, -1);
    refused_by_all(cfg, bad, "tensor 'train.epoch' holds -1; expected a count in [0, "
                             "1099511627776]");
}
END_TEST

/* Finding 5: NaN or Inf in ema.* (and optimizer moments) was accepted by
 * train --resume, which then wrote a checkpoint eval refused. */
START_TEST(nonfinite_optimizer_and_ema_state_is_refused)
{
    setup();
    char cfg[512], ckpt[512];
    train_tiny("ema", "true", cfg, ckpt, sizeof cfg);
    const char *bad = with_f32(ckpt, "ema.safetensors", "ema.flow.3.coupling.nn.0.weight", 3,
                               NAN);
    refused_by_all(cfg, bad, "tensor 'ema.flow.3.coupling.nn.0.weight' holds NaN at index 3");
    bad = with_f32(ckpt, "m.safetensors", "optim.m.flow.1.actnorm.logs", 0, -INFINITY);
    refused_by_all(cfg, bad, "tensor 'optim.m.flow.1.actnorm.logs' holds -Inf at index 0 of 4");
    bad = with_f32(ckpt, "v.safetensors", "optim.v.flow.1.actnorm.logs", 2, -1.0f);
    refused_by_all(cfg, bad, "tensor 'optim.v.flow.1.actnorm.logs' holds -1 at index 2 of 4; "
                             "expected a non-negative second moment");
    /* The run that was refused wrote nothing. */
    char resumed[512];
    snprintf(resumed, sizeof resumed, "%s/resumed/checkpoint.safetensors", tmpdir);
    struct stat sb;
    ck_assert_int_ne(stat(resumed, &sb), 0);
}
END_TEST

/* Finding 6: the message for a non-finite tensor was formatted into the
 * buffer it was read from ("PATH: PATH: .0.weight'"); the exact text. */
START_TEST(nonfinite_message_is_exact)
{
    setup();
    char cfg[512], ckpt[512];
    train_tiny("text", "true", cfg, ckpt, sizeof cfg);
    const char *bad = with_f32(ckpt, "nan.safetensors", "flow.3.coupling.nn.0.weight", 5, NAN);
    char expect[1024];
    /* 16 hidden x 2 channels x 3 x 3 */
    snprintf(expect, sizeof expect, "%s: tensor 'flow.3.coupling.nn.0.weight' holds NaN at "
             "index 5 of 288; expected finite values", bad);
    fg_checkpoint c;
    ck_assert_int_eq(fg_checkpoint_load(bad, -1, &c), FG_ERR);
    ck_assert_str_eq(fg_last_error(), expect);
    static const char *const cmds[] = {"eval", "sample", "reconstruct", "info"};
    static const char *const opts[] = {"", " --n 4 --out ", " --out ", ""};
    for (int i = 0; i < 4; i++) {
        char *err, line[1200];
        int rc = run(&err, "./examples/flowgrad %s %s%s%s", cmds[i], bad, opts[i],
                     opts[i][0] ? "never.png" : "");
        ck_assert_int_eq(rc, 1);
        snprintf(line, sizeof line, "flowgrad %s: %s\n", cmds[i], expect);
        ck_assert_str_eq(err, line);
        free(err);
    }
    bad = with_f32(ckpt, "inf.safetensors", "prior.learn_top.bias", 7, -INFINITY);
    snprintf(expect, sizeof expect, "%s: tensor 'prior.learn_top.bias' holds -Inf at index 7 "
             "of 16; expected finite values", bad);
    ck_assert_int_eq(fg_checkpoint_load(bad, -1, &c), FG_ERR);
    ck_assert_str_eq(fg_last_error(), expect);
}
END_TEST

/* The library's value checks on hand-made files, one meaning at a time. */
static const char *check_one(const char *name, fg_dtype dt, int n, const void *v)
{
    fg_safetensors st;
    fg_st_init(&st);
    int64_t shape[1] = {n};
    fg_st_add(&st, name, dt, 1, shape, v, 1);
    st.path = strdup("hand.safetensors");
    int rc = fg_checkpoint_check_values(&st);
    fg_st_free(&st);
    return rc == FG_OK ? NULL : fg_last_error();
}

START_TEST(values_are_checked_by_meaning)
{
    const float perm[4] = {2, 0, 3, 1}, repeat[4] = {2, 0, 2, 1}, signs[3] = {1, -1, 1};
    ck_assert_ptr_null(check_one("flow.2.invconv.p", FG_DT_F32, 4, perm));
    ck_assert_ptr_null(check_one("flow.7.permute.perm", FG_DT_F32, 4, perm));
    ck_assert_str_eq(check_one("flow.7.permute.perm", FG_DT_F32, 4, repeat),
                     "hand.safetensors: tensor 'flow.7.permute.perm' holds 2 at index 0 and at "
                     "index 2; expected a permutation of 0..3 (each whole number once)");
    const float nan_perm[2] = {NAN, 0};
    ck_assert_str_eq(check_one("flow.2.invconv.p", FG_DT_F32, 2, nan_perm),
                     "hand.safetensors: tensor 'flow.2.invconv.p' holds NaN at index 0 of 2; "
                     "expected finite values");
    ck_assert_ptr_null(check_one("flow.2.invconv.sign", FG_DT_F32, 3, signs));
    const float half[3] = {1, -0.5f, 1};
    ck_assert_str_eq(check_one("flow.2.invconv.sign", FG_DT_F32, 3, half),
                     "hand.safetensors: tensor 'flow.2.invconv.sign' holds -0.5 at index 1; "
                     "expected +1 or -1 (the signs of the LU diagonal; 0 makes W singular)");
    const float flag[1] = {0.5f};
    ck_assert_str_eq(check_one("flow.1.actnorm.initialized", FG_DT_F32, 1, flag),
                     "hand.safetensors: tensor 'flow.1.actnorm.initialized' holds 0.5 at index "
                     "0; expected 0 or 1 (a flag)");
    const int64_t ok_step[1] = {1LL << 40}, big[1] = {(1LL << 40) + 1};
    ck_assert_ptr_null(check_one("optim.step", FG_DT_I64, 1, ok_step));
    ck_assert_str_eq(check_one("optim.step", FG_DT_I64, 1, big),
                     "hand.safetensors: tensor 'optim.step' holds 1099511627777; expected a "
                     "count in [0, 1099511627776]");
    const int64_t state[4] = {5, 0, 2147483648LL, 3};
    ck_assert_str_eq(check_one("train.state", FG_DT_I64, 4, state),
                     "hand.safetensors: tensor 'train.state' holds position 2147483648; "
                     "expected a count in [0, 2147483647]");
    /* A name no rule knows is only required to be finite. */
    const float any[2] = {-3, 1e30f};
    ck_assert_ptr_null(check_one("flow.3.coupling.nn.6.logs", FG_DT_F32, 2, any));
}
END_TEST

static int is_kind(const char *path, mode_t kind)
{
    struct stat sb;
    return stat(path, &sb) == 0 && (sb.st_mode & S_IFMT) == kind;
}

/* Finding 7: --out naming a device node replaced it with a PNG. Devices,
 * fifos and directories are refused and stay what they were; a regular
 * file is still replaced. */
START_TEST(out_never_replaces_what_is_not_a_regular_file)
{
    setup();
    char cfg[512], ckpt[512];
    train_tiny("out", "true", cfg, ckpt, sizeof cfg);
    char fifo[512], dir[512], node[512], file[512];
    snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
    snprintf(dir, sizeof dir, "%s/adir", tmpdir);
    snprintf(node, sizeof node, "%s/null", tmpdir);
    snprintf(file, sizeof file, "%s/old.png", tmpdir);
    ck_assert_msg(mkfifo(fifo, 0600) == 0, "mkfifo %s: %s", fifo, strerror(errno));
    ck_assert_msg(mkdir(dir, 0700) == 0, "mkdir %s: %s", dir, strerror(errno));
    /* A character device needs CAP_MKNOD: as root, the node of /dev/null. */
    int have_node = mknod(node, S_IFCHR | 0600, makedev(1, 3)) == 0;
    struct { const char *path; mode_t kind; const char *says; } outs[] = {
        {fifo, S_IFIFO, "exists and is a fifo; only a regular file is replaced"},
        {dir, S_IFDIR, "exists and is a directory; only a regular file is replaced"},
        {node, S_IFCHR, "exists and is a character device; only a regular file is replaced"},
    };
    for (int i = 0; i < 3; i++) {
        if (i == 2 && !have_node)
            break;
        char *err;
        int rc = run(&err, "./examples/flowgrad sample %s --n 4 --out %s", ckpt, outs[i].path);
        ck_assert_msg(rc == 1, "--out %s: status %d: %s", outs[i].path, rc, err);
        ck_assert_msg(strstr(err, outs[i].path) && strstr(err, outs[i].says), "%s", err);
        free(err);
        ck_assert(is_kind(outs[i].path, outs[i].kind));
        rc = run(&err, "./examples/flowgrad reconstruct %s --out %s", ckpt, outs[i].path);
        ck_assert_int_eq(rc, 1);
        free(err);
        ck_assert(is_kind(outs[i].path, outs[i].kind));
    }
    FILE *f = fopen(file, "w");
    fputs("old", f);
    fclose(f);
    ck_assert_int_eq(run(NULL, "./examples/flowgrad sample %s --n 4 --out %s", ckpt, file), 0);
    char *png = slurp(file);
    ck_assert(png && memcmp(png, "\x89PNG", 4) == 0);
    free(png);
}
END_TEST

static void touch(const char *dir, const char *name)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("partial", f);
    fclose(f);
}

static int present(const char *dir, const char *name)
{
    char p[700];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return lstat(p, &sb) == 0;
}

/* Finding 8: a kill during a checkpoint write left checkpoint.safetensors
 * .tmp.<pid> for good. The next write into the folder removes the
 * temporaries whose writer is gone, and nothing else. */
START_TEST(temporaries_of_dead_writers_are_removed)
{
    setup();
    char out[512];
    snprintf(out, sizeof out, "%s/stale", tmpdir);
    mkdir(out, 0777);
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(dead, NULL, 0), dead);
    char gone[128], alive[128], link_name[128], sample[128];
    snprintf(gone, sizeof gone, "checkpoint.safetensors.tmp.%d", (int)dead);
    snprintf(sample, sizeof sample, "samples_5.png.tmp.%d", (int)dead);
    snprintf(alive, sizeof alive, "checkpoint.safetensors.tmp.%d", (int)getpid());
    snprintf(link_name, sizeof link_name, "link.tmp.%d", (int)dead);
    touch(out, gone);
    touch(out, sample);
    touch(out, alive);
    touch(out, "notes.tmp.x");
    touch(out, ".tmp.1");
    char target[700], lp[700];
    snprintf(target, sizeof target, "%s/notes.tmp.x", out);
    snprintf(lp, sizeof lp, "%s/%s", out, link_name);
    ck_assert_int_eq(symlink(target, lp), 0);
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/stale.yaml", tmpdir);
    FILE *f = fopen(cfg, "w");
    fprintf(f, tiny_yaml, "true");
    fclose(f);
    ck_assert_int_eq(run(NULL, "./examples/flowgrad train %s --out %s --threads 1", cfg, out),
                     0);
    ck_assert(present(out, "checkpoint.safetensors"));
    ck_assert(!present(out, gone));
    ck_assert(!present(out, sample));
    ck_assert(present(out, alive));          /* its writer (this test) still runs */
    ck_assert(present(out, "notes.tmp.x"));  /* not a pid */
    ck_assert(present(out, ".tmp.1"));       /* no name before the suffix */
    ck_assert(present(out, link_name));      /* links are never followed or removed */
    /* The library call alone, with nothing left to remove. */
    char any[600];
    snprintf(any, sizeof any, "%s/checkpoint.safetensors", out);
    ck_assert_int_eq(fg_atomic_remove_stale(any), 0);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = fg_tcase("hostile");
    tcase_add_test(tc, broken_permutation_is_refused);
    tcase_add_test(tc, zero_lu_signs_are_refused);
    tcase_add_test(tc, singular_weights_are_refused);
    tcase_add_test(tc, huge_declared_model_is_refused_before_building);
    tcase_add_test(tc, counters_out_of_range_are_refused);
    tcase_add_test(tc, nonfinite_optimizer_and_ema_state_is_refused);
    tcase_add_test(tc, nonfinite_message_is_exact);
    tcase_add_test(tc, values_are_checked_by_meaning);
    tcase_add_test(tc, out_never_replaces_what_is_not_a_regular_file);
    tcase_add_test(tc, temporaries_of_dead_writers_are_removed);
    suite_add_tcase(s, tc);
    return s;
}
