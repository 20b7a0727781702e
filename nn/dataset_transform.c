/* Transforms of a whole data set that make out-of-distribution images from
 * in-distribution ones (see nn/io.h): a density model should find an upside
 * down garment, its negative, or noise less likely than the test set. */
#include <stdlib.h>
#include <string.h>
#include "nn/io.h"

/* Indexed by fg_image_transform. */
static const char *const transform_names[FG_IMAGE_TRANSFORMS] = {
    "flipped-vertical", "inverted", "noise"
};

const char *fg_image_transform_name(fg_image_transform t)
{
    return (unsigned)t < FG_IMAGE_TRANSFORMS ? transform_names[t] : "?";
}

int fg_image_transform_parse(const char *name, fg_image_transform *out)
{
    for (int t = 0; t < FG_IMAGE_TRANSFORMS; t++)
        if (!strcmp(name, transform_names[t])) {
            *out = (fg_image_transform)t;
            return FG_OK;
        }
    return fg_error("unknown transform '%s': expected flipped-vertical, inverted or noise",
                    name);
}

/* Rows of each channel of each image in reverse order. */
static void flip_vertical(fg_dataset *d)
{
    size_t w = (size_t)d->w;
    uint8_t *row = fg_xmalloc(w, "image row");
    for (size_t plane = 0; plane < (size_t)d->n * d->c; plane++) {
        uint8_t *p = d->images + plane * d->h * w;
        for (int top = 0, bottom = d->h - 1; top < bottom; top++, bottom--) {
            memcpy(row, p + top * w, w);
            memcpy(p + top * w, p + bottom * w, w);
            memcpy(p + bottom * w, row, w);
        }
    }
    free(row);
}

void fg_dataset_transform(fg_dataset *d, fg_image_transform t, uint64_t seed)
{
    size_t total = (size_t)d->n * d->c * d->h * d->w;
    switch (t) {
    case FG_TRANSFORM_FLIP_VERTICAL:
        flip_vertical(d);
        break;
    case FG_TRANSFORM_INVERT:
        for (size_t i = 0; i < total; i++)
            d->images[i] = (uint8_t)(255 - d->images[i]);
        break;
    case FG_TRANSFORM_NOISE: {
        /* Philox draws, so the noise set is the same on every machine. */
        fg_rng rng;
        fg_rng_seed(&rng, seed);
        for (size_t i = 0; i < total; i++)
            d->images[i] = (uint8_t)(fg_rng_u32(&rng) >> 24);
        break;
    }
    default:
        FG_CHECK(0, "fg_dataset_transform", "transform %d", (int)t);
    }
}
