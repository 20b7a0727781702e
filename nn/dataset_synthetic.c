/* A synthetic image set for tests: four classes of bright shapes (square,
 * disc, horizontal bar, vertical bar) with jittered position, size and
 * brightness on a dark noisy background. Structured enough that a flow's
 * likelihood improves quickly, and fully determined by the seed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nn/io.h"

#define SYNTH_CLASSES FG_SYNTHETIC_CLASSES

static int inside(int cls, float dy, float dx, float r)
{
    switch (cls) {
    case 0: return fabsf(dy) <= r && fabsf(dx) <= r;
    case 1: return dy * dy + dx * dx <= r * r;
    case 2: return fabsf(dy) <= 0.4f * r && fabsf(dx) <= 1.5f * r;
    default: return fabsf(dx) <= 0.4f * r && fabsf(dy) <= 1.5f * r;
    }
}

void fg_dataset_synthetic(fg_dataset *d, int n, int c, int h, int w, uint64_t seed)
{
    FG_CHECK(n > 0 && c > 0 && h >= FG_SYNTHETIC_MIN_SIZE && w >= FG_SYNTHETIC_MIN_SIZE, "fg_dataset_synthetic",
             "n %d, shape (%d, %d, %d)", n, c, h, w);
    memset(d, 0, sizeof *d);
    d->n = n;
    d->c = c;
    d->h = h;
    d->w = w;
    d->n_classes = SYNTH_CLASSES;
    const size_t D = (size_t)c * h * w;
    d->images = fg_xmalloc((size_t)n * D, "synthetic images");
    d->labels = fg_xmalloc((size_t)n, "synthetic labels");
    float *noise = fg_xmalloc(D * sizeof *noise, "synthetic noise");
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    for (int s = 0; s < n; s++) {
        int cls = s % SYNTH_CLASSES;
        float u[4 + 3];
        fg_rng_uniform(&rng, u, 7);
        fg_rng_uniform(&rng, noise, D);
        float cy = (float)h * (0.35f + 0.3f * u[0]);
        float cx = (float)w * (0.35f + 0.3f * u[1]);
        float r = (float)(h < w ? h : w) * (0.15f + 0.1f * u[2]);
        d->labels[s] = (uint8_t)cls;
        uint8_t *img = d->images + (size_t)s * D;
        for (int ch = 0; ch < c; ch++) {
            float bright = 160.0f + 90.0f * u[3 + ch % 3];
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    size_t i = ((size_t)ch * h + y) * w + x;
                    float v = 24.0f * noise[i];
                    if (inside(cls, (float)y + 0.5f - cy, (float)x + 0.5f - cx, r))
                        v = bright - 16.0f * noise[i];
                    img[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
        }
    }
    free(noise);
}
