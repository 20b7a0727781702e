/* Overlaid histograms of per-image values, e.g. bits/dim of a test set and
 * of an out-of-distribution set (see plots.h). */
#include "examples/plots.h"
#include "examples/gnuplot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BINS 60

/* [lo, hi] over the finite values of every series, each series cut at its
 * own far-out fence: one diverged image would otherwise squeeze every bar
 * into a few bins. (A fence over all series together is far too wide when
 * they lie apart, as in-distribution and noise do.) Returns how many
 * finite values there are. */
static int value_range(const plot_series *s, int n_series, double *lo, double *hi)
{
    int total = 0, finite = 0;
    for (int k = 0; k < n_series; k++)
        total += s[k].n;
    double *v = fg_xmalloc((size_t)(total + 1) * sizeof *v, "histogram values");
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int k = 0; k < n_series; k++) {
        int n = 0;
        for (int i = 0; i < s[k].n; i++)
            if (isfinite(s[k].v[i]))
                v[n++] = s[k].v[i];
        double fence = fg_far_out_fence(v, n);   /* sorts v */
        for (int i = 0; i < n; i++) {
            *lo = fmin(*lo, v[i]);
            if (v[i] <= fence)
                *hi = fmax(*hi, v[i]);
        }
        finite += n;
    }
    free(v);
    if (finite == 0)
        return 0;
    if (*hi - *lo < 1e-9) {   /* every value the same: one visible bar */
        *lo -= 0.5;
        *hi += 0.5;
    }
    return finite;
}

/* Datablock $s<k>: bin centre and the fraction of the series in the bin.
 * Returns how many values were left out (not finite or beyond hi). */
static int put_bins(FILE *f, const plot_series *s, int k, double lo, double hi, double *mean)
{
    int count[BINS] = {0}, left_out = 0, finite = 0;
    double width = (hi - lo) / BINS, sum = 0;
    for (int i = 0; i < s->n; i++) {
        double x = s->v[i];
        if (!isfinite(x)) {
            left_out++;
            continue;
        }
        sum += x;
        finite++;
        if (x > hi) {
            left_out++;
            continue;
        }
        int b = (int)((x - lo) / width);
        count[b < BINS ? b : BINS - 1]++;
    }
    *mean = finite ? sum / finite : NAN;
    fprintf(f, "$s%d << EOD\n", k);
    for (int b = 0; b < BINS; b++)
        fprintf(f, "%.9g %.9g\n", lo + (b + 0.5) * width, s->n ? (double)count[b] / s->n : 0);
    fprintf(f, "EOD\n");
    return left_out;
}

int plot_histogram(const char *png, const char *title, const char *xlabel,
                   const plot_series *s, int n_series, int *missing)
{
    if (missing)
        *missing = 0;
    double lo, hi;
    if (value_range(s, n_series, &lo, &hi) == 0)
        return fg_error("%s not drawn: no finite value to put in a histogram", png);
    char *body = NULL;
    size_t len;
    FILE *f = open_memstream(&body, &len);
    if (!f)
        fg_fatal("plot_histogram", "out of memory");
    int left_out = 0;
    double *mean = fg_xmalloc((size_t)n_series * sizeof *mean, "histogram means");
    for (int k = 0; k < n_series; k++)
        left_out += put_bins(f, &s[k], k, lo, hi, &mean[k]);
    fputs("set title ", f);
    gnuplot_put_string(f, title);
    fputs("\nset xlabel ", f);
    gnuplot_put_string(f, xlabel);
    fprintf(f, "\nset ylabel 'fraction of images'\nset grid\nset key below\n"
            "set offsets 0, 0, graph 0.05, 0\n"
            "set boxwidth %.9g absolute\nset style fill transparent solid 0.4 noborder\n"
            "set xrange [%.9g:%.9g]\nset yrange [0:*]\n", (hi - lo) / BINS,
            lo - (hi - lo) * 0.02, hi + (hi - lo) * 0.02);
    for (int k = 0; k < n_series; k++)
        if (isfinite(mean[k]) && mean[k] <= hi)
            fprintf(f, "set arrow from first %.9g, graph 0 to first %.9g, graph 1 nohead "
                    "lc %d dt 2 lw 2 front\n", mean[k], mean[k], k + 1);
    if (left_out)
        fprintf(f, "set label 1 '%d value%s not finite or above %.2f not drawn' at graph "
                "0.02, graph 0.95\n", left_out, left_out == 1 ? "" : "s", hi);
    fputs("plot \\\n", f);
    for (int k = 0; k < n_series; k++) {
        char t[256];
        snprintf(t, sizeof t, "%s: mean %.3f (%d images)", s[k].title, mean[k], s[k].n);
        fprintf(f, "  $s%d using 1:2 with boxes lc %d title ", k, k + 1);
        gnuplot_put_string(f, t);
        fputs(k + 1 < n_series ? ", \\\n" : "\n", f);
    }
    fclose(f);
    free(mean);
    int rc = gnuplot_draw(png, body, 1000, 600, NULL, missing);
    free(body);
    return rc;
}
