/* Image files and image folders as datasets: PNG and JPEG decoding, the
 * crop, resize and channel conversion against values worked out by hand,
 * labels from subfolders, the split by name, the cache (hits, misses,
 * folders it cannot be written to), every kind of bad input, and a config
 * that trains on a folder. Folders of images are generated in /tmp. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <jpeglib.h>
#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "check_main.h"
#include "flowgrad.h"

/* ---------------------------------------------------------------- helpers */

static char root[256];

static void make_root(void)
{
    snprintf(root, sizeof root, "/tmp/fg-image-folder-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static int allow_entry(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    chmod(p, 0700);
    return 0;
}

static void remove_root(void)
{
    nftw(root, allow_entry, 16, FTW_PHYS);
    nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* root/rel, with the folders on the way made. */
static const char *at(const char *rel)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", root, rel);
    for (char *p = buf[k] + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(buf[k], 0755);
        *p = '/';
    }
    return buf[k];
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    uint8_t *b = malloc(*n + 1);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* A PNG through libpng: rows of w pixels of the given colour type and bit
 * depth (16-bit samples big-endian, as PNG stores them); a palette of
 * n_palette RGB entries for palette images. */
static void write_png(const char *path, int w, int h, int color_type, int depth, int interlace,
                      const uint8_t *px, const png_color *palette, int n_palette)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(png && info);
    ck_assert_int_eq(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, n_palette);
    png_write_info(png, info);
    int ch = color_type == PNG_COLOR_TYPE_RGB ? 3 : color_type == PNG_COLOR_TYPE_RGBA ? 4
             : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    size_t stride = (size_t)w * ch * (depth == 16 ? 2 : 1);
    if (depth < 8)
        stride = ((size_t)w * depth + 7) / 8;
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++)
        rows[y] = (png_bytep)px + (size_t)y * stride;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_gray_png(const char *path, int w, int h, const uint8_t *px)
{
    write_png(path, w, h, PNG_COLOR_TYPE_GRAY, 8, 0, px, NULL, 0);
}

/* A w x h gray PNG of one value, its first pixel set to id (to tell the
 * images of a folder apart once loaded without resizing). */
static void write_marked(const char *rel, int w, int h, uint8_t value, uint8_t id)
{
    uint8_t px[64 * 64];
    ck_assert(w * h <= 64 * 64);
    memset(px, value, (size_t)w * h);
    px[0] = id;
    write_gray_png(at(rel), w, h, px);
}

/* Baseline unless progressive; c = 4 writes CMYK. */
static void write_jpeg_as(const char *path, int w, int h, int c, const uint8_t *px, int quality,
                          int progressive)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = c;
    cinfo.in_color_space = c == 1 ? JCS_GRAYSCALE : c == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (progressive)
        jpeg_simple_progression(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)px + (size_t)cinfo.next_scanline * w * c;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_jpeg(const char *path, int w, int h, int c, const uint8_t *px, int quality)
{
    write_jpeg_as(path, w, h, c, px, quality, 0);
}

/* Options for an 8-bit gray or RGB folder at h x w, notes into log. */
static fg_folder_options opts(int c, int h, int w, FILE *log)
{
    return (fg_folder_options){.c = c, .h = h, .w = w, .resize = FG_RESIZE_AREA,
                               .on_bad_file = FG_BAD_FILE_REFUSE, .max_bytes = -1, .log = log};
}

/* What a log file holds so far, from its start. */
static const char *log_text(FILE *log)
{
    static char buf[8192];
    fflush(log);
    long end = ftell(log);
    rewind(log);
    size_t n = fread(buf, 1, sizeof buf - 1, log);
    buf[n] = '\0';
    fseek(log, end, SEEK_SET);
    return buf;
}

static void assert_error_has(const char *a, const char *b)
{
    const char *e = fg_last_error();
    ck_assert_msg(strstr(e, a) && (!b || strstr(e, b)), "error '%s' lacks '%s' / '%s'", e, a,
                  b ? b : "");
}

/* ---------------------------------------------------------------- resize */

static fg_image image_of(int w, int h, int c, const uint8_t *px)
{
    fg_image im = {w, h, c, malloc((size_t)w * h * c)};
    memcpy(im.px, px, (size_t)w * h * c);
    return im;
}

/* 3x3 to 2x2 by area: output (0, 0) covers source rows [0, 1.5) and
 * columns [0, 1.5): weights 1 and 1/2 per axis over 1.5 each, so
 * (0 + 90/2 + 30/2 + 60/4) / 2.25 = 75 / 2.25 = 33.33 -> 33, and likewise
 * 305 / 2.25 = 135.56 -> 136, 285 / 2.25 = 126.67 -> 127, 180 / 2.25 = 80.
 * Bilinear samples at 1.5 k + 0.25: weights (3/4, 1/4) and (1/4, 3/4),
 * (0 * 9 + 90 * 3 + 30 * 3 + 60) / 16 = 26.25 -> 26, and so on. */
START_TEST(area_and_bilinear_shrink_by_hand)
{
    const uint8_t src[9] = {0, 90, 200, 30, 60, 90, 255, 0, 120};
    fg_image im = image_of(3, 3, 1, src);
    uint8_t out[4];
    ck_assert_int_eq(fg_image_fit(&im, 1, 2, 2, FG_RESIZE_AREA, out), FG_OK);
    const uint8_t area[4] = {33, 136, 127, 80};
    ck_assert_mem_eq(out, area, 4);
    ck_assert_int_eq(fg_image_fit(&im, 1, 2, 2, FG_RESIZE_BILINEAR, out), FG_OK);
    /* (1,0): (30*3 + 60 + 255*9 + 0*3)/16 = 2445/16 = 152.8 -> 153
     * (0,1): (90*3 + 200*9 + 60 + 90*3)/16 = 2400/16 = 150
     * (1,1): (60 + 90*3 + 0*3 + 120*9)/16 = 1410/16 = 88.1 -> 88 */
    const uint8_t bilinear[4] = {26, 150, 153, 88};
    ck_assert_mem_eq(out, bilinear, 4);
    /* The same size is the identity under both rules. */
    uint8_t same[9];
    ck_assert_int_eq(fg_image_fit(&im, 1, 3, 3, FG_RESIZE_AREA, same), FG_OK);
    ck_assert_mem_eq(same, src, 9);
    ck_assert_int_eq(fg_image_fit(&im, 1, 3, 3, FG_RESIZE_BILINEAR, same), FG_OK);
    ck_assert_mem_eq(same, src, 9);
    fg_image_free(&im);
}
END_TEST

/* 2x2 to 4x4 grows, so both rules interpolate: sample positions
 * k / 2 - 1/4 clamp to 0, then 1/4, 3/4, and 5/4 clamps to 1. */
START_TEST(bilinear_grow_by_hand)
{
    const uint8_t src[4] = {0, 100, 200, 40};
    fg_image im = image_of(2, 2, 1, src);
    uint8_t out[16];
    ck_assert_int_eq(fg_image_fit(&im, 1, 4, 4, FG_RESIZE_AREA, out), FG_OK);
    /* Row 0: 0, 100/4 = 25, 300/4 = 75, 100. (1,1): (0*9 + 100*3 + 200*3
     * + 40)/16 = 58.75 -> 59. (2,1): (0*3 + 100 + 200*9 + 40*3)/16 =
     * 126.25 -> 126. Row 3: 200, (200*3 + 40)/4 = 160, (200 + 40*3)/4 = 80,
     * 40. */
    ck_assert_int_eq(out[0], 0);
    ck_assert_int_eq(out[1], 25);
    ck_assert_int_eq(out[2], 75);
    ck_assert_int_eq(out[3], 100);
    ck_assert_int_eq(out[5], 59);
    ck_assert_int_eq(out[9], 126);
    ck_assert_int_eq(out[12], 200);
    ck_assert_int_eq(out[13], 160);
    ck_assert_int_eq(out[14], 80);
    ck_assert_int_eq(out[15], 40);
    fg_image_free(&im);
}
END_TEST

/* The crop keeps the centred w:h rectangle: a 6x2 image to 2x2 keeps
 * columns 2 and 3, a 2x6 one rows 2 and 3, a 5x2 one columns 1 and 2
 * (the odd pixel left over goes to the right). */
START_TEST(centre_crop_to_aspect)
{
    uint8_t wide[12], tall[12], odd[10], out[4];
    for (int i = 0; i < 12; i++)
        wide[i] = (uint8_t)(10 * (i % 6) + 100 * (i / 6)), tall[i] = (uint8_t)(10 * i);
    for (int i = 0; i < 10; i++)
        odd[i] = (uint8_t)(10 * (i % 5) + 100 * (i / 5));
    fg_image a = image_of(6, 2, 1, wide), b = image_of(2, 6, 1, tall), c = image_of(5, 2, 1, odd);
    ck_assert_int_eq(fg_image_fit(&a, 1, 2, 2, FG_RESIZE_AREA, out), FG_OK);
    ck_assert_mem_eq(out, ((uint8_t[]){20, 30, 120, 130}), 4);
    ck_assert_int_eq(fg_image_fit(&b, 1, 2, 2, FG_RESIZE_AREA, out), FG_OK);
    ck_assert_mem_eq(out, ((uint8_t[]){40, 50, 60, 70}), 4);
    ck_assert_int_eq(fg_image_fit(&c, 1, 2, 2, FG_RESIZE_AREA, out), FG_OK);
    ck_assert_mem_eq(out, ((uint8_t[]){10, 20, 110, 120}), 4);
    /* 6x2 to 3x1 (aspect 3:1): crop 6x2, area over 2x2 blocks:
     * (0 + 10 + 100 + 110) / 4 = 55, then 75, 95. */
    ck_assert_int_eq(fg_image_fit(&a, 1, 1, 3, FG_RESIZE_AREA, out), FG_OK);
    ck_assert_mem_eq(out, ((uint8_t[]){55, 75, 95}), 3);
    fg_image_free(&a);
    fg_image_free(&b);
    fg_image_free(&c);
}
END_TEST

/* Luma by BT.601 weights, alpha over white, gray copied to RGB:
 * (200, 100, 50) -> (299*200 + 587*100 + 114*50) / 1000 = 124.2 -> 124;
 * with alpha 128 over white: 124.2 * 128 / 255 + 127 = 189.34 -> 189, and
 * as RGB 200*128/255 + 127 = 227.39 -> 227, 177.2 -> 177, 152.1 -> 152. */
START_TEST(channel_conversion_by_hand)
{
    uint8_t out[3];
    fg_image rgb = image_of(1, 1, 3, (uint8_t[]){200, 100, 50});
    fg_image rgba = image_of(1, 1, 4, (uint8_t[]){200, 100, 50, 128});
    fg_image gray = image_of(1, 1, 1, (uint8_t[]){77});
    fg_image ga = image_of(1, 1, 2, (uint8_t[]){77, 51});
    ck_assert_int_eq(fg_image_fit(&rgb, 1, 1, 1, FG_RESIZE_AREA, out), FG_OK);
    ck_assert_int_eq(out[0], 124);
    ck_assert_int_eq(fg_image_fit(&rgb, 3, 1, 1, FG_RESIZE_AREA, out), FG_OK);
    ck_assert_mem_eq(out, ((uint8_t[]){200, 100, 50}), 3);
    ck_assert_int_eq(fg_image_fit(&rgba, 1, 1, 1, FG_RESIZE_AREA, out), FG_OK);
    ck_assert_int_eq(out[0], 189);
    ck_assert_int_eq(fg_image_fit(&rgba, 3, 1, 1, FG_RESIZE_AREA, out), FG_OK);
    ck_assert_mem_eq(out, ((uint8_t[]){227, 177, 152}), 3);
    ck_assert_int_eq(fg_image_fit(&gray, 3, 1, 1, FG_RESIZE_AREA, out), FG_OK);
    ck_assert_mem_eq(out, ((uint8_t[]){77, 77, 77}), 3);
    ck_assert_int_eq(fg_image_fit(&gray, 1, 1, 1, FG_RESIZE_AREA, out), FG_OK);
    ck_assert_int_eq(out[0], 77);
    /* 77 * 51 / 255 + 204 = 219.4 -> 219 */
    ck_assert_int_eq(fg_image_fit(&ga, 1, 1, 1, FG_RESIZE_AREA, out), FG_OK);
    ck_assert_int_eq(out[0], 219);
    ck_assert_int_eq(fg_image_fit(&rgb, 2, 1, 1, FG_RESIZE_AREA, out), FG_ERR);
    assert_error_has("2 channels", "expected 1 (gray) or 3 (RGB)");
    fg_image_free(&rgb);
    fg_image_free(&rgba);
    fg_image_free(&gray);
    fg_image_free(&ga);
}
END_TEST

/* ---------------------------------------------------------------- files */

/* Every PNG layout decodes to 8-bit samples of the same values. */
START_TEST(png_layouts_decode)
{
    make_root();
    const uint8_t gray[6] = {0, 50, 100, 150, 200, 255};
    fg_image im;
    write_gray_png(at("g8.png"), 3, 2, gray);
    ck_assert_int_eq(fg_image_read(&im, at("g8.png")), FG_OK);
    ck_assert(im.w == 3 && im.h == 2 && im.c == 1);
    ck_assert_mem_eq(im.px, gray, 6);
    fg_image_free(&im);
    /* Interlaced (Adam7) holds the same pixels. */
    write_png(at("g8i.png"), 3, 2, PNG_COLOR_TYPE_GRAY, 8, 1, gray, NULL, 0);
    ck_assert_int_eq(fg_image_read(&im, at("g8i.png")), FG_OK);
    ck_assert_mem_eq(im.px, gray, 6);
    fg_image_free(&im);
    /* 16 bits, big-endian: 0x3412 scales to round(13330 * 255 / 65535) = 52. */
    const uint8_t g16[4] = {0x34, 0x12, 0xff, 0xff};
    write_png(at("g16.png"), 2, 1, PNG_COLOR_TYPE_GRAY, 16, 0, g16, NULL, 0);
    ck_assert_int_eq(fg_image_read(&im, at("g16.png")), FG_OK);
    ck_assert(im.c == 1 && im.px[0] == 52 && im.px[1] == 255);
    fg_image_free(&im);
    /* A palette becomes RGB. */
    png_color pal[2] = {{10, 20, 30}, {200, 150, 100}};
    const uint8_t idx[2] = {1, 0};
    write_png(at("pal.png"), 2, 1, PNG_COLOR_TYPE_PALETTE, 8, 0, idx, pal, 2);
    ck_assert_int_eq(fg_image_read(&im, at("pal.png")), FG_OK);
    ck_assert_int_eq(im.c, 3);
    ck_assert_mem_eq(im.px, ((uint8_t[]){200, 150, 100, 10, 20, 30}), 6);
    fg_image_free(&im);
    /* 1-bit gray expands to 0 and 255. */
    const uint8_t bits[1] = {0xa0}; /* 1 0 1 0 */
    write_png(at("g1.png"), 4, 1, PNG_COLOR_TYPE_GRAY, 1, 0, bits, NULL, 0);
    ck_assert_int_eq(fg_image_read(&im, at("g1.png")), FG_OK);
    ck_assert_mem_eq(im.px, ((uint8_t[]){255, 0, 255, 0}), 4);
    fg_image_free(&im);
    /* RGBA keeps its alpha for fg_image_fit to composite. */
    const uint8_t rgba[4] = {200, 100, 50, 128};
    write_png(at("rgba.png"), 1, 1, PNG_COLOR_TYPE_RGBA, 8, 0, rgba, NULL, 0);
    ck_assert_int_eq(fg_image_read(&im, at("rgba.png")), FG_OK);
    ck_assert_int_eq(im.c, 4);
    ck_assert_mem_eq(im.px, rgba, 4);
    fg_image_free(&im);
    remove_root();
}
END_TEST

/* JPEG is lossy: a smooth image at quality 95 comes back within a few
 * levels, gray as one channel and colour as three, baseline or
 * progressive; CMYK is refused with what to do. */
START_TEST(jpeg_decodes)
{
    make_root();
    enum { W = 16, H = 8 };
    uint8_t g[W * H], rgb[W * H * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            g[y * W + x] = (uint8_t)(60 + 4 * x + 3 * y);
            for (int c = 0; c < 3; c++)
                rgb[(y * W + x) * 3 + c] = (uint8_t)(40 + 40 * c + 2 * x + 2 * y);
        }
    write_jpeg(at("g.jpg"), W, H, 1, g, 95);
    write_jpeg(at("c.JPEG"), W, H, 3, rgb, 95);
    fg_image im;
    ck_assert_msg(fg_image_read(&im, at("g.jpg")) == FG_OK, "%s", fg_last_error());
    ck_assert(im.w == W && im.h == H && im.c == 1);
    for (int i = 0; i < W * H; i++)
        ck_assert_int_le(abs(im.px[i] - g[i]), 3);
    fg_image_free(&im);
    ck_assert_msg(fg_image_read(&im, at("c.JPEG")) == FG_OK, "%s", fg_last_error());
    ck_assert(im.w == W && im.h == H && im.c == 3);
    for (int i = 0; i < W * H * 3; i++)
        ck_assert_int_le(abs(im.px[i] - rgb[i]), 4);
    fg_image_free(&im);
    write_jpeg_as(at("p.jpg"), W, H, 3, rgb, 95, 1);
    ck_assert_msg(fg_image_read(&im, at("p.jpg")) == FG_OK, "%s", fg_last_error());
    ck_assert(im.w == W && im.h == H && im.c == 3);
    for (int i = 0; i < W * H * 3; i++)
        ck_assert_int_le(abs(im.px[i] - rgb[i]), 4);
    fg_image_free(&im);
    uint8_t cmyk[W * H * 4];
    memset(cmyk, 100, sizeof cmyk);
    write_jpeg_as(at("cmyk.jpg"), W, H, 4, cmyk, 90, 0);
    ck_assert_int_eq(fg_image_read(&im, at("cmyk.jpg")), FG_ERR);
    assert_error_has("cmyk.jpg: a CMYK JPEG, which is not read", "convert it to RGB");
    remove_root();
}
END_TEST

/* Damaged files are errors naming the file and the problem. */
START_TEST(damaged_files_are_errors)
{
    make_root();
    uint8_t g[64 * 64];
    for (int i = 0; i < 64 * 64; i++)
        g[i] = (uint8_t)((i * 7) ^ (i >> 3));
    write_gray_png(at("ok.png"), 64, 64, g);
    write_jpeg(at("ok.jpg"), 64, 64, 1, g, 90);
    size_t n_png, n_jpg;
    uint8_t *png = read_bytes(at("ok.png"), &n_png), *jpg = read_bytes(at("ok.jpg"), &n_jpg);
    fg_image im;
    write_bytes(at("half.png"), png, n_png / 2);
    ck_assert_int_eq(fg_image_read(&im, at("half.png")), FG_ERR);
    assert_error_has("half.png: corrupt or truncated PNG", "truncated");
    write_bytes(at("half.jpg"), jpg, n_jpg / 2);
    ck_assert_int_eq(fg_image_read(&im, at("half.jpg")), FG_ERR);
    assert_error_has("half.jpg: corrupt or truncated JPEG", NULL);
    /* A flipped byte in the PNG's image data fails its CRC. */
    png[n_png / 2] ^= 0x55;
    write_bytes(at("flipped.png"), png, n_png);
    ck_assert_int_eq(fg_image_read(&im, at("flipped.png")), FG_ERR);
    assert_error_has("flipped.png: corrupt or truncated PNG", NULL);
    write_bytes(at("text.png"), "hello, world\n", 13);
    ck_assert_int_eq(fg_image_read(&im, at("text.png")), FG_ERR);
    assert_error_has("text.png: neither a PNG nor a JPEG", NULL);
    write_bytes(at("empty.jpg"), "", 0);
    ck_assert_int_eq(fg_image_read(&im, at("empty.jpg")), FG_ERR);
    assert_error_has("empty.jpg: an empty file", NULL);
    ck_assert_int_eq(fg_image_read(&im, at("absent.png")), FG_ERR);
    assert_error_has("absent.png: cannot open", NULL);
    /* A header claiming 100000 x 100000 pixels is refused before any
     * allocation: the signature and IHDR of ok.png with the size rewritten
     * and the chunk's CRC made anew, then nothing. */
    uint8_t big[33];
    memcpy(big, png, 33);
    big[16] = big[20] = 0x00, big[17] = big[21] = 0x01, big[18] = big[22] = 0x86;
    big[19] = big[23] = 0xa0;
    uLong crc = crc32(crc32(0L, Z_NULL, 0), big + 12, 17);
    for (int i = 0; i < 4; i++)
        big[29 + i] = (uint8_t)(crc >> (24 - 8 * i));
    write_bytes(at("big.png"), big, 33);
    ck_assert_int_eq(fg_image_read(&im, at("big.png")), FG_ERR);
    assert_error_has("big.png: a PNG of 100000 x 100000 pixels", "shrink it");
    free(png);
    free(jpg);
    remove_root();
}
END_TEST

/* ---------------------------------------------------------------- folders */

/* Classes are the sorted subfolder names, whatever order they were made
 * in; images follow their relative paths; colour converts to the shape. */
START_TEST(labels_from_subfolders)
{
    make_root();
    const char *names[3] = {"zebra", "ant", "mole"};
    const uint8_t value[3] = {30, 90, 150};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 4; i++) {
            char rel[64];
            snprintf(rel, sizeof rel, "animals/%s/%d.png", names[k], i);
            write_marked(rel, 4, 4, value[k], value[k]);
        }
    /* A nested folder still belongs to its top-level class; other files
     * and hidden ones are ignored. */
    write_marked("animals/ant/deeper/x.png", 4, 4, value[1], value[1]);
    write_bytes(at("animals/ant/notes.txt"), "n", 1);
    write_bytes(at("animals/.hidden.png"), "junk", 4);
    FILE *log = tmpfile();
    fg_folder_options o = opts(3, 2, 2, log);
    fg_dataset d;
    ck_assert_msg(fg_dataset_load_folder(&d, at("animals"), &o, FG_FOLDER_ALL) == FG_OK, "%s",
                  fg_last_error());
    ck_assert_int_eq(d.n, 13);
    ck_assert_int_eq(d.n_classes, 3);
    ck_assert_str_eq(d.class_names[0], "ant");
    ck_assert_str_eq(d.class_names[1], "mole");
    ck_assert_str_eq(d.class_names[2], "zebra");
    /* ant: 0.png..3.png, deeper/x.png; then mole, then zebra. Every pixel
     * of a 4x4 constant image averaged to 2x2, copied to RGB. */
    for (int i = 0; i < d.n; i++) {
        int want = i < 5 ? 0 : i < 9 ? 1 : 2;
        ck_assert_int_eq(d.labels[i], want);
        uint8_t v = value[want == 0 ? 1 : want == 1 ? 2 : 0];
        for (int j = 0; j < 12; j++)
            ck_assert_int_eq(d.images[i * 12 + j], v);
    }
    ck_assert_ptr_nonnull(strstr(log_text(log), "3 classes from its subfolders: 0 ant, 1 mole, "
                                                "2 zebra"));
    fg_dataset_free(&d);
    /* Without subfolders: unlabeled. */
    write_marked("flat/a.png", 4, 4, 10, 10);
    write_marked("flat/b.png", 4, 4, 20, 20);
    o = opts(1, 4, 4, log);
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("flat"), &o, FG_FOLDER_ALL), FG_OK);
    ck_assert_int_eq(d.n, 2);
    ck_assert_int_eq(d.n_classes, 0);
    ck_assert_ptr_null(d.class_names);
    ck_assert(d.labels[0] == 0 && d.labels[1] == 0);
    ck_assert(d.images[0] == 10 && d.images[16] == 20);
    fg_dataset_free(&d);
    fclose(log);
    remove_root();
}
END_TEST

