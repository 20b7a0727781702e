/* An image folder as a dataset (see nn/io.h): the split rule, and the
 * labels of the split asked for; the scan, decoding and cache are in the
 * other dataset_folder_*.c files. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "nn/dataset_folder.h"

int fg_folder_in_test_split(const char *relative_path)
{
    uint64_t h = fg_fnv1a(FG_FNV1A_START, relative_path, strlen(relative_path));
    /* FNV's low bits mix poorly over short names: finalize as SplitMix64. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h % 100 < FG_FOLDER_TEST_PERCENT;
}

void fg_folder_note(const fg_folder_options *o, const char *fmt, ...)
{
    if (!o->log)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(o->log, fmt, ap);
    va_end(ap);
    fputc('\n', o->log);
}

/* Labels of s's classes in ref's numbering (ref: the training folder). */
static int map_classes(const folder_scan *s, const folder_scan *ref, int *map)
{
    if (!ref->n_classes && s->n_classes)
        return fg_error("%s: has class folders but %s, the training folder, has none; "
                        "expected both labeled or both unlabeled", s->dir, ref->dir);
    if (ref->n_classes && !s->n_classes)
        return fg_error("%s: images without class folders, but the subfolders of %s, the "
                        "training folder, are classes; put the test images into folders "
                        "of the same names", s->dir, ref->dir);
    for (int k = 0; k < s->n_classes; k++) {
        map[k] = -1;
        for (int j = 0; j < ref->n_classes; j++)
            if (!strcmp(s->classes[k], ref->classes[j]))
                map[k] = j;
        if (map[k] < 0)
            return fg_error("%s/%s: a class folder that %s, the training folder, does not "
                            "have; rename it to one of its classes or remove it", s->dir,
                            s->classes[k], ref->dir);
    }
    return FG_OK;
}

static void describe_classes(const fg_folder_options *o, const folder_scan *ref)
{
    if (!o->log)
        return;
    if (!ref->n_classes) {
        fg_folder_note(o, "%s: unlabeled (no class subfolders)", ref->dir);
        return;
    }
    fprintf(o->log, "%s: %d classes from its subfolders:", ref->dir, ref->n_classes);
    for (int k = 0; k < ref->n_classes; k++)
        fprintf(o->log, " %d %s%s", k, ref->classes[k], k + 1 < ref->n_classes ? "," : "");
    fputc('\n', o->log);
}

static const char *split_name(fg_folder_split split)
{
    return split == FG_FOLDER_TRAIN ? "train" : split == FG_FOLDER_TEST ? "test" : "all";
}

/* The dataset of the images of s that want marks, labeled as ref says. */
static int take(fg_dataset *d, const folder_scan *s, const folder_scan *ref,
                const folder_images *im, const unsigned char *want, const fg_folder_options *o)
{
    int map[FG_FOLDER_MAX_CLASSES];
    if (map_classes(s, ref, map) != FG_OK)
        return FG_ERR;
    const size_t D = (size_t)o->c * o->h * o->w;
    int n = 0;
    for (int k = 0; k < im->n; k++)
        n += want[im->file[k]];
    d->n = n;
    d->c = o->c;
    d->h = o->h;
    d->w = o->w;
    d->images = fg_xmalloc(n ? (size_t)n * D : 1, "dataset images");
    d->labels = fg_xcalloc((size_t)(n ? n : 1), 1, "dataset labels");
    d->names = fg_xcalloc((size_t)(n ? n : 1), sizeof *d->names, "image names");
    for (int k = 0, j = 0; k < im->n; k++) {
        const folder_file *f = &s->f[im->file[k]];
        if (!want[im->file[k]])
            continue;
        memcpy(d->images + (size_t)j * D, im->images + (size_t)k * D, D);
        size_t len = strlen(f->rel) + 1;
        d->names[j] = memcpy(fg_xmalloc(len, "image name"), f->rel, len);
        d->labels[j++] = (uint8_t)(f->cls < 0 ? 0 : map[f->cls]);
    }
    d->n_classes = ref->n_classes;
    if (ref->n_classes) {
        d->class_names = fg_xmalloc((size_t)ref->n_classes * sizeof *d->class_names, "classes");
        for (int k = 0; k < ref->n_classes; k++) {
            size_t len = strlen(ref->classes[k]) + 1;
            d->class_names[k] = memcpy(fg_xmalloc(len, "class"), ref->classes[k], len);
        }
    }
    return FG_OK;
}

int fg_dataset_load_folder(fg_dataset *d, const char *dir, const fg_folder_options *o,
                           fg_folder_split split)
{
    memset(d, 0, sizeof *d);
    if (o->c != 1 && o->c != 3)
        return fg_error("%s: %d channels asked for; an image folder gives gray (channels: 1) "
                        "or RGB (channels: 3) images", dir, o->c);
    if (o->h < 1 || o->w < 1 || o->h > FG_IMAGE_MAX_SIDE || o->w > FG_IMAGE_MAX_SIDE)
        return fg_error("%s: a %dx%d image size asked for; expected 1 to %d a side", dir, o->h,
                        o->w, FG_IMAGE_MAX_SIDE);
    folder_scan ref, other, *s = &ref;
    memset(&other, 0, sizeof other);
    if (fg_folder_scan(&ref, dir) != FG_OK)
        return FG_ERR;
    int rc = FG_ERR;
    int by_rule = !o->test_dir && split != FG_FOLDER_ALL;
    if (split == FG_FOLDER_TEST && o->test_dir) {
        if (fg_folder_scan(&other, o->test_dir) != FG_OK)
            goto out_ref;
        s = &other;
    }
    unsigned char *want = fg_xmalloc((size_t)s->n, "folder split");
    int n_want = 0;
    for (int i = 0; i < s->n; i++) {
        want[i] = !by_rule || fg_folder_in_test_split(s->f[i].rel) == (split == FG_FOLDER_TEST);
        n_want += want[i];
    }
    if (n_want == 0) {
        fg_error("%s: none of its %d images falls in the %s split (the split by name puts "
                 "about %d %% of the images into the test split); add images, or give a test "
                 "folder (test_path)", s->dir, s->n, split_name(split), FG_FOLDER_TEST_PERCENT);
        goto out_want;
    }
    folder_images im;
    const char *how = "";
    if (fg_folder_images_load(s, o, want, &im, &how) != FG_OK)
        goto out_want;
    rc = take(d, s, &ref, &im, want, o);
    fg_folder_images_free(&im);
    if (rc == FG_OK && d->n == 0) {
        fg_dataset_free(d);
        rc = fg_error("%s: no readable image in the %s split (all left out as unreadable); "
                      "fix the files, or set on_bad_file: refuse to see why", s->dir,
                      split_name(split));
    }
    if (rc == FG_OK) {
        fg_folder_note(o, "%s: %d %s images of %d files (%s), %dx%dx%d by %s resizing", s->dir, d->n,
             split_name(split), s->n, how, o->h, o->w, o->c, fg_resize_kind_name(o->resize));
        if (split != FG_FOLDER_TEST)
            describe_classes(o, &ref);
    }
out_want:
    free(want);
    fg_folder_scan_free(&other);
out_ref:
    fg_folder_scan_free(&ref);
    return rc;
}

int fg_dataset_open_folder(fg_dataset *d, const char *dir, int c, int h, int w)
{
    fg_folder_options o = {.c = c, .h = h, .w = w, .resize = FG_RESIZE_AREA,
                           .on_bad_file = FG_BAD_FILE_REFUSE, .max_bytes = -1, .log = stderr};
    return fg_dataset_load_folder(d, dir, &o, FG_FOLDER_ALL);
}
