/* Image folders as datasets (fg_dataset_load_folder, nn/io.h), internal
 * to the library: the scan of a folder's files, the decoded images, and
 * their cache beside the data. */
#ifndef FLOWGRAD_NN_DATASET_FOLDER_H
#define FLOWGRAD_NN_DATASET_FOLDER_H

#include "nn/io.h"

typedef struct folder_file {
    char *rel;                 /* path relative to the folder, '/'-separated */
    int64_t size, mtime_s, mtime_ns;
    int cls;                   /* index into the scan's classes; -1: unlabeled */
} folder_file;

typedef struct folder_scan {
    char *dir;
    folder_file *f;            /* sorted by rel, bytewise */
    int n, cap;
    char **classes;            /* top-level subfolders holding images, sorted */
    int n_classes;
    long ignored;              /* files that are not .png, .jpg or .jpeg */
} folder_scan;

/* dir's image files (stat only, nothing decoded). Errors: an unreadable
 * folder, no images, images beside class folders, too many classes. */
int fg_folder_scan(folder_scan *s, const char *dir);
void fg_folder_scan_free(folder_scan *s);
/* "dir/rel", allocated. */
char *fg_folder_join(const char *dir, const char *rel);

/* Decoded images of a scan: image k is file file[k]; the bad files left
 * out (on_bad_file: skip) are listed in skipped. */
typedef struct folder_images {
    int n;
    uint8_t *images;           /* n x C x H x W */
    int *file;
    int n_skipped;
    int *skipped;
} folder_images;
void fg_folder_images_free(folder_images *im);
/* The images of s that want marks, from the cache when it matches, else
 * decoded (all of them when the cache is to be written); *how says which
 * ("from its cache", "decoded", "decoded and cached"). */
int fg_folder_images_load(const folder_scan *s, const fg_folder_options *o,
                          const unsigned char *want, folder_images *im, const char **how);
/* A line to o->log (nothing without one). */
void fg_folder_note(const fg_folder_options *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* 64-bit FNV-1a over n bytes, continuing from h (FG_FNV1A_START first). */
#define FG_FNV1A_START 0xcbf29ce484222325ULL
uint64_t fg_fnv1a(uint64_t h, const void *p, size_t n);

/* The cache of a scan at o's shape and resize rule: its path, its
 * fingerprint, and reading and writing it. A stale cache (changed folder,
 * damaged or foreign file) says why in why. */
typedef enum { FOLDER_CACHE_HIT, FOLDER_CACHE_ABSENT, FOLDER_CACHE_STALE } folder_cache_state;
char *fg_folder_cache_path(const char *dir, const fg_folder_options *o);
uint64_t fg_folder_fingerprint(const folder_scan *s, const fg_folder_options *o);
folder_cache_state fg_folder_cache_read(const folder_scan *s, const fg_folder_options *o,
                                        folder_images *im, char *why, size_t n_why);
int fg_folder_cache_write(const folder_scan *s, const fg_folder_options *o,
                          const folder_images *im);

#endif