/* Which split an image is in depends on its relative name alone: about
 * 10 % are test images, and adding files moves none of the others. */
START_TEST(split_by_name_is_stable)
{
    int test = 0;
    char name[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof name, "class%d/img_%05d.jpg", i % 7, i);
        test += fg_folder_in_test_split(name);
    }
    /* 10 % of 20000 with a standard deviation of 42: 1850..2150 is 3.5 sd. */
    ck_assert_int_ge(test, 1850);
    ck_assert_int_le(test, 2150);

    make_root();
    int split_of[200];
    for (int i = 0; i < 200; i++)
        split_of[i] = -1;
    for (int i = 0; i < 120; i++) {
        snprintf(name, sizeof name, "data/%03d.png", i);
        write_marked(name, 4, 4, 0, (uint8_t)i);
    }
    for (int round = 0; round < 2; round++) {
        fg_dataset tr, te;
        fg_folder_options o = opts(1, 4, 4, NULL);
        ck_assert_int_eq(fg_dataset_load_folder(&tr, at("data"), &o, FG_FOLDER_TRAIN), FG_OK);
        ck_assert_int_eq(fg_dataset_load_folder(&te, at("data"), &o, FG_FOLDER_TEST), FG_OK);
        int total = round ? 200 : 120;
        ck_assert_int_eq(tr.n + te.n, total);
        int seen[200] = {0};
        for (int s = 0; s < 2; s++) {
            const fg_dataset *d = s ? &te : &tr;
            for (int i = 0; i < d->n; i++) {
                int id = d->images[i * 16];
                seen[id]++;
                snprintf(name, sizeof name, "%03d.png", id);
                ck_assert_int_eq(fg_folder_in_test_split(name), s);
                if (split_of[id] >= 0)
                    ck_assert_int_eq(split_of[id], s); /* the same split as before */
                split_of[id] = s;
            }
        }
        for (int i = 0; i < total; i++)
            ck_assert_int_eq(seen[i], 1);
        fg_dataset_free(&tr);
        fg_dataset_free(&te);
        for (int i = 120; i < 200; i++) {
            snprintf(name, sizeof name, "data/%03d.png", i);
            write_marked(name, 4, 4, 0, (uint8_t)i);
        }
    }
    remove_root();
}
END_TEST

