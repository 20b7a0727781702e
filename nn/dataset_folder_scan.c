/* Scanning an image folder: which files are images, their order, their
 * classes (see the image folder notes in nn/io.h). Only names and stat
 * data are read here; nothing is decoded. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "nn/dataset_folder.h"

/* Symbolic links are followed: a loop among them ends at this depth. */
#define MAX_DEPTH 32
#define MAX_FILES (1 << 26)

char *fg_folder_join(const char *dir, const char *rel)
{
    size_t a = strlen(dir), b = strlen(rel);
    char *p = fg_xmalloc(a + b + 2, "path");
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, rel, b + 1);
    return p;
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                   !strcasecmp(dot, ".jpeg"));
}

static void add_file(folder_scan *s, const char *rel, const struct stat *sb)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->f = fg_xrealloc(s->f, (size_t)s->cap * sizeof *s->f, "folder files");
    }
    size_t n = strlen(rel) + 1;
    s->f[s->n++] = (folder_file){memcpy(fg_xmalloc(n, "path"), rel, n), (int64_t)sb->st_size,
                                 (int64_t)sb->st_mtim.tv_sec, (int64_t)sb->st_mtim.tv_nsec, -1};
}

/* Adds the images under dir/rel (rel "" for the folder itself). */
static int walk(folder_scan *s, const char *rel, int depth)
{
    char *path = rel[0] ? fg_folder_join(s->dir, rel) : NULL;
    const char *where = path ? path : s->dir;
    if (depth > MAX_DEPTH) {
        fg_error("%s: folders nested deeper than %d (a loop of symbolic links?); expected a "
                 "folder of images or of class folders", where, MAX_DEPTH);
        free(path);
        return FG_ERR;
    }
    DIR *d = opendir(where);
    if (!d) {
        fg_error("%s: cannot read the folder: %s; expected a readable folder of .png or .jpg "
                 "images (check the path and its permissions)", where, strerror(errno));
        free(path);
        return FG_ERR;
    }
    int rc = FG_OK;
    struct dirent *e;
    while (rc == FG_OK && (errno = 0, e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue; /* hidden files, the cache, "." and ".." */
        char *child = rel[0] ? fg_folder_join(rel, e->d_name) : NULL;
        const char *crel = child ? child : e->d_name;
        char *full = fg_folder_join(s->dir, crel);
        struct stat sb;
        if (stat(full, &sb) != 0)
            rc = fg_error("%s: cannot read: %s; remove it or fix its permissions", full,
                          strerror(errno));
        else if (S_ISDIR(sb.st_mode))
            rc = walk(s, crel, depth + 1);
        else if (S_ISREG(sb.st_mode) && is_image_name(e->d_name)) {
            if (s->n >= MAX_FILES)
                rc = fg_error("%s: more than %d images", s->dir, MAX_FILES);
            else
                add_file(s, crel, &sb);
        } else
            s->ignored++;
        free(full);
        free(child);
    }
    if (rc == FG_OK && errno)
        rc = fg_error("%s: cannot list the folder: %s", where, strerror(errno));
    closedir(d);
    free(path);
    return rc;
}

static int by_rel(const void *a, const void *b)
{
    return strcmp(((const folder_file *)a)->rel, ((const folder_file *)b)->rel);
}

/* A file's class is the first component of its relative path. Classes are
 * collected in file order, then renumbered by their names' bytewise order
 * (a file order of "a b/x" < "a/x" would otherwise leak into the labels). */
static int assign_classes(folder_scan *s)
{
    int labeled = 0, loose = -1;
    for (int i = 0; i < s->n; i++) {
        if (strchr(s->f[i].rel, '/'))
            labeled = 1;
        else if (loose < 0)
            loose = i;
    }
    if (!labeled)
        return FG_OK;
    if (loose >= 0)
        return fg_error("%s/%s: an image beside class folders (the subfolders of %s are "
                        "its classes); move it into one of them, or all images out of "
                        "the subfolders for an unlabeled folder", s->dir, s->f[loose].rel,
                        s->dir);
    for (int i = 0; i < s->n; i++) {
        const char *rel = s->f[i].rel;
        size_t len = (size_t)(strchr(rel, '/') - rel);
        int k;
        for (k = 0; k < s->n_classes; k++)
            if (strlen(s->classes[k]) == len && !memcmp(s->classes[k], rel, len))
                break;
        if (k == s->n_classes) {
            if (s->n_classes == FG_FOLDER_MAX_CLASSES)
                return fg_error("%s: more than %d class folders; expected at most %d "
                                "subfolders holding images", s->dir, FG_FOLDER_MAX_CLASSES,
                                FG_FOLDER_MAX_CLASSES);
            s->classes = fg_xrealloc(s->classes, (size_t)(k + 1) * sizeof *s->classes,
                                     "class names");
            s->classes[k] = memcpy(fg_xmalloc(len + 1, "class name"), rel, len);
            s->classes[k][len] = '\0';
            s->n_classes++;
        }
        s->f[i].cls = k;
    }
    /* Labels follow the names' order, whatever order the files came in. */
    int *rank = fg_xmalloc((size_t)s->n_classes * sizeof *rank, "class order");
    for (int k = 0; k < s->n_classes; k++) {
        rank[k] = 0;
        for (int j = 0; j < s->n_classes; j++)
            rank[k] += strcmp(s->classes[j], s->classes[k]) < 0;
    }
    char **sorted = fg_xmalloc((size_t)s->n_classes * sizeof *sorted, "class names");
    for (int k = 0; k < s->n_classes; k++)
        sorted[rank[k]] = s->classes[k];
    for (int i = 0; i < s->n; i++)
        s->f[i].cls = rank[s->f[i].cls];
    free(s->classes);
    s->classes = sorted;
    free(rank);
    return FG_OK;
}

int fg_folder_scan(folder_scan *s, const char *dir)
{
    memset(s, 0, sizeof *s);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--; /* "DIR/" names the same folder as "DIR" in messages */
    s->dir = memcpy(fg_xmalloc(n + 1, "path"), dir, n);
    s->dir[n] = '\0';
    if (walk(s, "", 0) != FG_OK)
        goto fail;
    if (s->n == 0) {
        fg_error("%s: no .png, .jpg or .jpeg images in it or its subfolders (%ld other "
                 "file%s ignored); expected images, directly or in one subfolder per class",
                 s->dir, s->ignored, s->ignored == 1 ? "" : "s");
        goto fail;
    }
    qsort(s->f, (size_t)s->n, sizeof *s->f, by_rel);
    if (assign_classes(s) != FG_OK)
        goto fail;
    return FG_OK;
fail:
    fg_folder_scan_free(s);
    return FG_ERR;
}

void fg_folder_scan_free(folder_scan *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->f[i].rel);
    for (int k = 0; k < s->n_classes; k++)
        free(s->classes[k]);
    free(s->classes);
    free(s->f);
    free(s->dir);
    memset(s, 0, sizeof *s);
}
