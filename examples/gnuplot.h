/* PNG figures drawn by gnuplot, the one plotting program the flowgrad
 * command line uses (ablation plots, learning curves, histograms). */
#ifndef FLOWGRAD_EXAMPLES_GNUPLOT_H
#define FLOWGRAD_EXAMPLES_GNUPLOT_H

#include "examples/cli.h"

/* The terminal lines a standalone script starts with: pngcairo where
 * gnuplot has it, else libgd's png, at width x height pixels. */
void gnuplot_put_terminal(FILE *f, int width, int height);

/* Draws png by running gnuplot (or $GNUPLOT) on body, a script without
 * terminal or output (this sets them), fed on its standard input; in
 * folder dir when not NULL, so that body may name data files relative to
 * it. The PNG is written atomically (fg_atomic_open): gnuplot draws into
 * the temporary, which takes png's name only when gnuplot succeeded and
 * left a PNG there. FG_ERR otherwise, with gnuplot's own messages on
 * stderr; when gnuplot is not installed the message says which package to
 * install and *missing (may be NULL) is set to 1. */
int gnuplot_draw(const char *png, const char *body, int width, int height, const char *dir,
                 int *missing);

/* Writes s as a gnuplot single-quoted string (quotes doubled). */
void gnuplot_put_string(FILE *f, const char *s);

#endif
