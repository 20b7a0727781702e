/* The flowgrad command line end to end on a tiny synthetic model: training
 * lowers the loss, checkpoints round-trip, a resumed run repeats an
 * uninterrupted one bit for bit, damaged checkpoints are refused, and every
 * subcommand runs and writes its output; decoded images that overflowed are
 * drawn grey, not fatal; running out of memory is a clean exit. */
#include "check_main.h"
#include "flowgrad.h"
#include "models/model.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char config[1024];
static char tmpdir[256];

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

static int exists(const char *dir, const char *name)
{
    char p[1024];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0 && sb.st_size > 0;
}

/* Train bits/dim of every step in dir/metrics.csv, and (when not NULL)
 * the gradient norm and the guard's event (0 taken, 1 skipped, 2 skipped
 * and the update before undone), columns 8 and 10. */
static int read_steps(const char *dir, double *out, double *norms, int *events, int max)
{
    char p[1024], line[512];
    snprintf(p, sizeof p, "%s/metrics.csv", dir);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    int n = 0;
    if (!fgets(line, sizeof line, f))
        line[0] = 0;
    ck_assert_msg(strstr(line, ",elapsed_s,grad_norm,clip,guard,invert_drift,invert_residual\n")
                  != NULL, "header: %s", line);
    while (fgets(line, sizeof line, f) && n < max) {
        long step, epoch;
        double bpd;
        if (sscanf(line, "%ld,%ld,%lf,", &step, &epoch, &bpd) == 3) {
            const char *c = line;
            for (int k = 0; k < 7 && c; k++)
                c = strchr(c, ',') ? strchr(c, ',') + 1 : NULL;
            if (norms)
                norms[n] = c ? atof(c) : NAN;
            /* Two columns on, the guard's event. */
            for (int k = 0; k < 2 && c; k++)
                c = strchr(c, ',') ? strchr(c, ',') + 1 : NULL;
            if (events)
                events[n] = c ? atoi(c) : -1;
            out[n++] = bpd;
        }
    }
    fclose(f);
    return n;
}

static void setup(void)
{
    fg_test_path("tests/configs/cli-tiny.yaml", config, sizeof config);
    fg_test_scratch_dir("cli", tmpdir, sizeof tmpdir);
}

START_TEST(loss_falls_and_resume_is_bitwise)
{
    setup();
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/full --threads 1", config, tmpdir), 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/full", tmpdir);
    ck_assert(exists(dir, "checkpoint.safetensors"));
    ck_assert(exists(dir, "samples_15.png"));
    double full[64], full_norm[64];
    int n = read_steps(dir, full, full_norm, NULL, 64);
    ck_assert_int_eq(n, 30);
    for (int i = 0; i < n; i++)
        ck_assert_msg(isfinite(full_norm[i]) && full_norm[i] > 0, "step %d: gradient norm %g",
                      i + 1, full_norm[i]);
    /* The first five steps against the last five: a clear fall. */
    double first = 0, last = 0;
    for (int i = 0; i < 5; i++) {
        first += full[i] / 5;
        last += full[n - 5 + i] / 5;
    }
    ck_assert_msg(last < first - 0.3, "bits/dim %.4f -> %.4f", first, last);

    /* Stopped after 10 steps as by SIGTERM, then resumed to 30: the losses
     * of steps 11..30 must match. Stopped, not run with --steps 10, so that
     * both runs have the same schedule; the guard's window and counters
     * travel in the checkpoint. */
    ck_assert_int_eq(run("FLOWGRAD_STOP_AFTER=10 ./examples/flowgrad train %s --out %s/part "
                         "--threads 1", config, tmpdir), 143);
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/part --threads 1 --resume "
                         "%s/part/checkpoint.safetensors", config, tmpdir, tmpdir), 0);
    snprintf(dir, sizeof dir, "%s/part", tmpdir);
    double part[64], part_norm[64];
    ck_assert_int_eq(read_steps(dir, part, part_norm, NULL, 64), 30);
    for (int i = 0; i < 30; i++) {
        ck_assert_msg(part[i] == full[i], "step %d: %.6f vs %.6f", i + 1, part[i], full[i]);
        ck_assert_msg(part_norm[i] == full_norm[i], "step %d: gradient norm %g vs %g", i + 1,
                      part_norm[i], full_norm[i]);
    }
    /* Resumed into a new folder: its metrics.csv starts with the header,
     * and holds the resumed steps only. */
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/elsewhere --threads 1 --resume "
                         "%s/part/checkpoint.safetensors --steps 32", config, tmpdir, tmpdir), 0);
    snprintf(dir, sizeof dir, "%s/elsewhere", tmpdir);
    double moved[64];
    ck_assert_int_eq(read_steps(dir, moved, NULL, NULL, 64), 2);
}
END_TEST

