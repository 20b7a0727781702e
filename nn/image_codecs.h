/* The decoders behind fg_image_decode (nn/io.h), one per format; internal
 * to the library. Both take a whole file in memory, check the image's size
 * against the FG_IMAGE_MAX_* limits before allocating its pixels, and
 * report any damage as FG_ERR "what: ..." with img left empty. */
#ifndef FLOWGRAD_NN_IMAGE_CODECS_H
#define FLOWGRAD_NN_IMAGE_CODECS_H

#include "nn/io.h"

int fg_png_decode(fg_image *img, const uint8_t *buf, size_t len, const char *what);
int fg_jpeg_decode(fg_image *img, const uint8_t *buf, size_t len, const char *what);
/* FG_OK when w x h is within the limits, else the error for what. */
int fg_image_check_size(long w, long h, const char *what, const char *format);

#endif
