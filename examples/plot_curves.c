/* Learning curves of a flowgrad train run from its metrics.csv (see
 * plots.h). */
#include "examples/plots.h"
#include "examples/gnuplot.h"
#include "models/run_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { STEP, TRAIN, TEST, LR, GRAD_NORM, IMG_S, N_COLS };
static const char *const columns[N_COLS] = {
    "step", "train_bpd", "test_bpd", "lr", "grad_norm", "img_per_s"
};

/* Column c's finite values against step as datablock $name; how many
 * there were. Only finite points: gnuplot would break a line at a blank. */
static int put_series(FILE *f, const fg_run_metrics *t, int c, const char *name)
{
    int n = 0;
    fprintf(f, "$%s << EOD\n", name);
    for (int r = 0; r < t->n_rows; r++) {
        double v = fg_run_metrics_at(t, r, c);
        if (isfinite(v) && (c != GRAD_NORM || v > 0)) {   /* log axis */
            fprintf(f, "%.17g %.9g\n", fg_run_metrics_at(t, r, STEP), v);
            n++;
        }
    }
    fprintf(f, "EOD\n");
    return n;
}

/* The upper end of the bits/dim axis: the fence over both series, when a
 * value lies above it. */
static double bpd_fence(const fg_run_metrics *t)
{
    double *v = fg_xmalloc((size_t)(2 * t->n_rows + 1) * sizeof *v, "plot values");
    int n = 0;
    for (int r = 0; r < t->n_rows; r++)
        for (int c = TRAIN; c <= TEST; c++)
            if (isfinite(fg_run_metrics_at(t, r, c)))
                v[n++] = fg_run_metrics_at(t, r, c);
    double fence = fg_far_out_fence(v, n);
    free(v);
    return fence;
}

static void empty_panel(FILE *f, const char *title, const char *what)
{
    fprintf(f, "set title '%s'\nset label 1 '%s not in metrics.csv' at graph 0.5, graph 0.5 "
            "center\nplot [0:1][0:1] NaN notitle\nunset label 1\n", title, what);
}

static void write_body(FILE *f, const fg_run_metrics *t, const char *title)
{
    int n[N_COLS] = {0};
    n[TRAIN] = put_series(f, t, TRAIN, "train");
    n[TEST] = put_series(f, t, TEST, "test");
    n[LR] = put_series(f, t, LR, "lr");
    n[GRAD_NORM] = put_series(f, t, GRAD_NORM, "grad_norm");
    n[IMG_S] = put_series(f, t, IMG_S, "img_s");
    fputs("set multiplot layout 2,2 title ", f);
    gnuplot_put_string(f, title);
    fputs("\nset grid\nset xlabel 'step'\nset key top right\n", f);

    fputs("set title 'bits/dim'\n", f);
    double fence = bpd_fence(t);
    if (isfinite(fence))
        fprintf(f, "set yrange [*:%.4f]\nset label 2 'cut at %.2f: higher values are in "
                "metrics.csv' at graph 0.02, graph 0.05\n", fence, fence);
    if (n[TRAIN] + n[TEST] == 0)
        empty_panel(f, "bits/dim", "train_bpd and test_bpd");
    else
        fprintf(f, "plot %s%s%s\n",
                n[TRAIN] ? "$train using 1:2 with lines lc 1 title 'train'" : "",
                n[TRAIN] && n[TEST] ? ", " : "",
                n[TEST] ? "$test using 1:2 with linespoints lc 2 lw 2 pt 7 title 'test'" : "");
    fputs("unset label 2\nset yrange [*:*]\n", f);

    /* From 0, and above the plateau, which would sit on the frame. */
    double lr_max = 0;
    for (int r = 0; r < t->n_rows; r++)
        if (isfinite(fg_run_metrics_at(t, r, LR)))
            lr_max = fmax(lr_max, fg_run_metrics_at(t, r, LR));
    if (n[LR])
        fprintf(f, "set title 'learning rate'\nset yrange [0:%.9g]\nplot $lr using 1:2 with "
                "lines lw 2 lc rgb 'dark-green' notitle\nset yrange [*:*]\n",
                lr_max > 0 ? lr_max * 1.1 : 1);
    else
        empty_panel(f, "learning rate", "lr");
    if (n[GRAD_NORM])
        fputs("set title 'gradient norm (before clipping)'\nset logscale y\n"
              "plot $grad_norm using 1:2 with lines lc rgb 'dark-red' notitle\nunset logscale y\n", f);
    else
        empty_panel(f, "gradient norm", "grad_norm");
    if (n[IMG_S])
        fputs("set title 'images per second'\nplot $img_s using 1:2 with lines lc rgb 'dark-blue' notitle\n",
              f);
    else
        empty_panel(f, "images per second", "img_per_s");
    fputs("unset multiplot\n", f);
}

int plot_curves(const char *metrics_csv, const char *png, const char *title, int *missing)
{
    if (missing)
        *missing = 0;
    fg_run_metrics t;
    if (fg_run_metrics_read(metrics_csv, columns, N_COLS, &t) != FG_OK)
        return FG_ERR;
    if (t.n_rows == 0) {
        fg_run_metrics_free(&t);
        return fg_error("%s: no rows yet; the run has not finished a step", metrics_csv);
    }
    char *body = NULL;
    size_t len;
    FILE *f = open_memstream(&body, &len);
    if (!f)
        fg_fatal("plot_curves", "out of memory");
    write_body(f, &t, title);
    fclose(f);
    fg_run_metrics_free(&t);
    int rc = gnuplot_draw(png, body, 1200, 800, NULL, missing);
    free(body);
    return rc;
}