/* An outlier batch (FLOWGRAD_INJECT_OUTLIER: step 20's images times 30)
 * is skipped by the guard, the update before it undone, and the run ends
 * finite; with guard: false the same batch is trained on. */
/* Copies file src to dst with each line that starts with prefix replaced. */
static void copy_replacing(const char *src, const char *dst, const char *prefix,
                           const char *line_out)
{
    FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
    ck_assert(in && out);
    char line[1024];
    int replaced = 0;
    while (fgets(line, sizeof line, in)) {
        int hit = !strncmp(line, prefix, strlen(prefix));
        fputs(hit ? line_out : line, out);
        replaced += hit;
    }
    fclose(in);
    fclose(out);
    ck_assert_int_eq(replaced, 1);
}

START_TEST(guard_skips_injected_outlier)
{
    setup();
    ck_assert_int_eq(run("FLOWGRAD_INJECT_OUTLIER=20 ./examples/flowgrad train %s --out "
                         "%s/spike --threads 1", config, tmpdir), 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/spike", tmpdir);
    double bpd[64], norm[64];
    int event[64];
    ck_assert_int_eq(read_steps(dir, bpd, norm, event, 64), 30);
    ck_assert_msg(bpd[19] > 1000, "step 20: %g bits/dim, expected the injected outlier",
                  bpd[19]);
    for (int i = 0; i < 30; i++) {
        ck_assert_msg(event[i] == (i == 19 ? 2 : 0), "step %d: guard event %d", i + 1,
                      event[i]);
        if (i != 19)
            ck_assert_msg(isfinite(bpd[i]) && bpd[i] < 6, "step %d: %g bits/dim", i + 1,
                          bpd[i]);
    }
    /* Without the guard, the same batch goes into the weights. */
    char edited[1024];
    snprintf(edited, sizeof edited, "%s/noguard.yaml", tmpdir);
    copy_replacing(config, edited, "  clip_factor:", "  guard: false\n");
    ck_assert_int_eq(run("FLOWGRAD_INJECT_OUTLIER=20 ./examples/flowgrad train %s --out "
                         "%s/spike2 --threads 1", edited, tmpdir), 0);
    snprintf(dir, sizeof dir, "%s/spike2", tmpdir);
    double bpd2[64];
    ck_assert_int_eq(read_steps(dir, bpd2, NULL, event, 64), 30);
    ck_assert_msg(bpd2[19] > 1000, "step 20: %g bits/dim without the guard", bpd2[19]);
    for (int i = 0; i < 30; i++)
        ck_assert_int_eq(event[i], 0);
}
END_TEST

/* A copy of the tiny config training on dir/images (two class folders of
 * 10x8 PNGs, centre-cropped to 8x8) for steps steps, flipping or not. */
static void write_folder_config(const char *path, const char *images, int flip, int steps)
{
    char src[1 << 12];
    FILE *f = fopen(config, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(src, 1, sizeof src - 1, f);
    fclose(f);
    src[n] = '\0';
    char *ds = strstr(src, "dataset: {name: synthetic}"), *cls = strstr(src, "classes: 10");
    char *st = strstr(src, "steps: 30");
    ck_assert(ds && cls && st && cls < ds && ds < st);
    *ds = *cls = *st = '\0';
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%sclasses: 2%sdataset: {name: folder, path: %s, flip: %s}%ssteps: %d%s", src,
            cls + strlen("classes: 10"), images, flip ? "true" : "false",
            ds + strlen("dataset: {name: synthetic}"), steps, st + strlen("steps: 30"));
    ck_assert_int_eq(fclose(f), 0);
}

static void write_image_folder(const char *dir)
{
    char p[1024];
    float x[8 * 10];
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%s", dir, k ? "right" : "left");
        ck_assert(mkdir(dir, 0777) == 0 || errno == EEXIST);
        ck_assert(mkdir(p, 0777) == 0 || errno == EEXIST);
        for (int i = 0; i < 24; i++) {
            /* A ramp rising to the left or to the right: flips matter. */
            for (int y = 0; y < 8; y++)
                for (int c = 0; c < 10; c++)
                    x[y * 10 + c] = (float)((k ? c : 9 - c) * 0.09 + y * 0.01 + i * 0.002) - 0.5f;
            snprintf(p, sizeof p, "%s/%s/%02d.png", dir, k ? "right" : "left", i);
            ck_assert_int_eq(fg_png_write_grid(p, x, 1, 1, 8, 10, 1, 1, 0), FG_OK);
        }
    }
}

