/* The two-panel picture of examples/toy2d: the density a model learned
 * beside samples drawn from it. */
#include "examples/toy2d_png.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Viridis at five stops, interpolated linearly: dark where the density is
 * low, so the empty plane stays quiet and modes stand out. */
static void colour(double t, unsigned char rgb[3])
{
    static const unsigned char stops[5][3] = {
        {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    if (!(t > 0.0))
        t = 0.0;
    if (t > 1.0)
        t = 1.0;
    double f = t * 4.0;
    int i = f >= 4.0 ? 3 : (int)f;
    double a = f - i;
    for (int k = 0; k < 3; k++)
        rgb[k] = (unsigned char)lround((1.0 - a) * stops[i][k] + a * stops[i + 1][k]);
}

enum { PANEL_GAP = 8 };

int toy2d_write_png(const char *path, const double *grid_logp, int res, const float *pts,
                    int n, double lo, double hi, int side)
{
    if (res < 1 || side < 1)
        return fg_error("%s: grid of %d cells and panels of %d pixels", path, res, side);
    int w = 2 * side + PANEL_GAP;
    size_t plane = (size_t)side * w;
    unsigned char *rgb = fg_xmalloc(3 * plane, "toy2d png");
    memset(rgb, 255, 3 * plane);
    double top = -INFINITY;
    for (size_t i = 0; i < (size_t)res * res; i++)
        if (grid_logp[i] > top)
            top = grid_logp[i];
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
            int r = (int)((long)y * res / side), c = (int)((long)x * res / side);
            colour(exp(grid_logp[(size_t)r * res + c] - top), rgb + 3 * ((size_t)y * w + x));
        }
    double scale = side / (hi - lo);
    for (int i = 0; i < n; i++) {
        double px = (pts[2 * i] - lo) * scale, py = (hi - pts[2 * i + 1]) * scale;
        if (!(px >= 0.0 && px < side && py >= 0.0 && py < side))
            continue;
        int x = side + PANEL_GAP + (int)px, y = (int)py;
        unsigned char *p = rgb + 3 * ((size_t)y * w + x);
        p[0] = 31, p[1] = 60, p[2] = 140;
    }
    /* fg_png_write_grid takes planar floats in [-0.5, 0.5]; k / 255 - 0.5
     * maps back to the byte k exactly. */
    float *img = fg_xmalloc(3 * plane * sizeof *img, "toy2d png");
    for (size_t i = 0; i < plane; i++)
        for (int k = 0; k < 3; k++)
            img[k * plane + i] = rgb[3 * i + k] / 255.0f - 0.5f;
    int rc = fg_png_write_grid(path, img, 1, 3, side, w, 1, 1, 0);
    free(img);
    free(rgb);
    return rc;
}
