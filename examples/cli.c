/* Shared pieces of the flowgrad command line. */
#include "examples/cli.h"

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

const char *cli_out_name(const char *out, const char *config, const char *prefix, char *buf,
                         size_t n)
{
    if (out)
        return out;
    const char *base = strrchr(config, '/');
    base = base ? base + 1 : config;
    snprintf(buf, n, "runs/%s%.*s", prefix, (int)strcspn(base, "."), base);
    return buf;
}

const char *cli_out_dir(const char *cmd, const char *out, const char *config,
                        const char *prefix, char *buf, size_t n)
{
    out = cli_out_name(out, config, prefix, buf, n);
    if (cli_mkdirs(out) != 0) {
        cli_fail(cmd, "--out %s: cannot create the folder: %s", out, strerror(errno));
        return NULL;
    }
    return out;
}

int cli_check_output(const char *opt, const char *path)
{
    fg_atomic_file a;
    if (!path)
        return FG_OK;
    if (fg_atomic_open(&a, path) != FG_OK)
        return fg_error("%s: %s", opt, fg_last_error());
    fg_atomic_abort(&a);
    return FG_OK;
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

int cli_load_checkpoint(const char *path, cli_loaded *out)
{
    return fg_checkpoint_load(path, fg_memory_available(), out);
}

void cli_loaded_free(cli_loaded *l)
{
    fg_checkpoint_free(l);
}

int cli_write_grid(const char *path, const fg_tensor *x, int rows)
{
    int n = x->shape[0];
    int cols = (n + rows - 1) / rows;
    return fg_png_write_grid(path, x->data, n, x->shape[1], x->shape[2], x->shape[3],
                             rows, cols, 1);
}

void cli_report_dominated(FILE *f, const fg_bpd_summary *s, const char *where)
{
    /* Said outright: a mean in the hundreds reads as a broken model when it
     * is one image the model finds impossible. */
    if (fg_bpd_summary_dominated(s, 0.01))
        fprintf(f, "  one image moves this mean: image %d scores %.6g bits/dim; without it "
                "the mean is %.4f, and the median image scores %.4f (%s lists them all)\n",
                s->worst, s->worst_bpd, s->mean_without_worst, s->median, where);
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
