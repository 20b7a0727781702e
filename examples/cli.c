/* Shared pieces of the flowgrad command line. */
#include "examples/cli.h"
#include "examples/train_memory.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "flowgrad %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'flowgrad %s --help')\n", cmd);
    va_end(ap);
    return 2;
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "flowgrad %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_int(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return fg_error("%s: expected an integer in [%lld, %lld], got '%s'", opt, lo, hi, s);
    *out = v;
    return FG_OK;
}

int cli_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return fg_error("%s: expected a number in [%g, %g], got '%s'", opt, lo, hi, s);
    *out = v;
    return FG_OK;
}

int cli_double_list(const char *opt, const char *s, double lo, double hi,
                    double *out, int max, int *n)
{
    char buf[1024];
    if (strlen(s) >= sizeof buf)
        return fg_error("%s: list too long", opt);
    strcpy(buf, s);
    *n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == max)
            return fg_error("%s: at most %d values, got more in '%s'", opt, max, s);
        if (cli_double(opt, tok, lo, hi, &out[*n]) != FG_OK)
            return FG_ERR;
        (*n)++;
    }
    if (*n == 0)
        return fg_error("%s: expected a comma-separated list of numbers, got '%s'", opt, s);
    return FG_OK;
}

int cli_mkdirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    /* Every prefix ending at a slash, then the whole path, like mkdir -p. */
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        buf[i] = c;
    }
    return 0;
}

const char *cli_out_dir(const char *cmd, const char *out, const char *config,
                        const char *prefix, char *buf, size_t n)
{
    if (!out) {
        const char *base = strrchr(config, '/');
        base = base ? base + 1 : config;
        snprintf(buf, n, "runs/%s%.*s", prefix, (int)strcspn(base, "."), base);
        out = buf;
    }
    if (cli_mkdirs(out) != 0) {
        cli_fail(cmd, "--out %s: cannot create the folder: %s", out, strerror(errno));
        return NULL;
    }
    return out;
}

int cli_positional(const char *cmd, const char *a, const char **slot, const char *what)
{
    if (a[0] == '-')
        return cli_usage_error(cmd, "unknown option '%s'", a);
    if (*slot)
        return cli_usage_error(cmd, "unexpected argument '%s'; expected one %s", a, what);
    *slot = a;
    return 0;
}

const char *cli_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fg_error("%s: expected a value after it", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* Synthetic data sizes: enough for a loss to fall, small enough for tests. */
#define SYNTH_TRAIN 1024
#define SYNTH_TEST 256

int cli_load_split(const fg_config *cfg, int train, fg_dataset *d)
{
    memset(d, 0, sizeof *d);
    const fg_train_spec *t = &cfg->train;
    const fg_chw *s = &cfg->model.input;
    switch (cfg->has_train ? t->dataset : FG_DATASET_NONE) {
    case FG_DATASET_FASHION_MNIST:
    case FG_DATASET_MNIST:
        return fg_dataset_load_mnist_dir(d, t->data_path, train);
    case FG_DATASET_CIFAR10:
        return fg_dataset_load_cifar10_dir(d, t->data_path, train);
    case FG_DATASET_SYNTHETIC: {
        /* Generated in memory at the config's image size, which a config
         * (or a checkpoint's) may make far larger than the machine. */
        int n = train ? SYNTH_TRAIN : SYNTH_TEST;
        double D = (double)s->c * s->h * s->w;
        double bytes = n * D + n + D * sizeof(float), avail = train_memory_available();
        char need[32], have[32];
        if (avail >= 0 && bytes > avail)
            return fg_error("%s: %d synthetic %dx%dx%d images need about %s, more than the %s "
                            "available: lower height, width or channels", cfg->name, n, s->h,
                            s->w, s->c, train_memory_human(bytes, need, sizeof need),
                            train_memory_human(avail, have, sizeof have));
        fg_dataset_synthetic(d, n, s->c, s->h, s->w, t->seed * 2 + (train ? 0 : 1));
        return FG_OK;
    }
    default:
        return fg_error("%s: the config has no train: dataset to load data from", cfg->name);
    }
}

int cli_load_checkpoint(const char *path, cli_loaded *out)
{
    return fg_checkpoint_load(path, train_memory_available(), out);
}

void cli_loaded_free(cli_loaded *l)
{
    fg_checkpoint_free(l);
}

fg_var *cli_batch(fg_graph *g, const fg_dataset *d, const int *idx, int n, int n_bits,
                  fg_rng *rng)
{
    int shape[4] = {n, d->c, d->h, d->w};
    fg_var *x = fg_const(g, 4, shape);
    fg_dequantize(d, idx, n, n_bits, rng, x->t.data);
    return x;
}

double cli_eval_bpd(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                    uint64_t seed, int max_images)
{
    int total = d->n;
    if (max_images > 0 && max_images < total)
        total = max_images;
    return cli_eval_bpd_sum(m, g, d, batch, seed, 0, total) / total;
}

double cli_eval_bpd_sum(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                        uint64_t seed, int first, int count)
{
    /* --batch may ask for far more than there is to evaluate. */
    if (batch > count)
        batch = count > 0 ? count : 1;
    int *idx = fg_xmalloc((size_t)batch * sizeof *idx, "eval indices");
    int *y = fg_xmalloc((size_t)batch * sizeof *y, "eval labels");
    fg_rng rng;
    fg_rng_seed_stream(&rng, seed, 0x6576616cULL);
    /* Image i's noise is the same whichever range it is evaluated in. */
    rng.counter = (uint64_t)first * d->c * d->h * d->w;
    double sum = 0;
    for (int start = first; start < first + count; start += batch) {
        int n = first + count - start < batch ? first + count - start : batch;
        for (int i = 0; i < n; i++)
            idx[i] = start + i;
        fg_dataset_labels(d, idx, n, y);
        fg_graph_reset(g);
        int was = fg_set_grad_enabled(g, 0);
        fg_var *x = cli_batch(g, d, idx, n, m->n_bits, &rng);
        fg_var *bpd = fg_model_bits_per_dim(m, g, x, y);
        sum += fg_k_sum((size_t)n, bpd->t.data);
        fg_set_grad_enabled(g, was);
    }
    fg_graph_reset(g);
    free(idx);
    free(y);
    return sum;
}

int cli_write_grid(const char *path, const fg_tensor *x, int rows)
{
    int n = x->shape[0];
    int cols = (n + rows - 1) / rows;
    return fg_png_write_grid(path, x->data, n, x->shape[1], x->shape[2], x->shape[3],
                             rows, cols, 1);
}

int cli_grey_nonfinite(fg_tensor *x)
{
    int n = x->shape[0], bad = 0;
    size_t per = fg_numel(x) / (size_t)n;
    for (int i = 0; i < n; i++) {
        float *p = x->data + (size_t)i * per;
        if (fg_k_all_finite(per, p))
            continue;
        bad++;
        fg_k_fill(per, 0.0f, p);   /* 0 is mid-grey in [-0.5, 0.5] */
    }
    return bad;
}

void cli_report_nonfinite(const char *cmd, int bad, int total)
{
    if (bad)
        fprintf(stderr, "flowgrad %s: %d of %d images overflowed in the inverse (drawn grey); "
                "a lower temperature, a smaller step or a longer-trained model avoids it\n",
                cmd, bad, total);
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}