/* Every tensor of two checkpoints, byte for byte. */
static void assert_same_checkpoints(const char *a, const char *b)
{
    fg_safetensors x, y;
    fg_st_init(&x);
    fg_st_init(&y);
    ck_assert_int_eq(fg_st_read(&x, a), FG_OK);
    ck_assert_int_eq(fg_st_read(&y, b), FG_OK);
    ck_assert_int_eq(x.n, y.n);
    for (int i = 0; i < x.n; i++) {
        const fg_st_tensor *t = fg_st_find(&y, x.t[i].name);
        ck_assert_msg(t && t->nbytes == x.t[i].nbytes, "%s", x.t[i].name);
        ck_assert_msg(!memcmp(t->data, x.t[i].data, t->nbytes), "%s differs", x.t[i].name);
    }
    fg_st_free(&x);
    fg_st_free(&y);
}

/* Random flips on a folder of the user's kind of images: 12 steps at once,
 * or 5 and a resume to 12, end with the same checkpoint to the bit; the
 * same run without flips ends elsewhere. */
START_TEST(flipped_folder_run_resumes_bitwise)
{
    setup();
    char images[512], flip_cfg[512], plain_cfg[512], a[600], b[600], c[600];
    snprintf(images, sizeof images, "%s/images", tmpdir);
    snprintf(flip_cfg, sizeof flip_cfg, "%s/flip.yaml", tmpdir);
    snprintf(plain_cfg, sizeof plain_cfg, "%s/plain.yaml", tmpdir);
    write_image_folder(images);
    write_folder_config(flip_cfg, images, 1, 12);
    write_folder_config(plain_cfg, images, 0, 12);
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/flip-full --threads 1",
                         flip_cfg, tmpdir), 0);
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/flip-part --threads 1 --steps 5",
                         flip_cfg, tmpdir), 0);
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/flip-part --threads 1 --resume "
                         "%s/flip-part/checkpoint.safetensors", flip_cfg, tmpdir, tmpdir), 0);
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/plain --threads 1", plain_cfg,
                         tmpdir), 0);
    snprintf(a, sizeof a, "%s/flip-full/checkpoint.safetensors", tmpdir);
    snprintf(b, sizeof b, "%s/flip-part/checkpoint.safetensors", tmpdir);
    snprintf(c, sizeof c, "%s/plain/checkpoint.safetensors", tmpdir);
    assert_same_checkpoints(a, b);
    double full[16], plain[16];
    snprintf(a, sizeof a, "%s/flip-full", tmpdir);
    snprintf(c, sizeof c, "%s/plain", tmpdir);
    ck_assert_int_eq(read_steps(a, full, NULL, NULL, 16), 12);
    ck_assert_int_eq(read_steps(c, plain, NULL, NULL, 16), 12);
    int differ = 0;
    for (int i = 0; i < 12; i++)
        differ += full[i] != plain[i];
    ck_assert_int_gt(differ, 0);
}
END_TEST