/* A test folder is all test data, labeled by the training folder's
 * classes (a subset of them is fine, a class of its own is not). */
START_TEST(test_folder_takes_training_classes)
{
    make_root();
    write_marked("train/cat/1.png", 4, 4, 10, 1);
    write_marked("train/dog/1.png", 4, 4, 20, 2);
    write_marked("train/fox/1.png", 4, 4, 30, 3);
    write_marked("test/fox/9.png", 4, 4, 30, 9);
    write_marked("test/cat/8.png", 4, 4, 10, 8);
    fg_folder_options o = opts(1, 4, 4, NULL);
    char test_dir[512], flat_dir[512];
    snprintf(test_dir, sizeof test_dir, "%s", at("test"));
    o.test_dir = test_dir;
    fg_dataset tr, te;
    ck_assert_int_eq(fg_dataset_load_folder(&tr, at("train"), &o, FG_FOLDER_TRAIN), FG_OK);
    ck_assert_int_eq(tr.n, 3); /* no split by name with a test folder */
    ck_assert_int_eq(fg_dataset_load_folder(&te, at("train"), &o, FG_FOLDER_TEST), FG_OK);
    ck_assert_int_eq(te.n, 2);
    ck_assert_int_eq(te.n_classes, 3);
    ck_assert(te.images[0] == 8 && te.labels[0] == 0);  /* cat/8.png */
    ck_assert(te.images[16] == 9 && te.labels[1] == 2); /* fox/9.png */
    fg_dataset_free(&tr);
    fg_dataset_free(&te);
    write_marked("test/owl/1.png", 4, 4, 30, 9);
    ck_assert_int_eq(fg_dataset_load_folder(&te, at("train"), &o, FG_FOLDER_TEST), FG_ERR);
    assert_error_has("test/owl: a class folder that", "does not have");
    write_marked("flat-test/1.png", 4, 4, 30, 9);
    snprintf(flat_dir, sizeof flat_dir, "%s", at("flat-test"));
    o.test_dir = flat_dir;
    ck_assert_int_eq(fg_dataset_load_folder(&te, at("train"), &o, FG_FOLDER_TEST), FG_ERR);
    assert_error_has("flat-test: images without class folders", NULL);
    remove_root();
}
END_TEST

