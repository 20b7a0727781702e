/* The figures of flowgrad eval, plot and train, drawn by gnuplot
 * (gnuplot.h): learning curves of a run and histograms of per-image
 * bits/dim. Each returns FG_ERR with the reason, and sets *missing (may be
 * NULL) when only gnuplot's absence stopped it. */
#ifndef FLOWGRAD_EXAMPLES_PLOTS_H
#define FLOWGRAD_EXAMPLES_PLOTS_H

#include "examples/cli.h"

/* metrics_csv (a run's metrics.csv) as four panels against step: train
 * and test bits/dim, learning rate, gradient norm (log scale) and images
 * per second; a panel whose columns are absent or blank says so. The
 * bits/dim axis ends at the far-out fence of its values when a diverged
 * step lies above it, so one spike does not flatten the curve. */
int plot_curves(const char *metrics_csv, const char *png, const char *title, int *missing);

/* One set of values of a histogram. */
typedef struct plot_series {
    const char *title;
    const double *v;
    int n;
} plot_series;

/* Histograms of the series over shared bins, overlaid, each as the
 * fraction of its values per bin (so sets of different sizes compare),
 * with its mean (over its finite values) in the legend and as a vertical
 * line. Values that are not finite, or beyond both their own series'
 * far-out fence and every other series' values, are counted in a note
 * rather than drawn. */
int plot_histogram(const char *png, const char *title, const char *xlabel,
                   const plot_series *s, int n_series, int *missing);

#endif
