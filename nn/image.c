/* Image files: a PNG or a JPEG told apart by its first bytes, read whole
 * into memory within a size limit, and decoded (png.c, jpeg.c). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "nn/image_codecs.h"

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
static const uint8_t jpeg_signature[3] = {0xff, 0xd8, 0xff};

int fg_image_check_size(long w, long h, const char *what, const char *format)
{
    if (w < 1 || h < 1 || w > FG_IMAGE_MAX_SIDE || h > FG_IMAGE_MAX_SIDE ||
        w * h > FG_IMAGE_MAX_PIXELS)
        return fg_error("%s: a %s of %ld x %ld pixels; expected 1 to %d pixels a side and at "
                        "most %ld in all (shrink it first)", what, format, w, h,
                        FG_IMAGE_MAX_SIDE, FG_IMAGE_MAX_PIXELS);
    return FG_OK;
}

int fg_image_decode(fg_image *img, const uint8_t *buf, size_t len, const char *what)
{
    memset(img, 0, sizeof *img);
    if (len >= sizeof png_signature && !memcmp(buf, png_signature, sizeof png_signature))
        return fg_png_decode(img, buf, len, what);
    if (len >= sizeof jpeg_signature && !memcmp(buf, jpeg_signature, sizeof jpeg_signature))
        return fg_jpeg_decode(img, buf, len, what);
    if (len == 0)
        return fg_error("%s: an empty file; expected a PNG or JPEG image", what);
    return fg_error("%s: neither a PNG nor a JPEG (its first bytes are not their "
                    "signatures); expected a PNG or JPEG image", what);
}

int fg_image_read(fg_image *img, const char *path)
{
    memset(img, 0, sizeof *img);
    FILE *f = fopen(path, "rb");
    if (!f)
        return fg_error("%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return fg_error("%s: not a regular file; expected a PNG or JPEG image", path);
    }
    if (sb.st_size > FG_IMAGE_MAX_FILE_BYTES) {
        fclose(f);
        return fg_error("%s: %lld bytes, more than the %ld an image file may have",
                        path, (long long)sb.st_size, FG_IMAGE_MAX_FILE_BYTES);
    }
    size_t len = (size_t)sb.st_size;
    uint8_t *buf = fg_xmalloc(len ? len : 1, "image file");
    size_t got = fread(buf, 1, len, f);
    int err = ferror(f);
    fclose(f);
    int rc;
    if (err)
        rc = fg_error("%s: read error", path);
    else if (got != len)
        rc = fg_error("%s: %zu bytes where %zu were expected: the file changed while it was "
                      "read; rerun when nothing writes to it", path, got, len);
    else
        rc = fg_image_decode(img, buf, len, path);
    free(buf);
    return rc;
}

void fg_image_free(fg_image *img)
{
    free(img->px);
    memset(img, 0, sizeof *img);
}