/* ---------------------------------------------------------------- cache */

static void set_mtime(const char *path, time_t t)
{
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* The second load reads the cache: an image rewritten behind its back
 * with the same size and time still reads as it was. A new time, a new
 * file or another resize rule rebuilds it, saying so; a damaged cache is
 * rebuilt too. */
START_TEST(cache_hits_and_misses)
{
    make_root();
    for (int i = 0; i < 6; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "c/%d.png", i);
        write_marked(rel, 4, 4, 50, (uint8_t)i);
        set_mtime(at(rel), 1000000000);
    }
    FILE *log = tmpfile();
    fg_folder_options o = opts(1, 4, 4, log);
    fg_dataset d;
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("c"), &o, FG_FOLDER_ALL), FG_OK);
    fg_dataset_free(&d);
    struct stat sb;
    ck_assert_int_eq(stat(at("c/.flowgrad-cache-4x4x1.safetensors"), &sb), 0);
    ck_assert_ptr_nonnull(strstr(log_text(log), "decoded and cached"));
    /* Same size, same time, other pixels: the cache answers. */
    struct stat before;
    ck_assert_int_eq(stat(at("c/3.png"), &before), 0);
    write_marked("c/3.png", 4, 4, 50, 33);
    set_mtime(at("c/3.png"), 1000000000);
    ck_assert_int_eq(stat(at("c/3.png"), &sb), 0);
    ck_assert_int_eq(sb.st_size, before.st_size);
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("c"), &o, FG_FOLDER_ALL), FG_OK);
    ck_assert_int_eq(d.images[3 * 16], 3);
    fg_dataset_free(&d);
    ck_assert_ptr_nonnull(strstr(log_text(log), "from its cache"));
    /* A new time: rebuilt, with the new pixels. */
    set_mtime(at("c/3.png"), 1000000001);
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("c"), &o, FG_FOLDER_ALL), FG_OK);
    ck_assert_int_eq(d.images[3 * 16], 33);
    fg_dataset_free(&d);
    ck_assert_ptr_nonnull(strstr(log_text(log), "changed since its cache was made (6 files "
                                                "then, 6 now"));
    /* A file added. */
    write_marked("c/9.png", 4, 4, 50, 9);
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("c"), &o, FG_FOLDER_ALL), FG_OK);
    ck_assert_int_eq(d.n, 7);
    fg_dataset_free(&d);
    ck_assert_ptr_nonnull(strstr(log_text(log), "(6 files then, 7 now"));
    /* Another rule, same file name: rebuilt (bilinear of a same-size image
     * is the same pixels, so this checks the fingerprint, not the data). */
    rewind(log);
    ck_assert_int_eq(ftruncate(fileno(log), 0), 0);
    o.resize = FG_RESIZE_BILINEAR;
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("c"), &o, FG_FOLDER_ALL), FG_OK);
    fg_dataset_free(&d);
    ck_assert_ptr_nonnull(strstr(log_text(log), "changed since its cache was made"));
    /* A damaged cache is rebuilt. */
    size_t n;
    uint8_t *b = read_bytes(at("c/.flowgrad-cache-4x4x1.safetensors"), &n);
    write_bytes(at("c/.flowgrad-cache-4x4x1.safetensors"), b, n - 5);
    free(b);
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("c"), &o, FG_FOLDER_ALL), FG_OK);
    ck_assert_int_eq(d.n, 7);
    fg_dataset_free(&d);
    ck_assert_ptr_nonnull(strstr(log_text(log), "its cache is damaged"));
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("c"), &o, FG_FOLDER_ALL), FG_OK);
    fg_dataset_free(&d);
    ck_assert_ptr_nonnull(strstr(log_text(log), "from its cache"));
    fclose(log);
    remove_root();
}
END_TEST