/* Checkpoint round trip at the library level: the model loaded from the
 * file has the same state, and gives the same log-density. */
START_TEST(checkpoint_round_trip)
{
    setup();
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/rt --threads 1 --steps 5",
                         config, tmpdir), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/rt/checkpoint.safetensors", tmpdir);
    fg_safetensors st;
    fg_st_init(&st);
    ck_assert_int_eq(fg_st_read(&st, path), FG_OK);
    const char *text = fg_st_get_meta(&st, "config");
    ck_assert_ptr_nonnull(text);
    fg_config *cfg;
    ck_assert_int_eq(fg_config_load_string(text, strlen(text), "ckpt", &cfg), FG_OK);
    fg_model *m;
    ck_assert_int_eq(fg_model_build(&cfg->model, 99, &m), FG_OK);
    ck_assert_int_eq(fg_st_load_state(&st, &m->state, ""), FG_OK);
    /* Every actnorm was initialized by training and says so. */
    int flags = 0;
    for (int i = 0; i < m->state.n; i++)
        if (strstr(m->state.items[i].name, "initialized")) {
            ck_assert_float_eq(m->state.items[i].var->t.data[0], 1.0f);
            flags++;
        }
    ck_assert_int_gt(flags, 0);
    /* Written again and read back: identical bytes per tensor. */
    fg_safetensors out;
    fg_st_init(&out);
    fg_st_add_state(&out, &m->state);
    char path2[512];
    snprintf(path2, sizeof path2, "%s/rt/again.safetensors", tmpdir);
    ck_assert_int_eq(fg_st_write(&out, path2), FG_OK);
    fg_safetensors back;
    fg_st_init(&back);
    ck_assert_int_eq(fg_st_read(&back, path2), FG_OK);
    for (int i = 0; i < m->state.n; i++) {
        const fg_st_tensor *a = fg_st_find(&st, m->state.items[i].name);
        const fg_st_tensor *b = fg_st_find(&back, m->state.items[i].name);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        ck_assert_uint_eq(a->nbytes, b->nbytes);
        ck_assert(memcmp(a->data, b->data, a->nbytes) == 0);
    }
    /* The evaluated bits/dim from the command line equals a direct one. */
    fg_graph *g = fg_graph_create();
    fg_dataset d;
    fg_dataset_synthetic(&d, 256, 1, 8, 8, cfg->train.seed * 2 + 1);
    int idx[16], y[16];
    for (int i = 0; i < 16; i++) idx[i] = i;
    fg_dataset_labels(&d, idx, 16, y);
    fg_rng rng;
    fg_rng_seed(&rng, 3);
    int shape[4] = {16, 1, 8, 8};
    fg_set_grad_enabled(g, 0);
    fg_var *x = fg_const(g, 4, shape);
    fg_dequantize(&d, idx, 16, cfg->model.n_bits, &rng, x->t.data);
    fg_var *bpd = fg_model_bits_per_dim(m, g, x, y);
    double mean = fg_k_sum(16, bpd->t.data) / 16;
    ck_assert(isfinite(mean) && mean > 0.5 && mean < 8);
    fg_graph_destroy(g);
    fg_dataset_free(&d);
    fg_st_free(&st);
    fg_st_free(&out);
    fg_st_free(&back);
    fg_model_free(m);
    fg_config_free(cfg);
}
END_TEST

static void damage(const char *src, const char *dst, long at, int truncate)
{
    FILE *f = fopen(src, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), n);
    fclose(f);
    if (!truncate)
        buf[at] ^= 0x5a;
    FILE *o = fopen(dst, "wb");
    fwrite(buf, 1, truncate ? (size_t)at : (size_t)n, o);
    fclose(o);
    free(buf);
}

