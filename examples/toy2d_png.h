/* The picture examples/toy2d writes. */
#ifndef FLOWGRAD_EXAMPLES_TOY2D_PNG_H
#define FLOWGRAD_EXAMPLES_TOY2D_PNG_H

#include "flowgrad.h"
#include "models/toy2d.h"

/* One PNG, two panels of side pixels over [lo, hi]^2: the heat map of
 * exp(grid_logp) (a res x res grid, res >= 1, nearest neighbour) and a
 * scatter of n points. FG_ERR with fg_error when the file cannot be
 * written. */
int toy2d_write_png(const char *path, const double *grid_logp, int res, const float *pts,
                    int n, double lo, double hi, int side);

#endif