/* Where the cache cannot be written the folder is used without one, and
 * that is said once. A directory in the cache's place stands in for a
 * read-only folder when the test runs as root, whom permissions do not
 * stop; as another user the folder is made read-only as well. */
START_TEST(unwritable_folder_works_without_cache)
{
    make_root();
    write_marked("ro/a.png", 4, 4, 1, 1);
    write_marked("ro/b.png", 4, 4, 2, 2);
    mkdir(at("ro/.flowgrad-cache-4x4x1.safetensors"), 0755);
    FILE *log = tmpfile();
    fg_folder_options o = opts(1, 4, 4, log);
    fg_dataset d;
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(fg_dataset_load_folder(&d, at("ro"), &o, FG_FOLDER_ALL), FG_OK);
        ck_assert_int_eq(d.n, 2);
        fg_dataset_free(&d);
    }
    const char *text = log_text(log), *first = strstr(text, "working without a cache");
    ck_assert_ptr_nonnull(first);
    ck_assert_ptr_null(strstr(first + 1, "working without a cache"));
    ck_assert_ptr_nonnull(strstr(text, "exists and is not a regular file"));
    if (geteuid() != 0) {
        write_marked("ro2/a.png", 4, 4, 1, 1);
        ck_assert_int_eq(chmod(at("ro2"), 0555), 0);
        ck_assert_int_eq(fg_dataset_load_folder(&d, at("ro2"), &o, FG_FOLDER_ALL), FG_OK);
        fg_dataset_free(&d);
        ck_assert_ptr_nonnull(strstr(log_text(log), "the folder is not writable"));
    }
    fclose(log);
    remove_root();
}
END_TEST

