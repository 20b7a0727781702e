/* flowgrad eval's outputs and flowgrad plot end to end: the per-image
 * table, histograms and learning curves are written (atomically, as valid
 * PNGs), one draw reproduces the test bits/dim training recorded, and bad
 * input (checkpoints, data set names, draw counts, output paths, garbled
 * metrics) is a clear error that leaves nothing behind. metrics.csv is
 * read by column name (models/run_metrics.h). */
#include "check_main.h"
#include "flowgrad.h"
#include "models/run_metrics.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char config[1024];
static char tmpdir[256];
static const char F[] = "./examples/flowgrad";

static int run(const char *out_file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(const char *out_file, const char *fmt, ...)
{
    char cmd[4096], full[4608];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
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
    static char buf[4][1 << 16];
    static int slot;
    char *b = buf[slot++ % 4];
    size_t n = fread(b, 1, sizeof buf[0] - 1, f);
    b[n] = 0;
    fclose(f);
    return b;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static int have_gnuplot(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

/* The PNG signature, an IHDR chunk first, and its width. */
static void assert_png(const char *path, int width)
{
    unsigned char h[24];
    struct stat sb;
    ck_assert_msg(stat(path, &sb) == 0 && sb.st_size > 100, "no PNG at %s", path);
    FILE *f = fopen(path, "rb");
    ck_assert_int_eq(fread(h, 1, 24, f), 24);
    fclose(f);
    ck_assert_msg(!memcmp(h, "\x89PNG\r\n\x1a\n", 8) && !memcmp(h + 12, "IHDR", 4),
                  "%s is not a PNG", path);
    ck_assert_int_eq((h[16] << 24) | (h[17] << 16) | (h[18] << 8) | h[19], width);
}

/* Entries of dir other than . and .. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void setup(void)
{
    fg_test_path("tests/configs/cli-tiny.yaml", config, sizeof config);
    fg_test_scratch_dir("eval-plot", tmpdir, sizeof tmpdir);
}

static void teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Columns in another order, one this reader does not know, an epoch's end
 * with its step columns left out, a blank, and a resumed run that wrote
 * steps 3 and 4 again. */
static const char fixture[] =
    "epoch,step,guard_events,train_bpd,test_bpd,lr,img_per_s,elapsed_s,grad_norm\n"
    "0,1,0,5.5,,0.001,100,0.1,3.5\n"
    "0,2,0,5.0,,0.002,110,0.2,2.5\n"
    "0,3,1,4.8,,0.003,120,0.3,90\n"
    "0,4,0,4.9,,0.004,120,0.4,2\n"
    "1,4,,,4.7,,,0.5\n"
    "\n"
    "0,3,0,4.6,,0.003,121,0.3,9\n"
    "0,4,0,4.4,,0.004,122,0.4,1.5\n"
    "1,4,,,4.3,,,0.5\n"
    "1,5,0,4.2,4.1,0.004,123,0.6,1.25\n";

START_TEST(metrics_read_by_name)
{
    setup();
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.csv", tmpdir);
    put(path, fixture);
    const char *cols[] = {"step", "test_bpd", "grad_norm", "schedule_phase"};
    fg_run_metrics t;
    ck_assert_int_eq(fg_run_metrics_read(path, cols, 4, &t), FG_OK);
    ck_assert(t.present[0] && t.present[1] && t.present[2] && !t.present[3]);
    /* 1, 2, then the resumed 3, 4, 4 (epoch end), 5. */
    ck_assert_int_eq(t.n_rows, 6);
    const double steps[6] = {1, 2, 3, 4, 4, 5}, norms[6] = {3.5, 2.5, 9, 1.5, NAN, 1.25};
    for (int r = 0; r < 6; r++) {
        ck_assert(fg_run_metrics_at(&t, r, 0) == steps[r]);
        ck_assert(isnan(norms[r]) ? isnan(fg_run_metrics_at(&t, r, 2)) : fg_run_metrics_at(&t, r, 2) == norms[r]);
        ck_assert(isnan(fg_run_metrics_at(&t, r, 3)));
    }
    ck_assert(isnan(fg_run_metrics_at(&t, 0, 1)) && fg_run_metrics_at(&t, 4, 1) == 4.3 &&
              fg_run_metrics_at(&t, 5, 1) == 4.1);
    fg_run_metrics_free(&t);

    /* A column nobody asked for is not parsed; one asked for must hold
     * numbers, and the error names the line and the column. */
    put(path, "step,lr\n1,0.1\n2,fast\n");
    ck_assert_int_eq(fg_run_metrics_read(path, cols, 1, &t), FG_OK);
    ck_assert_int_eq(t.n_rows, 2);
    fg_run_metrics_free(&t);
    const char *lr[] = {"step", "lr"};
    ck_assert_int_eq(fg_run_metrics_read(path, lr, 2, &t), FG_ERR);
    ck_assert_msg(strstr(fg_last_error(), "metrics.csv:3: column 'lr': expected a number, got "
                         "'fast'") != NULL, "%s", fg_last_error());
    put(path, "step,lr\n1,0.1,7\n");
    ck_assert_int_eq(fg_run_metrics_read(path, lr, 2, &t), FG_ERR);
    ck_assert(strstr(fg_last_error(), ":2: more fields than the header's 2 columns") != NULL);
    put(path, "iteration,lr\n1,0.1\n");
    ck_assert_int_eq(fg_run_metrics_read(path, lr, 2, &t), FG_ERR);
    ck_assert(strstr(fg_last_error(), "no 'step' column") != NULL);
    put(path, "");
    ck_assert_int_eq(fg_run_metrics_read(path, lr, 2, &t), FG_ERR);
    ck_assert(strstr(fg_last_error(), "empty") != NULL);
    teardown();
}
END_TEST

START_TEST(plot_draws_curves)
{
    setup();
    char run_dir[512], path[600];
    snprintf(run_dir, sizeof run_dir, "%s/run", tmpdir);
    mkdir(run_dir, 0777);
    snprintf(path, sizeof path, "%s/metrics.csv", run_dir);
    put(path, fixture);
    if (!have_gnuplot()) {
        ck_assert_int_eq(run("out", "%s plot %s", F, run_dir), 1);
        ck_assert(strstr(slurp("%s/out", tmpdir), "apt-get install gnuplot-nox") != NULL);
        teardown();
        return;
    }
    ck_assert_int_eq(run("out", "%s plot %s", F, run_dir), 0);
    snprintf(path, sizeof path, "%s/curves.png", run_dir);
    assert_png(path, 1200);
    ck_assert_int_eq(run("out", "%s plot %s --out %s/other.png", F, run_dir, tmpdir), 0);
    snprintf(path, sizeof path, "%s/other.png", tmpdir);
    assert_png(path, 1200);
    /* Only a header: nothing to draw, and the old figure stays. */
    snprintf(path, sizeof path, "%s/metrics.csv", run_dir);
    put(path, "step,epoch,train_bpd,test_bpd,lr,img_per_s,elapsed_s,grad_norm\n");
    ck_assert_int_eq(run("out", "%s plot %s", F, run_dir), 1);
    ck_assert(strstr(slurp("%s/out", tmpdir), "no rows yet") != NULL);
    snprintf(path, sizeof path, "%s/curves.png", run_dir);
    assert_png(path, 1200);
    teardown();
}
END_TEST

START_TEST(plot_refuses_bad_input)
{
    setup();
    char run_dir[512], path[600];
    snprintf(run_dir, sizeof run_dir, "%s/run", tmpdir);
    mkdir(run_dir, 0777);
    ck_assert_int_eq(run("out", "%s plot %s", F, run_dir), 1);
    ck_assert(strstr(slurp("%s/out", tmpdir), "metrics.csv: cannot open") != NULL);
    snprintf(path, sizeof path, "%s/metrics.csv", run_dir);
    put(path, "step,epoch,train_bpd\n1,0,5.5\n2,0,five\n");
    ck_assert_int_eq(run("out", "%s plot %s", F, run_dir), 1);
    ck_assert(strstr(slurp("%s/out", tmpdir),
                     "metrics.csv:3: column 'train_bpd': expected a number") != NULL);
    ck_assert_int_eq(entries(run_dir), 1);   /* metrics.csv alone */
    put(path, fixture);
    /* A directory is never replaced; without gnuplot no figure, no
     * temporary. */
    ck_assert_int_eq(run("out", "%s plot %s --out %s", F, run_dir, tmpdir), 1);
    ck_assert(strstr(slurp("%s/out", tmpdir), "is a directory") != NULL);
    ck_assert_int_eq(run("out", "GNUPLOT=/nonexistent/gnuplot %s plot %s", F, run_dir), 1);
    ck_assert(strstr(slurp("%s/out", tmpdir), "apt-get install gnuplot-nox") != NULL);
    ck_assert_int_eq(entries(run_dir), 1);
    ck_assert_int_eq(run("out", "%s plot", F), 2);
    ck_assert_int_eq(run("out", "%s plot %s --bogus", F, run_dir), 2);
    ck_assert_int_eq(run("out", "%s plot --help", F), 0);
    teardown();
}
END_TEST

/* The last test bits/dim row of a metrics.csv, as written. */
static void last_test_bpd(const char *csv, char *out, size_t n)
{
    const char *cols[] = {"step", "test_bpd"};
    fg_run_metrics t;
    ck_assert_int_eq(fg_run_metrics_read(csv, cols, 2, &t), FG_OK);
    double v = NAN;
    for (int r = 0; r < t.n_rows; r++)
        if (isfinite(fg_run_metrics_at(&t, r, 1)))
            v = fg_run_metrics_at(&t, r, 1);
    snprintf(out, n, "%.6f", v);
    fg_run_metrics_free(&t);
}

START_TEST(eval_outputs)
{
    setup();
    /* test_every 10: the run's last evaluation is of the checkpoint's weights. */
    ck_assert_int_eq(run("train", "%s train %s --out %s/run --threads 1 --steps 10", F, config,
                         tmpdir), 0);
    char ck[512], csv[600], png[600], path[600], want[64];
    snprintf(ck, sizeof ck, "%s/run/checkpoint.safetensors", tmpdir);
    char outs[512];
    snprintf(outs, sizeof outs, "%s/outs", tmpdir);
    mkdir(outs, 0777);
    snprintf(csv, sizeof csv, "%s/per-image.csv", outs);
    snprintf(png, sizeof png, "%s/histogram.png", outs);
    snprintf(path, sizeof path, "%s/run/metrics.csv", tmpdir);
    last_test_bpd(path, want, sizeof want);

    /* One draw: the figure training wrote, to the last printed digit. */
    ck_assert_int_eq(run("json", "%s eval %s --json --samples 1 --per-image %s", F, ck, csv), 0);
    char *json = slurp("%s/json", tmpdir);
    char *at = strstr(json, "\"bits_per_dim\": ");
    ck_assert_msg(at && !strncmp(at + 16, want, strlen(want)), "%s vs %s", json, want);
    double mean = atof(at + 16);

    /* The table: one row per test image, whose mean is the printed one. */
    char *table = slurp("%s", csv);
    ck_assert(!strncmp(table, "index,label,bits_per_dim\n", 25));
    int rows = 0;
    double sum = 0;
    for (char *line = strchr(table, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        int index, label;
        double bpd;
        ck_assert_int_eq(sscanf(line, "%d,%d,%lf", &index, &label, &bpd), 3);
        ck_assert_int_eq(index, rows);
        ck_assert(label >= 0 && label < 4 && isfinite(bpd));
        sum += bpd;
        rows++;
    }
    ck_assert_int_eq(rows, 256);
    ck_assert_double_eq_tol(sum / rows, mean, 1e-6);

    /* Several sets to compare with, each named. */
    ck_assert_int_eq(run("ood", "%s eval %s --json --limit 16 --ood inverted,noise", F, ck), 0);
    json = slurp("%s/ood", tmpdir);
    ck_assert_msg(strstr(json, "\"ood\": [{\"dataset\": \"inverted synthetic test\", "
                         "\"images\": 16, ") && strstr(json, "{\"dataset\": \"noise synthetic "
                         "test\", \"images\": 16, "), "%s", json);
    ck_assert_int_eq(run("dataset", "%s eval %s --limit 16 --dataset flipped-vertical", F, ck), 0);
    ck_assert(!strncmp(slurp("%s/dataset", tmpdir), "flipped-vertical synthetic test bits/dim: ",
                       42));

    /* K draws on the command line are the library's bound. */
    ck_assert_int_eq(run("k4", "%s eval %s --samples 4 --json --limit 40", F, ck), 0);
    ck_assert(strstr(slurp("%s/k4", tmpdir), "\"samples\": 4, \"images\": 40") != NULL);

    if (have_gnuplot()) {
        ck_assert_int_eq(run("hist", "%s eval %s --histogram %s --ood inverted", F, ck, png), 0);
        ck_assert(strstr(slurp("%s/hist", tmpdir), "inverted synthetic test bits/dim: ") != NULL);
        assert_png(png, 1000);
        remove(png);
    }
    /* No gnuplot: no histogram, and no table either (half a result), and no
     * temporary of either. */
    remove(csv);
    ck_assert_int_eq(run("nognu", "GNUPLOT=/nonexistent/gnuplot %s eval %s --histogram %s "
                         "--ood noise --per-image %s", F, ck, png, csv), 1);
    ck_assert(strstr(slurp("%s/nognu", tmpdir), "apt-get install gnuplot-nox") != NULL);
    ck_assert(access(png, F_OK) != 0 && access(csv, F_OK) != 0);
    ck_assert_int_eq(entries(outs), 0);
    teardown();
}
END_TEST

/* An 8x8 gray PNG of one shade, through the library's grid writer. */
static void write_png(const char *path, float shade)
{
    float x[64];
    for (int i = 0; i < 64; i++)
        x[i] = shade + 0.01f * (float)(i % 8);
    ck_assert_int_eq(fg_png_write_grid(path, x, 1, 1, 8, 8, 1, 1, 0), FG_OK);
}

/* --data DIR: every image of a folder, named by its file in the table and
 * labeled by its class folder; a class-conditional model refuses a folder
 * without classes, and --data takes neither --dataset nor --split. */
START_TEST(eval_on_an_image_folder)
{
    setup();
    ck_assert_int_eq(run("train", "%s train %s --out %s/run --threads 1 --steps 3", F, config,
                         tmpdir), 0);
    char ck[512], dir[512], path[700], csv[600];
    snprintf(ck, sizeof ck, "%s/run/checkpoint.safetensors", tmpdir);
    snprintf(dir, sizeof dir, "%s/imgs", tmpdir);
    const char *classes[] = {"bags", "coats"};
    mkdir(dir, 0777);
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, classes[k]);
        mkdir(path, 0777);
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/%s/%d.png", dir, classes[k], i);
            write_png(path, -0.4f + 0.25f * (float)(k * 3 + i));
        }
    }
    snprintf(csv, sizeof csv, "%s/folder.csv", tmpdir);
    ck_assert_int_eq(run("folder", "%s eval %s --data %s --per-image %s", F, ck, dir, csv), 0);
    ck_assert_msg(strstr(slurp("%s/folder", tmpdir), "imgs bits/dim: ") != NULL, "%s",
                  slurp("%s/folder", tmpdir));
    char *table = slurp("%s", csv);
    ck_assert(!strncmp(table, "file,label,bits_per_dim\n", 24));
    int rows = 0;
    for (char *line = strchr(table, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        char want[64];
        snprintf(want, sizeof want, "%s/%d.png,%d,", classes[rows / 3], rows % 3, rows / 3);
        ck_assert_msg(!strncmp(line, want, strlen(want)), "row %d: %.60s", rows, line);
        ck_assert(isfinite(atof(line + strlen(want))));
        rows++;
    }
    ck_assert_int_eq(rows, 6);

    /* The model is class-conditional: images without class folders. */
    snprintf(path, sizeof path, "%s/flat", tmpdir);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/flat/a.png", tmpdir);
    write_png(path, 0.0f);
    ck_assert_int_eq(run("flat.out", "%s eval %s --data %s/flat", F, ck, tmpdir), 1);
    ck_assert(strstr(slurp("%s/flat.out", tmpdir), "no class subfolders") != NULL);
    ck_assert_int_eq(run("both", "%s eval %s --data %s --split train", F, ck, dir), 2);
    ck_assert(strstr(slurp("%s/both", tmpdir), "give it without --split") != NULL);
    ck_assert_int_eq(run("none", "%s eval %s --data %s/none", F, ck, tmpdir), 1);
    ck_assert(strstr(slurp("%s/none", tmpdir), "--data: ") != NULL);
    teardown();
}
END_TEST

START_TEST(eval_refuses_bad_input)
{
    setup();
    ck_assert_int_eq(run("train", "%s train %s --out %s/run --threads 1 --steps 3", F, config,
                         tmpdir), 0);
    char ck[512], outdir[512];
    snprintf(ck, sizeof ck, "%s/run/checkpoint.safetensors", tmpdir);
    snprintf(outdir, sizeof outdir, "%s/out", tmpdir);
    mkdir(outdir, 0777);
    struct { int status; const char *args, *says; } cases[] = {
        {1, "%s/none.safetensors --per-image %s/t.csv", "none.safetensors: cannot open"},
        {1, "%s --dataset svhn --per-image %s/t.csv", "--dataset: unknown data set 'svhn'"},
        {1, "%s --ood upside-down --histogram %s/h.png", "unknown data set 'upside-down'"},
        {1, "%s --dataset fashion-mnist --per-image %s/t.csv", "28x28x1 images but the model"},
        {2, "%s --samples 0 --per-image %s/t.csv", "--samples: expected an integer in [1, 4096]"},
        {2, "%s --samples 5000 --per-image %s/t.csv", "--samples: expected an integer"},
        {2, "%s --samples many --per-image %s/t.csv", "got 'many'"},
        {2, "%s --split validation --per-image %s/t.csv", "expected test or train"},
        {1, "%s --per-image %s/no/such/folder/t.csv", "cannot create temporary file"},
        {1, "%s --histogram %s", "exists and is a directory"},
        {2, "%s --ood inverted,noise,flipped-vertical,noise --histogram %s/h.png",
         "--ood: at most 3 data sets"},
        {2, "%s --ood , --histogram %s/h.png", "--ood: expected a data set name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[1024];
        snprintf(args, sizeof args, cases[i].args, i == 0 ? tmpdir : ck, outdir);
        ck_assert_int_eq(run("bad", "%s eval %s", F, args), cases[i].status);
        char *said = slurp("%s/bad", tmpdir);
        ck_assert_msg(strstr(said, cases[i].says) != NULL, "'%s' said:\n%s", args, said);
        ck_assert_msg(entries(outdir) == 0, "'%s' left a file behind", args);
    }
    teardown();
}
END_TEST

START_TEST(train_draws_curves)
{
    setup();
    ck_assert_int_eq(run("train", "%s train %s --out %s/run --threads 1 --steps 5", F, config,
                         tmpdir), 0);
    char png[512];
    snprintf(png, sizeof png, "%s/run/curves.png", tmpdir);
    if (have_gnuplot())
        assert_png(png, 1200);
    /* No gnuplot: a warning, and the run still succeeds. */
    ck_assert_int_eq(run("train2", "GNUPLOT=/nonexistent/gnuplot %s train %s --out %s/run2 "
                         "--threads 1 --steps 5", F, config, tmpdir), 0);
    ck_assert(strstr(slurp("%s/train2", tmpdir), "warning: ") != NULL);
    snprintf(png, sizeof png, "%s/run2/curves.png", tmpdir);
    ck_assert(access(png, F_OK) != 0);
    teardown();
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("eval-plot");
    TCase *tc = fg_tcase("eval-plot");
    tcase_add_test(tc, metrics_read_by_name);
    tcase_add_test(tc, plot_draws_curves);
    tcase_add_test(tc, plot_refuses_bad_input);
    tcase_add_test(tc, eval_outputs);
    tcase_add_test(tc, eval_on_an_image_folder);
    tcase_add_test(tc, eval_refuses_bad_input);
    tcase_add_test(tc, train_draws_curves);
    suite_add_tcase(s, tc);
    return s;
}
