/* A decoded image to a dataset's shape: centre crop to the aspect, channel
 * conversion, resize (see fg_image_fit in nn/io.h).
 *
 * Both filters have rational weights with a common denominator per axis,
 * so the whole resize is integer arithmetic and exact: area weights are
 * the covered lengths in units of 1/T (denominator S, the source length),
 * bilinear ones the fractional source positions (k + 1/2) S / T - 1/2 in
 * units of 1/(2T) (denominator 2T). One output value is then
 * sum wy wx v / (Dy Dx), below 255 * 2^16 * 2^16 for any allowed size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "nn/io.h"

static const char *const resize_names[] = {"area", "bilinear"};

const char *fg_resize_kind_name(fg_resize_kind k)
{
    return (unsigned)k <= FG_RESIZE_BILINEAR ? resize_names[k] : "?";
}

/* Output k of an axis reads count[k] source indices from first[k], with
 * weights wt[k * max + j] over the denominator den. */
typedef struct axis_taps {
    int max;
    int64_t den;
    int *first, *count;
    int64_t *wt;
} axis_taps;

static void taps_alloc(axis_taps *a, long T, int max)
{
    a->max = max;
    a->first = fg_xmalloc((size_t)T * sizeof *a->first, "resize taps");
    a->count = fg_xmalloc((size_t)T * sizeof *a->count, "resize taps");
    a->wt = fg_xcalloc((size_t)T * (size_t)max, sizeof *a->wt, "resize taps");
}

static void taps_free(axis_taps *a)
{
    free(a->first);
    free(a->count);
    free(a->wt);
}

/* Output k covers [k S, (k + 1) S) in units of 1/T; source i covers
 * [i T, (i + 1) T). For S >= T. */
static void area_taps(axis_taps *a, int64_t S, int64_t T)
{
    taps_alloc(a, (long)T, (int)((S + T - 1) / T) + 1);
    a->den = S;
    for (int64_t k = 0; k < T; k++) {
        int64_t lo = k * S, hi = (k + 1) * S;
        int64_t i0 = lo / T, i1 = (hi + T - 1) / T;
        a->first[k] = (int)i0;
        a->count[k] = (int)(i1 - i0);
        for (int64_t i = i0; i < i1; i++) {
            int64_t from = lo > i * T ? lo : i * T, to = hi < (i + 1) * T ? hi : (i + 1) * T;
            a->wt[k * a->max + (i - i0)] = to - from;
        }
    }
}

/* Source position u = ((2k + 1) S - T) / (2T), clamped to [0, S - 1]. */
static void bilinear_taps(axis_taps *a, int64_t S, int64_t T)
{
    taps_alloc(a, (long)T, 2);
    a->den = 2 * T;
    for (int64_t k = 0; k < T; k++) {
        int64_t num = (2 * k + 1) * S - T;
        if (num < 0)
            num = 0;
        int64_t i0 = num / (2 * T), f = num % (2 * T);
        if (i0 >= S - 1)
            i0 = S - 1, f = 0;
        a->first[k] = (int)i0;
        a->count[k] = f ? 2 : 1;
        a->wt[k * 2] = 2 * T - f;
        a->wt[k * 2 + 1] = f;
    }
}

static void axis_taps_for(axis_taps *a, int64_t S, int64_t T, fg_resize_kind resize)
{
    if (resize == FG_RESIZE_AREA && S >= T)
        area_taps(a, S, T);
    else
        bilinear_taps(a, S, T);
}

/* Rounds num / den, half up (num, den >= 0). */
static int64_t div_round(int64_t num, int64_t den)
{
    return (2 * num + den) / (2 * den);
}

/* Row y of the crop, columns x0 .. x0 + n - 1, as c planes of n bytes:
 * alpha composited over white (transparent icons and logos are drawn for
 * light backgrounds; over black their dark strokes would vanish), luma by
 * BT.601 weights, each rounded. */