/* ---------------------------------------------------------------- bad input */

START_TEST(bad_folders_are_refused)
{
    make_root();
    fg_folder_options o = opts(1, 4, 4, NULL);
    fg_dataset d;
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("absent"), &o, FG_FOLDER_ALL), FG_ERR);
    assert_error_has("absent: cannot read the folder", "check the path");
    mkdir(at("empty"), 0755);
    write_bytes(at("empty/readme.txt"), "x", 1);
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("empty"), &o, FG_FOLDER_ALL), FG_ERR);
    assert_error_has("empty: no .png, .jpg or .jpeg images", "1 other file ignored");
    write_marked("mixed/cat/a.png", 4, 4, 1, 1);
    write_marked("mixed/loose.png", 4, 4, 1, 1);
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("mixed"), &o, FG_FOLDER_ALL), FG_ERR);
    assert_error_has("mixed/loose.png: an image beside class folders", "move it");
    o.c = 4;
    write_marked("four/a.png", 4, 4, 1, 1);
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("four"), &o, FG_FOLDER_ALL), FG_ERR);
    assert_error_has("4 channels asked for", "channels: 3");
    o.c = 1;
    /* One image, which the rule puts in the training split: the test split
     * is empty, and says what to do. */
    const char *one = NULL;
    char rel[64];
    for (int i = 0; !one; i++) {
        snprintf(rel, sizeof rel, "%d.png", i);
        if (!fg_folder_in_test_split(rel))
            one = rel;
    }
    char path[96];
    snprintf(path, sizeof path, "single/%s", one);
    write_marked(path, 4, 4, 1, 1);
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("single"), &o, FG_FOLDER_TEST), FG_ERR);
    assert_error_has("none of its 1 images falls in the test split", "test_path");
    o.max_bytes = 10;
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("single"), &o, FG_FOLDER_TRAIN), FG_ERR);
    assert_error_has("single: 1 images of 4x4x1 need", "available");
    remove_root();
}
END_TEST

