/* JPEG through libjpeg(-turbo), from memory. libjpeg reports fatal errors
 * through error_exit, which must not return: it longjmps back here. Its
 * warnings mean damaged data that it would paper over with grey blocks
 * (a truncated file decodes "successfully"), so they are errors too, except
 * the few that say nothing about the pixels. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>
#include "nn/image_codecs.h"

/* libjpeg's working memory for one image, beyond which it stops with an
 * error instead of allocating (progressive files keep every coefficient). */
#define JPEG_MAX_MEMORY (768L << 20)

typedef struct jpeg_failure {
    struct jpeg_error_mgr mgr;
    jmp_buf back;
    char msg[JMSG_LENGTH_MAX];
} jpeg_failure;

static void jpeg_fail(j_common_ptr cinfo)
{
    jpeg_failure *f = (jpeg_failure *)cinfo->err;
    cinfo->err->format_message(cinfo, f->msg);
    longjmp(f->back, 1);
}

static int harmless_warning(int code)
{
    return code == JWRN_EXTRANEOUS_DATA || code == JWRN_JFIF_MAJOR ||
           code == JWRN_ADOBE_XFORM || code == JWRN_BOGUS_ICC;
}

static void jpeg_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && !harmless_warning(cinfo->err->msg_code))
        jpeg_fail(cinfo);
}

int fg_jpeg_decode(fg_image *img, const uint8_t *buf, size_t len, const char *what)
{
    memset(img, 0, sizeof *img);
    struct jpeg_decompress_struct cinfo;
    jpeg_failure fail;
    cinfo.err = jpeg_std_error(&fail.mgr);
    fail.mgr.error_exit = jpeg_fail;
    fail.mgr.emit_message = jpeg_message;
    uint8_t *volatile px = NULL;
    if (setjmp(fail.back)) {
        jpeg_destroy_decompress(&cinfo);
        free(px);
        return fg_error("%s: corrupt or truncated JPEG (libjpeg: %s)", what, fail.msg);
    }
    jpeg_create_decompress(&cinfo);
    cinfo.mem->max_memory_to_use = JPEG_MAX_MEMORY;
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (fg_image_check_size((long)cinfo.image_width, (long)cinfo.image_height, what,
                            "JPEG") != FG_OK) {
        jpeg_destroy_decompress(&cinfo);
        return FG_ERR;
    }
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        return fg_error("%s: a CMYK JPEG, which is not read; convert it to RGB (e.g. "
                        "ImageMagick: convert FILE -colorspace sRGB OUT.jpg)", what);
    }
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int c = cinfo.output_components;
    size_t w = cinfo.output_width, h = cinfo.output_height, stride = w * (size_t)c;
    if (c != 1 && c != 3) {
        jpeg_destroy_decompress(&cinfo);
        return fg_error("%s: a JPEG of %d components; expected gray or color", what, c);
    }
    px = fg_xmalloc(stride * h, "jpeg pixels");
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    *img = (fg_image){(int)w, (int)h, c, px};
    return FG_OK;
}