static void convert_row(const fg_image *img, long y, long x0, long n, int c, uint8_t *dst)
{
    const uint8_t *p = img->px + ((size_t)y * img->w + (size_t)x0) * img->c;
    int has_alpha = img->c == 2 || img->c == 4, gray = img->c <= 2;
    for (long x = 0; x < n; x++, p += img->c) {
        int64_t r = p[0], g = gray ? p[0] : p[1], b = gray ? p[0] : p[2];
        int64_t alpha = has_alpha ? p[img->c - 1] : 255, white = 255 * (255 - alpha);
        if (c == 1) {
            dst[x] = (uint8_t)div_round((299 * r + 587 * g + 114 * b) * alpha + 1000 * white,
                                        1000 * 255);
        } else {
            dst[x] = (uint8_t)div_round(r * alpha + white, 255);
            dst[n + x] = (uint8_t)div_round(g * alpha + white, 255);
            dst[2 * n + x] = (uint8_t)div_round(b * alpha + white, 255);
        }
    }
}

int fg_image_fit(const fg_image *img, int c, int h, int w, fg_resize_kind resize, uint8_t *out)
{
    if (c != 1 && c != 3)
        return fg_error("%d channels: expected 1 (gray) or 3 (RGB)", c);
    if (h < 1 || w < 1 || h > FG_IMAGE_MAX_SIDE || w > FG_IMAGE_MAX_SIDE)
        return fg_error("a %d x %d target: expected 1 to %d pixels a side", w, h,
                        FG_IMAGE_MAX_SIDE);
    if (!img->px || img->c < 1 || img->c > 4 || img->w < 1 || img->h < 1)
        return fg_error("an empty image");
    /* The largest centred rectangle of aspect w:h, its size rounded. */
    int64_t W0 = img->w, H0 = img->h, cw = W0, ch = H0;
    if (W0 * h > H0 * w)
        cw = (2 * H0 * w + h) / (2 * (int64_t)h);
    else
        ch = (2 * W0 * h + w) / (2 * (int64_t)w);
    cw = cw < 1 ? 1 : cw > W0 ? W0 : cw;
    ch = ch < 1 ? 1 : ch > H0 ? H0 : ch;
    int64_t x0 = (W0 - cw) / 2, y0 = (H0 - ch) / 2;

    axis_taps tx, ty;
    axis_taps_for(&tx, cw, w, resize);
    axis_taps_for(&ty, ch, h, resize);
    uint8_t *row = fg_xmalloc((size_t)c * (size_t)cw, "resize row");
    int64_t *acc = fg_xmalloc((size_t)c * (size_t)cw * sizeof *acc, "resize row");
    const int64_t den = tx.den * ty.den;
    for (int oy = 0; oy < h; oy++) {
        /* Vertical taps first, over whole crop rows; then horizontal. */
        memset(acc, 0, (size_t)c * (size_t)cw * sizeof *acc);
        for (int j = 0; j < ty.count[oy]; j++) {
            int64_t wy = ty.wt[oy * ty.max + j];
            convert_row(img, y0 + ty.first[oy] + j, x0, cw, c, row);
            for (int64_t i = 0; i < c * cw; i++)
                acc[i] += wy * row[i];
        }
        for (int ch_i = 0; ch_i < c; ch_i++) {
            const int64_t *a = acc + (size_t)ch_i * cw;
            uint8_t *o = out + ((size_t)ch_i * h + oy) * w;
            for (int ox = 0; ox < w; ox++) {
                int64_t sum = 0;
                for (int i = 0; i < tx.count[ox]; i++)
                    sum += tx.wt[ox * tx.max + i] * a[tx.first[ox] + i];
                int64_t v = div_round(sum, den);
                o[ox] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
    }
    free(acc);
    free(row);
    taps_free(&tx);
    taps_free(&ty);
    return FG_OK;
}
