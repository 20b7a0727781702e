/* The images of a scanned folder: from its cache when the fingerprint
 * matches, else decoded (and cached when the folder can take it). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "nn/dataset_folder.h"

/* Whether this process has said already that dir goes without a cache:
 * train and test splits load apart, the note is worth reading once. */
static int first_time_for(const char *dir)
{
    static uint64_t seen[64];
    static int n_seen;
    uint64_t h = fg_fnv1a(FG_FNV1A_START, dir, strlen(dir));
    for (int i = 0; i < n_seen; i++)
        if (seen[i] == h)
            return 0;
    seen[n_seen++ % 64] = h;
    if (n_seen > 64)
        n_seen = 64;
    return 1;
}

static void note_no_cache(const fg_folder_options *o, const char *dir, const char *why)
{
    if (first_time_for(dir))
        fg_folder_note(o, "%s: %s: working without a cache, so every run decodes the images again "
             "(make the folder writable to keep one)", dir, why);
}

/* Whether the cache can be written, without writing it: a folder we may
 * not write, or something that is not a file where the cache goes. */
static int cache_writable(const char *dir, const fg_folder_options *o, char *why, size_t n)
{
    char *path = fg_folder_cache_path(dir, o);
    struct stat sb;
    int ok = 1;
    if (access(dir, W_OK) != 0) {
        snprintf(why, n, "the folder is not writable (%s)", strerror(errno));
        ok = 0;
    } else if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        snprintf(why, n, "%s exists and is not a regular file", path);
        ok = 0;
    }
    free(path);
    return ok;
}

/* Whether a file is no longer what the scan saw: the cache's fingerprint
 * is the scan's, so pixels decoded from a newer file must not be cached
 * under it. */
static int changed_since_scan(const folder_file *f, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 1;
    return (int64_t)sb.st_size != f->size || (int64_t)sb.st_mtim.tv_sec != f->mtime_s ||
           (int64_t)sb.st_mtim.tv_nsec != f->mtime_ns;
}

/* Decodes the wanted files of s; a bad one is an error or left out. */
static int decode(const folder_scan *s, const fg_folder_options *o, const unsigned char *want,
                  folder_images *im)
{
    memset(im, 0, sizeof *im);
    int n_want = 0;
    for (int i = 0; i < s->n; i++)
        n_want += want[i];
    const size_t D = (size_t)o->c * o->h * o->w;
    double bytes = (double)n_want * (double)D;
    if (o->max_bytes >= 0 && bytes > o->max_bytes)
        return fg_error("%s: %d images of %dx%dx%d need %.0f bytes, more than the %.0f "
                        "available: lower height, width or channels, or use fewer images",
                        s->dir, n_want, o->h, o->w, o->c, bytes, o->max_bytes);
    im->images = fg_xmalloc(n_want ? (size_t)n_want * D : 1, "folder images");
    im->file = fg_xmalloc((size_t)(n_want ? n_want : 1) * sizeof *im->file, "folder images");
    im->skipped = fg_xmalloc((size_t)(n_want ? n_want : 1) * sizeof *im->skipped,
                             "folder images");
    char first_bad[1024] = "";
    for (int i = 0; i < s->n; i++) {
        if (!want[i])
            continue;
        char *path = fg_folder_join(s->dir, s->f[i].rel);
        fg_image img;
        int rc = fg_image_read(&img, path);
        if (rc == FG_OK) {
            rc = fg_image_fit(&img, o->c, o->h, o->w, o->resize, im->images + (size_t)im->n * D);
            fg_image_free(&img);
        }
        if (changed_since_scan(&s->f[i], path)) {
            fg_error("%s: changed while the folder was read (its size or time is not what the "
                     "scan saw); rerun once nothing writes to the folder", path);
            free(path);
            fg_folder_images_free(im);
            return FG_ERR;
        }
        free(path);
        if (rc == FG_OK) {
            im->file[im->n++] = i;
            continue;
        }
        if (o->on_bad_file == FG_BAD_FILE_REFUSE) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", fg_last_error());
            fg_folder_images_free(im);
            return fg_error("%s; fix or remove the file, or set on_bad_file: skip to leave "
                            "unreadable files out", msg);
        }
        if (!first_bad[0])
            snprintf(first_bad, sizeof first_bad, "%s", fg_last_error());
        im->skipped[im->n_skipped++] = i;
    }
    if (im->n_skipped)
        fg_folder_note(o, "%s: left out %d unreadable file%s (on_bad_file: skip), the first: %s", s->dir,
             im->n_skipped, im->n_skipped == 1 ? "" : "s", first_bad);
    return FG_OK;
}

int fg_folder_images_load(const folder_scan *s, const fg_folder_options *o,
                          const unsigned char *want, folder_images *im, const char **how)
{
    int use_cache = !o->no_cache;
    char why[1024];
    if (use_cache) {
        folder_cache_state cache = fg_folder_cache_read(s, o, im, why, sizeof why);
        if (cache == FOLDER_CACHE_HIT) {
            *how = "from its cache";
            if (im->n_skipped && o->on_bad_file == FG_BAD_FILE_REFUSE) {
                const char *bad = s->f[im->skipped[0]].rel;
                fg_folder_images_free(im);
                return fg_error("%s/%s: left out as unreadable when the cache was made (with "
                                "on_bad_file: skip); fix or remove the file, or set "
                                "on_bad_file: skip", s->dir, bad);
            }
            if (im->n_skipped)
                fg_folder_note(o, "%s: %d file%s left out as unreadable (on_bad_file: skip), the "
                     "first: %s/%s", s->dir, im->n_skipped, im->n_skipped == 1 ? "" : "s",
                     s->dir, s->f[im->skipped[0]].rel);
            return FG_OK;
        }
        if (cache == FOLDER_CACHE_STALE)
            fg_folder_note(o, "%s: %s; rebuilding it", s->dir, why);
        if (!cache_writable(s->dir, o, why, sizeof why)) {
            note_no_cache(o, s->dir, why);
            use_cache = 0;
        }
    }
    unsigned char *all = NULL;
    if (use_cache) {
        all = fg_xmalloc((size_t)s->n, "folder files");
        memset(all, 1, (size_t)s->n);
    }
    int rc = decode(s, o, all ? all : want, im);
    free(all);
    if (rc != FG_OK)
        return FG_ERR;
    *how = "decoded";
    if (use_cache && im->n > 0) {
        if (fg_folder_cache_write(s, o, im) == FG_OK) {
            *how = "decoded and cached";
        } else {
            snprintf(why, sizeof why, "cannot write its cache (%s)", fg_last_error());
            note_no_cache(o, s->dir, why);
        }
    }
    return FG_OK;
}
