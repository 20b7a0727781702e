/* PNG through libpng: image grids written atomically like checkpoints so a
 * viewer never opens half a file, and images of a folder read from memory. */
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include "nn/image_codecs.h"

#define GRID_BACKGROUND 255   /* white borders separate the cells */

static uint8_t to_byte(float v)
{
    /* NaN maps to 0 as well: the comparison below is false for it. */
    float s = (v + 0.5f) * 255.0f;
    if (!(s > 0.0f))
        return 0;
    if (s >= 255.0f)
        return 255;
    return (uint8_t)(s + 0.5f);
}

/* libpng reports errors by longjmp; the message is kept for fg_error. */
static void png_fail(png_structp png, png_const_charp msg)
{
    fg_error("%s", msg);
    png_longjmp(png, 1);
}

static void png_warn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

int fg_png_write_grid(const char *path, const float *x, int n, int c, int h,
                      int w, int rows, int cols, int border)
{
    if (c != 1 && c != 3)
        return fg_error("%s: %d channels, expected 1 (gray) or 3 (RGB)", path, c);
    if (n < 0 || h <= 0 || w <= 0 || rows <= 0 || cols <= 0 || border < 0)
        return fg_error("%s: bad grid: %d images (%d, %d), %d x %d cells, border %d",
                        path, n, h, w, rows, cols, border);
    long width = (long)cols * w + (long)(cols + 1) * border;
    long height = (long)rows * h + (long)(rows + 1) * border;
    if (width > 65535 || height > 65535)
        return fg_error("%s: grid of %ld x %ld pixels is too large", path, width, height);
    size_t stride = (size_t)width * (size_t)c;
    uint8_t *pix = fg_xmalloc(stride * (size_t)height, "png grid");
    memset(pix, GRID_BACKGROUND, stride * (size_t)height);
    for (int i = 0; i < n && i < rows * cols; i++) {
        long y0 = (long)(i / cols) * (h + border) + border;
        long x0 = (long)(i % cols) * (w + border) + border;
        const float *img = x + (size_t)i * c * h * w;   /* (C, H, W) */
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++)
                for (int ch = 0; ch < c; ch++)
                    pix[(size_t)(y0 + y) * stride + (size_t)(x0 + xx) * c + ch] =
                        to_byte(img[((size_t)ch * h + y) * w + xx]);
    }

    /* Our memory before the temporary exists: a stop for want of it leaves
     * no file behind. */
    png_bytep *row_ptrs = fg_xmalloc((size_t)height * sizeof *row_ptrs, "png rows");
    for (long y = 0; y < height; y++)
        row_ptrs[y] = pix + (size_t)y * stride;
    fg_atomic_file a;
    if (fg_atomic_open(&a, path) != FG_OK) {
        free(row_ptrs);
        free(pix);
        return FG_ERR;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_fail, png_warn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    volatile int rc = FG_ERR;
    if (png && info) {
        if (setjmp(png_jmpbuf(png)) == 0) {
            png_init_io(png, a.f);
            png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                         c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                         PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                         PNG_FILTER_TYPE_DEFAULT);
            png_write_info(png, info);
            png_write_image(png, row_ptrs);
            png_write_end(png, NULL);
            rc = FG_OK;
        } else {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", fg_last_error());
            fg_error("%s: libpng: %s", path, msg);
        }
    } else {
        fg_error("%s: libpng could not start", path);
    }
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    free(row_ptrs);
    free(pix);
    if (rc != FG_OK) {
        fg_atomic_abort(&a);
        return FG_ERR;
    }
    return fg_atomic_commit(&a);
}

int fg_images_grey_nonfinite(fg_tensor *x)
{
    int n = x->shape[0], bad = 0;
    size_t per = fg_numel(x) / (size_t)n;
    for (int i = 0; i < n; i++) {
        float *p = x->data + (size_t)i * per;
        if (fg_k_all_finite(per, p))
            continue;
        bad++;
        fg_k_fill(per, 0.0f, p);   /* 0 is mid-grey in [-0.5, 0.5] */
    }
    return bad;
}

/* ---------------------------------------------------------------- reading */

typedef struct png_source {
    const uint8_t *p;
    size_t left;
} png_source;

static void read_source(png_structp png, png_bytep out, size_t n)
{
    png_source *src = png_get_io_ptr(png);
    if (n > src->left)
        png_error(png, "the file ends early (truncated)");
    memcpy(out, src->p, n);
    src->p += n;
    src->left -= n;
}

int fg_png_decode(fg_image *img, const uint8_t *buf, size_t len, const char *what)
{
    memset(img, 0, sizeof *img);
    /* The size, from the IHDR chunk that must come first, is checked before
     * libpng reads on; its own limits (a million pixels a side) are a
     * backstop further out. */
    if (len >= 24 && !memcmp(buf + 12, "IHDR", 4)) {
        long w = (long)buf[16] << 24 | (long)buf[17] << 16 | (long)buf[18] << 8 | buf[19];
        long h = (long)buf[20] << 24 | (long)buf[21] << 16 | (long)buf[22] << 8 | buf[23];
        if (fg_image_check_size(w, h, what, "PNG") != FG_OK)
            return FG_ERR;
    }
    png_source src = {buf, len};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_fail, png_warn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return fg_error("%s: libpng could not start", what);
    }
    /* Written after setjmp, read after a longjmp: volatile. */
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", fg_last_error());
        png_destroy_read_struct(&png, &info, NULL);
        free(px);
        free(rows);
        return fg_error("%s: corrupt or truncated PNG (libpng: %s)", what, msg);
    }
    png_set_chunk_malloc_max(png, 8u << 20);
    png_set_read_fn(png, &src, read_source);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (fg_image_check_size((long)w, (long)h, what, "PNG") != FG_OK) {
        png_destroy_read_struct(&png, &info, NULL);
        return FG_ERR;
    }
    /* Always 8 bits per channel: palettes and low depths expanded, a tRNS
     * chunk made alpha, 16 bits scaled (rounded) to 8. */
    png_set_expand(png);
    png_set_scale_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info);
    if (png_get_bit_depth(png, info) != 8 || c < 1 || c > 4 ||
        png_get_rowbytes(png, info) != (size_t)w * (size_t)c)
        png_error(png, "unexpected layout after expansion");
    px = fg_xmalloc((size_t)w * h * (size_t)c, "png pixels");
    rows = fg_xmalloc((size_t)h * sizeof *rows, "png rows");
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = px + (size_t)y * w * (size_t)c;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    *img = (fg_image){(int)w, (int)h, c, px};
    return FG_OK;
}
