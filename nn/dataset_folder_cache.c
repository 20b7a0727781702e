/* The decoded images of a folder, cached beside it in
 * DIR/.flowgrad-cache-HxWxC.safetensors: "images" (U8, n x C x H x W),
 * "file" (I32, n: each image's index among the folder's sorted files),
 * "skipped" (I32, the bad files left out, when there are any), and the
 * metadata format, fingerprint and files. The fingerprint covers what the
 * images depend on: every file's relative name, size and modification
 * time, the shape and the resize rule; a change to any of them is a miss.
 * The file is ours but lies in the user's folder, so it is checked like
 * any input: a damaged one is a miss, never an error. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "nn/dataset_folder.h"

#define CACHE_FORMAT "flowgrad-image-cache-1"

uint64_t fg_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

char *fg_folder_cache_path(const char *dir, const fg_folder_options *o)
{
    char name[96];
    snprintf(name, sizeof name, ".flowgrad-cache-%dx%dx%d.safetensors", o->h, o->w, o->c);
    return fg_folder_join(dir, name);
}

uint64_t fg_folder_fingerprint(const folder_scan *s, const fg_folder_options *o)
{
    uint64_t h = FG_FNV1A_START;
    int64_t head[4] = {o->c, o->h, o->w, o->resize};
    h = fg_fnv1a(h, CACHE_FORMAT, sizeof CACHE_FORMAT);
    h = fg_fnv1a(h, head, sizeof head);
    for (int i = 0; i < s->n; i++) {
        const folder_file *f = &s->f[i];
        int64_t stamp[3] = {f->size, f->mtime_s, f->mtime_ns};
        h = fg_fnv1a(h, f->rel, strlen(f->rel) + 1);
        h = fg_fnv1a(h, stamp, sizeof stamp);
    }
    return h;
}

void fg_folder_images_free(folder_images *im)
{
    free(im->images);
    free(im->file);
    free(im->skipped);
    memset(im, 0, sizeof *im);
}

/* An I32 vector of file indices, strictly increasing and below n_files. */
static const int32_t *file_indices(const fg_safetensors *st, const char *name, int n_files,
                                   int *count)
{
    const fg_st_tensor *t = fg_st_find(st, name);
    if (!t || t->dtype != FG_DT_I32 || t->ndim != 1 || t->shape[0] > n_files)
        return NULL;
    const int32_t *v = t->data;
    for (int64_t i = 0; i < t->shape[0]; i++)
        if (v[i] < 0 || v[i] >= n_files || (i > 0 && v[i] <= v[i - 1]))
            return NULL;
    *count = (int)t->shape[0];
    return v;
}

static int *copy_ints(const int32_t *v, int n)
{
    int *out = fg_xmalloc((size_t)(n ? n : 1) * sizeof *out, "cache indices");
    for (int i = 0; i < n; i++)
        out[i] = v[i];
    return out;
}

folder_cache_state fg_folder_cache_read(const folder_scan *s, const fg_folder_options *o,
                                        folder_images *im, char *why, size_t n_why)
{
    memset(im, 0, sizeof *im);
    char *path = fg_folder_cache_path(s->dir, o);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        free(path);
        return FOLDER_CACHE_ABSENT;
    }
    fg_safetensors st;
    fg_st_init(&st);
    folder_cache_state rc = FOLDER_CACHE_STALE;
    if (fg_st_read(&st, path) != FG_OK) {
        snprintf(why, n_why, "its cache is damaged (%s)", fg_last_error());
        goto out;
    }
    const char *format = fg_st_get_meta(&st, "format"), *fp = fg_st_get_meta(&st, "fingerprint");
    const char *files = fg_st_get_meta(&st, "files");
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, fg_folder_fingerprint(s, o));
    if (!format || strcmp(format, CACHE_FORMAT) || !fp) {
        snprintf(why, n_why, "its cache %s is not one this version writes", path);
        goto out;
    }
    if (strcmp(fp, want)) {
        snprintf(why, n_why, "the folder (or the resize rule) changed since its cache was "
                 "made (%s files then, %d now; files may also have been modified)",
                 files ? files : "?", s->n);
        goto out;
    }
    const fg_st_tensor *images = fg_st_find(&st, "images");
    int n = 0, n_skipped = 0;
    const int32_t *file = file_indices(&st, "file", s->n, &n);
    const int32_t *skipped = fg_st_find(&st, "skipped")
                                 ? file_indices(&st, "skipped", s->n, &n_skipped) : NULL;
    if (!images || images->dtype != FG_DT_U8 || images->ndim != 4 || !file ||
        (fg_st_find(&st, "skipped") && !skipped) || images->shape[0] != n ||
        images->shape[1] != o->c || images->shape[2] != o->h || images->shape[3] != o->w ||
        images->nbytes != (size_t)n * o->c * o->h * o->w || n + n_skipped != s->n) {
        snprintf(why, n_why, "its cache %s does not hold what its fingerprint says", path);
        goto out;
    }
    im->n = n;
    im->images = fg_xmalloc(images->nbytes ? images->nbytes : 1, "cached images");
    memcpy(im->images, images->data, images->nbytes);
    im->file = copy_ints(file, n);
    im->n_skipped = n_skipped;
    im->skipped = copy_ints(skipped, n_skipped);
    rc = FOLDER_CACHE_HIT;
out:
    fg_st_free(&st);
    free(path);
    return rc;
}

int fg_folder_cache_write(const folder_scan *s, const fg_folder_options *o,
                          const folder_images *im)
{
    fg_safetensors st;
    fg_st_init(&st);
    int64_t shape[4] = {im->n, o->c, o->h, o->w}, nf = im->n, ns = im->n_skipped;
    int32_t *file = fg_xmalloc((size_t)(im->n ? im->n : 1) * sizeof *file, "cache indices");
    int32_t *skipped = fg_xmalloc((size_t)(ns ? ns : 1) * sizeof *skipped, "cache indices");
    for (int i = 0; i < im->n; i++)
        file[i] = im->file[i];
    for (int i = 0; i < ns; i++)
        skipped[i] = im->skipped[i];
    fg_st_add(&st, "images", FG_DT_U8, 4, shape, im->images, 0);
    fg_st_add(&st, "file", FG_DT_I32, 1, &nf, file, 0);
    if (ns)
        fg_st_add(&st, "skipped", FG_DT_I32, 1, &ns, skipped, 0);
    char fp[32], files[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, fg_folder_fingerprint(s, o));
    snprintf(files, sizeof files, "%d", s->n);
    fg_st_set_meta(&st, "format", CACHE_FORMAT);
    fg_st_set_meta(&st, "fingerprint", fp);
    fg_st_set_meta(&st, "files", files);
    char *path = fg_folder_cache_path(s->dir, o);
    int rc = fg_st_write(&st, path);
    free(path);
    fg_st_free(&st);
    free(file);
    free(skipped);
    return rc;
}