/* A corrupt file stops the load, naming it, or is left out and listed
 * with on_bad_file: skip; the cache remembers it either way. */
START_TEST(bad_files_refused_or_skipped)
{
    make_root();
    for (int i = 0; i < 5; i++) {
        char rel[32];
        snprintf(rel, sizeof rel, "b/%d.png", i);
        write_marked(rel, 4, 4, 7, (uint8_t)i);
    }
    size_t n;
    uint8_t *png = read_bytes(at("b/2.png"), &n);
    write_bytes(at("b/2.png"), png, n - 20); /* truncated */
    free(png);
    write_bytes(at("b/4.png"), "not an image", 12);
    FILE *log = tmpfile();
    fg_folder_options o = opts(1, 4, 4, log);
    fg_dataset d;
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("b"), &o, FG_FOLDER_ALL), FG_ERR);
    assert_error_has("b/2.png: corrupt or truncated PNG", "on_bad_file: skip");
    o.on_bad_file = FG_BAD_FILE_SKIP;
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("b"), &o, FG_FOLDER_ALL), FG_OK);
    ck_assert_int_eq(d.n, 3);
    ck_assert(d.images[0] == 0 && d.images[16] == 1 && d.images[32] == 3);
    fg_dataset_free(&d);
    ck_assert_ptr_nonnull(strstr(log_text(log), "left out 2 unreadable files"));
    /* From the cache: still skipped when asked to, refused when not. */
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("b"), &o, FG_FOLDER_ALL), FG_OK);
    ck_assert_int_eq(d.n, 3);
    fg_dataset_free(&d);
    ck_assert_ptr_nonnull(strstr(log_text(log), "from its cache"));
    o.on_bad_file = FG_BAD_FILE_REFUSE;
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("b"), &o, FG_FOLDER_ALL), FG_ERR);
    assert_error_has("b/2.png: left out as unreadable when the cache was made", NULL);
    /* Every file bad: nothing to train on is an error, even when skipping. */
    write_bytes(at("allbad/x.jpg"), "\xff\xd8\xff\xe0 broken", 11);
    o.on_bad_file = FG_BAD_FILE_SKIP;
    ck_assert_int_eq(fg_dataset_load_folder(&d, at("allbad"), &o, FG_FOLDER_ALL), FG_ERR);
    assert_error_has("allbad: no readable image", NULL);
    fclose(log);
    remove_root();
}
END_TEST

/* ---------------------------------------------------------------- configs */

static const char *folder_config(const char *dataset, int channels, const char *model_extra)
{
    static char text[2048];
    snprintf(text, sizeof text,
             "model:\n  type: glow\n  height: 8\n  width: 8\n  channels: %d\n  levels: 2\n"
             "  steps: 1\n  hidden: 8\n  n_bits: 5\n%s"
             "train:\n  dataset: %s\n  batch: 8\n  steps: 4\n  seed: 3\n",
             channels, model_extra, dataset);
    return text;
}

static int load_config(const char *text, fg_config **cfg)
{
    return fg_config_load_string(text, strlen(text), "folder.yaml", cfg);
}

START_TEST(folder_configs_are_checked)
{
    fg_config *cfg;
    char ds[512];
    ck_assert_int_eq(load_config(folder_config("{name: folder}", 3, ""), &cfg), FG_ERR);
    assert_error_has("folder.yaml:", "missing required key 'path'");
    ck_assert_int_eq(load_config(folder_config("{name: folder, path: x}", 2, ""), &cfg),
                     FG_ERR);
    assert_error_has("model has 2 channels", "channels: 1 or 3");
    ck_assert_int_eq(load_config(folder_config("{name: synthetic, resize: area}", 1, ""),
                                 &cfg), FG_ERR);
    assert_error_has("'resize' is an option of image folders only", NULL);
    ck_assert_int_eq(load_config(folder_config("{name: folder, path: x, resize: cubic}", 1,
                                               ""), &cfg), FG_ERR);
    assert_error_has("resize", "area");
    snprintf(ds, sizeof ds, "{name: folder, path: a, test_path: b, resize: bilinear, "
             "on_bad_file: skip, cache: false, flip: true}");
    ck_assert_msg(load_config(folder_config(ds, 3, ""), &cfg) == FG_OK, "%s", fg_last_error());
    const fg_train_spec *t = &cfg->train;
    ck_assert_int_eq(t->dataset, FG_DATASET_FOLDER);
    ck_assert_str_eq(t->data_path, "a");
    ck_assert_str_eq(t->test_path, "b");
    ck_assert(t->resize == FG_RESIZE_BILINEAR && t->on_bad_file == FG_BAD_FILE_SKIP &&
              !t->cache && t->flip);
    fg_config_free(cfg);
    ck_assert_int_eq(load_config(folder_config("{name: folder, path: a}", 1, ""), &cfg), FG_OK);
    ck_assert(cfg->train.resize == FG_RESIZE_AREA && cfg->train.on_bad_file ==
              FG_BAD_FILE_REFUSE && cfg->train.cache && !cfg->train.flip &&
              !cfg->train.test_path);
    fg_config_free(cfg);
}
END_TEST

static fg_var *loss_of(void *ctx, fg_graph *g, const fg_batch *b, double *bpd)
{
    return fg_model_batch_loss(ctx, g, b, bpd);
}

/* A class-conditional config on a folder of two classes of 12x10 images:
 * the splits load at the model's shape with the folder's labels, a class
 * count that does not match is refused, and a few steps train. */