START_TEST(damaged_checkpoints_are_refused)
{
    setup();
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/bad --threads 1 --steps 3",
                         config, tmpdir), 0);
    char good[512], bad[512];
    snprintf(good, sizeof good, "%s/bad/checkpoint.safetensors", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad/broken.safetensors", tmpdir);
    struct stat sb;
    stat(good, &sb);
    /* Truncated in the data, truncated in the header, a header byte flipped. */
    long cuts[3] = {sb.st_size - 100, 20, 4};
    for (int i = 0; i < 3; i++) {
        damage(good, bad, cuts[i], i != 2);
        ck_assert_int_eq(run("./examples/flowgrad eval %s", bad), 1);
        ck_assert_int_eq(run("./examples/flowgrad train %s --out %s/bad2 --resume %s", config,
                             tmpdir, bad), 1);
    }
    /* The library says what is wrong. */
    {
        fg_safetensors st;
        fg_st_init(&st);
        damage(good, bad, sb.st_size / 2, 1);
        ck_assert_int_eq(fg_st_read(&st, bad), FG_ERR);
        ck_assert_ptr_nonnull(strstr(fg_last_error(), "broken.safetensors"));
    }
}
END_TEST

/* --out makes missing parent folders, as the README's first command needs
 * on a fresh clone (runs/quick with no runs/). */
START_TEST(train_creates_nested_out)
{
    setup();
    char d[512];
    snprintf(d, sizeof d, "%s/nested/a/b", tmpdir);
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s --threads 1 --steps 2", config, d), 0);
    ck_assert(exists(d, "checkpoint.safetensors"));
}
END_TEST

/* --memory invert: the drift columns are written at step 1 and left empty
 * in between, stay at float rounding, and the losses follow store's. */
START_TEST(train_in_invert_mode_writes_drift)
{
    setup();
    const char *F = "./examples/flowgrad";
    ck_assert_int_eq(run("%s train %s --out %s/inv --threads 1 --memory invert", F, config,
                         tmpdir), 0);
    ck_assert_int_eq(run("%s train %s --out %s/sto --threads 1 --memory store", F, config,
                         tmpdir), 0);
    ck_assert_int_eq(run("%s train %s --out %s/x --memory swap", F, config, tmpdir), 2);
    char dir[512], p[1024], line[512];
    double inv[64], sto[64];
    snprintf(dir, sizeof dir, "%s/inv", tmpdir);
    ck_assert_int_eq(read_steps(dir, inv, NULL, NULL, 64), 30);
    snprintf(dir, sizeof dir, "%s/sto", tmpdir);
    ck_assert_int_eq(read_steps(dir, sto, NULL, NULL, 64), 30);
    for (int i = 0; i < 30; i++)
        ck_assert_msg(fabs(inv[i] - sto[i]) < 1e-3, "step %d: %.6f (invert) vs %.6f (store)",
                      i + 1, inv[i], sto[i]);
    snprintf(p, sizeof p, "%s/inv/metrics.csv", tmpdir);
    FILE *f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        long step;
        int commas = 0;
        for (const char *q = line; *q; q++)
            commas += *q == ',';
        if (sscanf(line, "%ld,", &step) != 1 || commas != 11)
            continue;   /* the header */
        /* Empty train bits/dim: an end-of-epoch test row. */
        if (strstr(line, ",,") == strchr(strchr(line, ',') + 1, ','))
            continue;
        const char *c = line;
        for (int k = 0; k < 10; k++)
            c = strchr(c, ',') + 1;
        if (step == 1) {
            double drift = atof(c), residual = atof(strchr(c, ',') + 1);
            ck_assert_msg(c[0] != ',' && drift >= 0 && drift < 1e-4 && residual >= 0 &&
                          residual < 1e-4, "step 1: %s", line);
        } else if (step < 30) {
            ck_assert_msg(strcmp(c, ",\n") == 0, "step %ld: %s", step, line);
        }
        rows++;
    }
    fclose(f);
    ck_assert_int_ge(rows, 30);
}
END_TEST

