/* Reading metrics.csv by column name (see models/run_metrics.h). */
#include "models/run_metrics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Splits line at commas in place; the line end is dropped. Returns the
 * number of fields (up to max; one more means "too many"). */
static int split(char *line, char **field, int max)
{
    line[strcspn(line, "\r\n")] = '\0';
    int n = 0;
    field[n++] = line;
    for (char *p = line; *p; p++)
        if (*p == ',') {
            *p = '\0';
            if (n == max + 1)
                return n;
            field[n++] = p + 1;
        }
    return n;
}

static int parse_header(const char *path, char *line, const char *const *cols, int n,
                        int *where, fg_run_metrics *t)
{
    char *field[FG_RUN_METRICS_MAX_COLUMNS + 1];
    int nf = split(line, field, FG_RUN_METRICS_MAX_COLUMNS);
    if (nf > FG_RUN_METRICS_MAX_COLUMNS)
        return fg_error("%s:1: more than %d columns in the header", path, FG_RUN_METRICS_MAX_COLUMNS);
    int step = 0;
    for (int c = 0; c < n; c++) {
        where[c] = -1;
        for (int f = 0; f < nf; f++)
            if (!strcmp(field[f], cols[c]))
                where[c] = f;
        t->present[c] = where[c] >= 0;
        step |= !strcmp(cols[c], "step") && where[c] >= 0;
    }
    if (!step)
        return fg_error("%s:1: no 'step' column in the header; expected the metrics.csv "
                        "that flowgrad train writes (step,epoch,train_bpd,test_bpd,...)", path);
    return nf;
}

/* The steps of the rows kept: rows a resume wrote again replace the
 * earlier ones. */
static void drop_rewound(fg_run_metrics *t, int step_col, double step)
{
    if (t->n_rows == 0 || fg_run_metrics_at(t, t->n_rows - 1, step_col) <= step)
        return;   /* a step's own row and its epoch's end share the step */
    while (t->n_rows > 0 && fg_run_metrics_at(t, t->n_rows - 1, step_col) >= step)
        t->n_rows--;
}

int fg_run_metrics_read(const char *path, const char *const *cols, int n, fg_run_metrics *t)
{
    FG_CHECK(n > 0 && n <= FG_RUN_METRICS_MAX_COLUMNS, "fg_run_metrics_read", "%d columns", n);
    memset(t, 0, sizeof *t);
    t->n_cols = n;
    FILE *f = fopen(path, "r");
    if (!f)
        return fg_error("%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int where[FG_RUN_METRICS_MAX_COLUMNS], step_col = 0, rc = FG_OK, lineno = 1, width;
    if (getline(&line, &cap, f) < 0) {
        rc = fg_error("%s: empty; expected a header line (step,epoch,...) and rows", path);
        goto out;
    }
    if ((width = parse_header(path, line, cols, n, where, t)) < 0) {
        rc = FG_ERR;
        goto out;
    }
    for (int c = 0; c < n; c++)
        if (!strcmp(cols[c], "step"))
            step_col = c;
    int rows_cap = 0;
    char *field[FG_RUN_METRICS_MAX_COLUMNS + 1];
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        int nf = split(line, field, width);
        if (nf == 1 && !*field[0])
            continue;   /* a blank line */
        if (nf > width) {
            rc = fg_error("%s:%d: more fields than the header's %d columns", path, lineno,
                          width);
            goto out;
        }
        if (t->n_rows == rows_cap)
            t->v = fg_xrealloc(t->v, (size_t)(rows_cap = rows_cap ? 2 * rows_cap : 256) *
                               n * sizeof *t->v, "metrics rows");
        double *row = t->v + (size_t)t->n_rows * n;
        /* Rows may end early: an epoch's end leaves the step columns out. */
        for (int c = 0; c < n; c++) {
            const char *s = where[c] >= 0 && where[c] < nf ? field[where[c]] : "";
            char *end;
            row[c] = *s ? strtod(s, &end) : NAN;
            if (*s && *end) {
                rc = fg_error("%s:%d: column '%s': expected a number, got '%s'", path,
                              lineno, cols[c], s);
                goto out;
            }
        }
        if (isnan(row[step_col])) {
            rc = fg_error("%s:%d: no step in this row", path, lineno);
            goto out;
        }
        double step = row[step_col];
        drop_rewound(t, step_col, step);
        if (row != t->v + (size_t)t->n_rows * n)
            memmove(t->v + (size_t)t->n_rows * n, row, (size_t)n * sizeof *row);
        t->n_rows++;
    }
    if (ferror(f))
        rc = fg_error("%s: read error", path);
out:
    free(line);
    fclose(f);
    if (rc != FG_OK)
        fg_run_metrics_free(t);
    return rc;
}

void fg_run_metrics_free(fg_run_metrics *t)
{
    free(t->v);
    memset(t, 0, sizeof *t);
}