START_TEST(config_trains_on_a_folder)
{
    make_root();
    char rel[64];
    for (int i = 0; i < 60; i++) {
        uint8_t px[12 * 10 * 3];
        for (int j = 0; j < 12 * 10 * 3; j++)
            px[j] = (uint8_t)(i % 2 ? 40 + (j * 5) % 160 : 200 - (j * 3) % 150);
        snprintf(rel, sizeof rel, "set/%s/%02d.png", i % 2 ? "stripes" : "dots", i);
        write_png(at(rel), 12, 10, PNG_COLOR_TYPE_RGB, 8, 0, px, NULL, 0);
    }
    char ds[512];
    snprintf(ds, sizeof ds, "{name: folder, path: %s, flip: true}", at("set"));
    fg_config *cfg;
    ck_assert_int_eq(load_config(folder_config(ds, 3, "  y_condition: true\n  classes: 3\n"),
                                 &cfg), FG_OK);
    fg_dataset tr, te;
    ck_assert_int_eq(fg_config_load_split(cfg, 1, -1, &tr), FG_ERR);
    assert_error_has("has 2 class subfolders but the model says classes: 3", "classes: 2");
    fg_config_free(cfg);
    ck_assert_int_eq(load_config(folder_config(ds, 3, "  y_condition: true\n  classes: 2\n"),
                                 &cfg), FG_OK);
    ck_assert_msg(fg_config_load_split(cfg, 1, -1, &tr) == FG_OK, "%s", fg_last_error());
    ck_assert_int_eq(fg_config_load_split(cfg, 0, -1, &te), FG_OK);
    ck_assert_int_eq(tr.n + te.n, 60);
    ck_assert_int_gt(te.n, 0);
    ck_assert(tr.c == 3 && tr.h == 8 && tr.w == 8 && tr.n_classes == 2);
    fg_model *m;
    ck_assert_int_eq(fg_model_build(&cfg->model, 3, &m), FG_OK);
    fg_trainer_options to = fg_config_trainer_options(cfg, 0);
    fg_trainer t;
    fg_trainer_init(&t, &m->state, &to);
    fg_batch_iter it;
    fg_batch_iter_init(&it, &tr, 8, 1, 1, 3);
    fg_model_batches mb;
    fg_model_batches_init(&mb, m, &tr, 8, 3);
    mb.flip = cfg->train.flip;
    fg_train_hooks h = {.ctx = &mb, .loss = loss_of};
    fg_train_plan p = {.total_steps = 4};
    ck_assert_msg(fg_train_run(&t, &it, &p, &h, NULL) == FG_OK, "%s", fg_last_error());
    ck_assert_int_eq(t.step, 4);
    fg_graph *g = fg_graph_create();
    double bpd = fg_model_eval_bpd(m, g, &te, 8, 3, 0);
    ck_assert_msg(bpd > 0 && bpd < 20, "test bits/dim %g", bpd);
    fg_graph_destroy(g);
    fg_model_batches_free(&mb);
    fg_batch_iter_free(&it);
    fg_trainer_free(&t);
    fg_model_free(m);
    fg_dataset_free(&tr);
    fg_dataset_free(&te);
    fg_config_free(cfg);
    /* Without classes in the folder, y_condition has nothing to learn. */
    write_marked("plain/a.png", 8, 8, 1, 1);
    snprintf(ds, sizeof ds, "{name: folder, path: %s}", at("plain"));
    ck_assert_int_eq(load_config(folder_config(ds, 1, "  y_condition: true\n  classes: 2\n"),
                                 &cfg), FG_OK);
    ck_assert_int_eq(fg_config_load_split(cfg, 1, -1, &tr), FG_ERR);
    assert_error_has("y_condition needs labels", "no class subfolders");
    fg_config_free(cfg);
    remove_root();
}
END_TEST

/* The public entry for evaluating on a folder: every image, no split. */
START_TEST(open_folder_takes_every_image)
{
    make_root();
    for (int i = 0; i < 30; i++) {
        char rel[32];
        snprintf(rel, sizeof rel, "all/%02d.png", i);
        write_marked(rel, 8, 8, 9, (uint8_t)i);
    }
    fg_dataset d;
    ck_assert_int_eq(fg_dataset_open_folder(&d, at("all"), 1, 8, 8), FG_OK);
    ck_assert_int_eq(d.n, 30);
    for (int i = 0; i < 30; i++)
        ck_assert_int_eq(d.images[i * 64], i);
    fg_dataset_free(&d);
    remove_root();
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("image_folder");
    TCase *tc = fg_tcase("resize");
    tcase_add_test(tc, area_and_bilinear_shrink_by_hand);
    tcase_add_test(tc, bilinear_grow_by_hand);
    tcase_add_test(tc, centre_crop_to_aspect);
    tcase_add_test(tc, channel_conversion_by_hand);
    suite_add_tcase(s, tc);
    tc = fg_tcase("files");
    tcase_add_test(tc, png_layouts_decode);
    tcase_add_test(tc, jpeg_decodes);
    tcase_add_test(tc, damaged_files_are_errors);
    suite_add_tcase(s, tc);
    tc = fg_tcase("folders");
    tcase_add_test(tc, labels_from_subfolders);
    tcase_add_test(tc, split_by_name_is_stable);
    tcase_add_test(tc, test_folder_takes_training_classes);
    tcase_add_test(tc, cache_hits_and_misses);
    tcase_add_test(tc, unwritable_folder_works_without_cache);
    tcase_add_test(tc, bad_folders_are_refused);
    tcase_add_test(tc, bad_files_refused_or_skipped);
    tcase_add_test(tc, open_folder_takes_every_image);
    suite_add_tcase(s, tc);
    tc = fg_tcase("configs");
    tcase_add_test(tc, folder_configs_are_checked);
    tcase_add_test(tc, config_trains_on_a_folder);
    suite_add_tcase(s, tc);
    return s;
}