/* Out of memory (FLOWGRAD_FAIL_ALLOC=N fails the Nth allocation): status 3
 * and a message naming the allocation, never a signal; the checkpoint the
 * run resumed from is left byte for byte, with no temporary beside it. A
 * value that is not a count is ignored with a warning. */
START_TEST(out_of_memory_exits_3_and_keeps_the_checkpoint)
{
    setup();
    char d[512], ck[600];
    snprintf(d, sizeof d, "%s/oom", tmpdir);
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", d);
    ck_assert_int_eq(run("./examples/flowgrad train %s --out %s --threads 1 --steps 2", config, d),
                     0);
    ck_assert_int_eq(run("cp %s %s/before", ck, tmpdir), 0);
    static const long at[] = {1, 50, 1000, 3000};
    for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
        ck_assert_int_eq(run("rm -f %s/log", tmpdir), 0);
        ck_assert_int_eq(run("FLOWGRAD_FAIL_ALLOC=%ld ./examples/flowgrad train %s --out %s "
                             "--threads 1 --steps 4 --resume %s", at[i], config, d, ck),
                         FG_EXIT_OUT_OF_MEMORY);
        ck_assert_int_eq(run("grep -Eq '^flowgrad: out of memory \\([a-z_]+\\): cannot "
                             "(allocate|grow) ' %s/log", tmpdir), 0);
        ck_assert_int_eq(run("cmp %s %s/before", ck, tmpdir), 0);
        ck_assert_int_eq(run("ls %s | grep -q '[.]tmp[.]'", d), 1);
    }
    ck_assert_int_eq(run("rm -f %s/log", tmpdir), 0);
    ck_assert_int_eq(run("FLOWGRAD_FAIL_ALLOC=many ./examples/flowgrad train %s --out %s "
                         "--threads 1 --steps 1", config, d), 0);
    ck_assert_int_eq(run("grep -q 'FLOWGRAD_FAIL_ALLOC=many ignored' %s/log", tmpdir), 0);
}
END_TEST

START_TEST(every_subcommand_runs)
{
    setup();
    const char *F = "./examples/flowgrad";
    ck_assert_int_eq(run("%s train %s --out %s/sub --threads 1 --steps 12", F, config, tmpdir), 0);
    char ck[512], d[512];
    snprintf(ck, sizeof ck, "%s/sub/checkpoint.safetensors", tmpdir);
    snprintf(d, sizeof d, "%s/sub", tmpdir);
    ck_assert_int_eq(run("%s eval %s --json", F, ck), 0);
    ck_assert_int_eq(run("%s eval %s --json --limit 64 | grep -q '\"median_bits_per_dim\": [0-9]'",
                         F, ck), 0);
    ck_assert_int_eq(run("%s eval %s --split train --limit 64", F, ck), 0);
    ck_assert_int_eq(run("%s sample %s --n 8 --temperature 0.5,0.7 --out %s/s.png", F, ck, d), 0);
    ck_assert(exists(d, "s.png"));
    ck_assert_int_eq(run("%s reconstruct %s --out %s/r.png --json", F, ck, d), 0);
    ck_assert(exists(d, "r.png"));
    ck_assert_int_eq(run("%s interpolate %s --from 0 --to 3 --steps 5 --out %s/i.png", F, ck, d), 0);
    ck_assert(exists(d, "i.png"));
    ck_assert_int_eq(run("%s manipulate %s --from-class 0 --to-class 2 --alpha 0,0.5,1 "
                         "--out %s/m.png", F, ck, d), 0);
    ck_assert(exists(d, "m.png"));
    ck_assert_int_eq(run("%s info %s --json", F, ck), 0);
    ck_assert_int_eq(run("%s info %s", F, config), 0);
    ck_assert_int_eq(run("%s check %s --json", F, config), 0);
    ck_assert_int_eq(run("%s --help", F), 0);
    const char *cmds[] = {"train", "eval", "sample", "reconstruct", "interpolate",
                          "manipulate", "check", "info"};
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(run("%s %s --help", F, cmds[i]), 0);
        ck_assert_int_eq(run("%s %s --no-such-option", F, cmds[i]), 2);
    }
    /* Bad values name the argument and fail. */
    ck_assert_int_eq(run("%s sample %s --n zero --out %s/x.png", F, ck, d), 2);
    ck_assert_int_eq(run("%s sample %s --temperature 0.5,abc --out %s/x.png", F, ck, d), 2);
    ck_assert_int_eq(run("%s train %s --steps 3 --epochs 2", F, config), 2);
    ck_assert_int_eq(run("%s interpolate %s --from 0 --to 100000 --out %s/x.png", F, ck, d), 2);
    ck_assert_int_eq(run("%s eval /nonexistent.safetensors", F), 1);
    ck_assert_int_eq(run("%s bogus", F), 2);
}
END_TEST

