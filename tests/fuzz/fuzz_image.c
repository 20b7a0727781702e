/* The image decoders (PNG through libpng, JPEG through libjpeg, told apart
 * by fg_image_decode) on arbitrary bytes, and every image they accept
 * through fg_image_fit at both channel counts and both resize rules. The
 * first byte chooses the target size (1..16 a side), so crops and resizes
 * of every aspect are reached; the rest is the file. */
#include "nn/io.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int h = 1 + (data[0] & 15), w = 1 + (data[0] >> 4);
    fg_image img;
    if (fg_image_decode(&img, data + 1, size - 1, "fuzz input") != FG_OK)
        return 0;
    if (!img.px || img.w < 1 || img.h < 1 || img.c < 1 || img.c > 4 ||
        (long)img.w * img.h > FG_IMAGE_MAX_PIXELS)
        __builtin_trap(); /* an accepted image is within the limits */
    uint8_t out[3 * 16 * 16];
    for (int c = 1; c <= 3; c += 2)
        for (int r = FG_RESIZE_AREA; r <= FG_RESIZE_BILINEAR; r++)
            if (fg_image_fit(&img, c, h, w, (fg_resize_kind)r, out) != FG_OK)
                __builtin_trap(); /* any decoded image fits any shape */
    fg_image_free(&img);
    return 0;
}