/* What the last run_capture printed (stdout and stderr). */
static char captured[8192];

static int run_capture(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_capture(const char *fmt, ...)
{
    char cmd[4096], full[8192], path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(path, sizeof path, "%s/captured", tmpdir);
    snprintf(full, sizeof full, "%s >%s 2>&1", cmd, path);
    int st = system(full);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(captured, 1, sizeof captured - 1, f) : 0;
    captured[n] = 0;
    if (f)
        fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define EXPECT_OUTPUT(phrase) \
    ck_assert_msg(strstr(captured, phrase) != NULL, "expected '%s' in: %s", phrase, captured)

/* A flow conditioned on the class (condition: class) through every command:
 * the data's labels are its condition in training, evaluation and the
 * commands that encode; sample draws one row per class by default or one
 * class; a label out of range, a folder without labels and a tensor
 * condition the command line cannot give are refused. */
START_TEST(conditional_model_commands)
{
    setup();
    const char *F = "./examples/flowgrad";
    char cfg[1024], ck[1024], d[512];
    fg_test_path("tests/configs/cond-tiny.yaml", cfg, sizeof cfg);
    snprintf(d, sizeof d, "%s/cond", tmpdir);
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", d);
    ck_assert_int_eq(run("%s train %s --out %s --threads 1", F, cfg, d), 0);
    ck_assert_int_eq(run_capture("%s sample %s --out %s/grid.png --json", F, ck, d), 0);
    EXPECT_OUTPUT("\"n\": 10, \"rows\": 10,");
    ck_assert(exists(d, "grid.png"));
    ck_assert_int_eq(run_capture("%s sample %s --class 3 --n 4 --out %s/three.png --json", F,
                                 ck, d), 0);
    EXPECT_OUTPUT("\"n\": 4, \"rows\": 2,");
    ck_assert_int_eq(run_capture("%s sample %s --class 10 --out %s/x.png", F, ck, d), 2);
    EXPECT_OUTPUT("--class 10: expected a label in [0, 10) of a class-conditional model");
    ck_assert_int_eq(run_capture("%s sample %s --class 1 --per-class --out %s/x.png", F, ck,
                                 d), 2);
    EXPECT_OUTPUT("--per-class and --class: give one");
    ck_assert_int_eq(run("%s eval %s --json", F, ck), 0);
    ck_assert_int_eq(run("%s reconstruct %s --out %s/r.png", F, ck, d), 0);
    ck_assert_int_eq(run("%s interpolate %s --from 0 --to 3 --steps 4 --out %s/i.png", F, ck,
                         d), 0);
    ck_assert_int_eq(run("%s manipulate %s --from-class 0 --to-class 2 --alpha 0,1 --out "
                         "%s/m.png", F, ck, d), 0);
    ck_assert_int_eq(run_capture("%s check %s", F, cfg), 0);
    EXPECT_OUTPUT("all checks passed");
    /* Images without class subfolders carry no labels to condition on. */
    ck_assert_int_eq(run("mkdir -p %s/flat && cp %s/grid.png %s/flat/a.png", d, d, d), 0);
    ck_assert_int_eq(run_capture("%s eval %s --data %s/flat", F, ck, d), 1);
    EXPECT_OUTPUT("is class-conditional (10 classes) but the folder has no class subfolders");
    /* A tensor condition comes only from a program. */
    char tensor[1024], text[2048];
    fg_test_path("tests/configs/cond-tensor.yaml", tensor, sizeof tensor);
    ck_assert_int_eq(run_capture("%s check %s", F, tensor), 0);
    EXPECT_OUTPUT("all checks passed");
    snprintf(text, sizeof text, "%s/tensor.yaml", d);
    FILE *f = fopen(text, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "model:\n  type: glow\n  height: 8\n  width: 8\n  channels: 1\n  levels: 1\n"
               "  steps: 1\n  hidden: 4\n  condition: tensor\n  condition_channels: 2\n"
               "train:\n  dataset: {name: synthetic}\n  steps: 1\n");
    fclose(f);
    ck_assert_int_eq(run_capture("%s train %s --out %s/t", F, text, d), 1);
    EXPECT_OUTPUT("the model is conditioned on a tensor of 2 channels (condition: tensor), "
                  "which only a program using the library can give; flowgrad train "
                  "conditions on the data's labels");
}
END_TEST

/* Every config of the model zoo passes `flowgrad check`: round trip, the
 * analytic against the numerical log-determinant, and a gradient check, on
 * parameters moved off their identity start. */
static const char *const ZOO[] = {
    "fmnist-quick", "mnist", "cifar10", "generic-example", "ablation-fmnist",
    "realnvp-fmnist", "nice-fmnist", "icons", "fmnist-cond", "fmnist-quick-cond",
};

START_TEST(zoo_configs_pass_check)
{
    setup();
    char path[1024], rel[256];
    snprintf(rel, sizeof rel, "models/%s.yaml", ZOO[_i]);
    fg_test_path(rel, path, sizeof path);
    ck_assert_msg(run("./examples/flowgrad check %s", path) == 0,
                  "flowgrad check %s failed (see %s/log)", path, tmpdir);
}
END_TEST

/* Decoded images that overflowed are greyed one image at a time, counted,
 * and the finite ones are left exactly as they were. */
START_TEST(overflowed_images_are_greyed)
{
    int shape[4] = {3, 1, 2, 2};
    fg_tensor *x = fg_tensor_new(4, shape);
    for (int i = 0; i < 12; i++)
        x->data[i] = 0.1f * (float)(i + 1);
    x->data[5] = NAN;
    x->data[11] = INFINITY;
    ck_assert_int_eq(fg_images_grey_nonfinite(x), 2);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(x->data[i], 0.1f * (float)(i + 1));
    for (int i = 4; i < 12; i++)
        ck_assert_float_eq(x->data[i], 0.0f);
    ck_assert_int_eq(fg_images_grey_nonfinite(x), 0);
    fg_tensor_free(x);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = fg_tcase("cli");
    tcase_add_test(tc, loss_falls_and_resume_is_bitwise);
    tcase_add_test(tc, guard_skips_injected_outlier);
    tcase_add_test(tc, flipped_folder_run_resumes_bitwise);
    tcase_add_test(tc, checkpoint_round_trip);
    tcase_add_test(tc, damaged_checkpoints_are_refused);
    tcase_add_test(tc, every_subcommand_runs);
    tcase_add_test(tc, conditional_model_commands);
    tcase_add_test(tc, overflowed_images_are_greyed);
    tcase_add_test(tc, train_creates_nested_out);
    tcase_add_test(tc, train_in_invert_mode_writes_drift);
    tcase_add_test(tc, out_of_memory_exits_3_and_keeps_the_checkpoint);
    tcase_add_loop_test(tc, zoo_configs_pass_check, 0, (int)(sizeof ZOO / sizeof ZOO[0]));
    suite_add_tcase(s, tc);
    return s;
}
