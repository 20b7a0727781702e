/* CIFAR-10 binary batches: records of one label byte and 3072 pixel bytes
 * (1024 red, 1024 green, 1024 blue, each 32x32 row-major), i.e. already
 * (C, H, W). 10000 records per file in the official release; any whole
 * number of records is accepted. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "nn/io.h"
#include "tensor/alloc_internal.h"

#define CIFAR_PIXELS (3 * 32 * 32)
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES 10

static int file_records(const char *path, long *records)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fg_error("%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return fg_error("%s: not a regular file", path);
    if (sb.st_size == 0 || sb.st_size % CIFAR_RECORD != 0)
        return fg_error("%s: %lld bytes, expected a positive multiple of %d "
                        "(1 label byte + 3072 pixel bytes per image)", path,
                        (long long)sb.st_size, CIFAR_RECORD);
    *records = (long)(sb.st_size / CIFAR_RECORD);
    return FG_OK;
}

int fg_dataset_load_cifar10_files(fg_dataset *d, const char *const *paths, int n_paths)
{
    memset(d, 0, sizeof *d);
    if (n_paths <= 0)
        return fg_error("CIFAR-10: no batch files given");
    long total = 0;
    long *records = fg_xcalloc((size_t)n_paths, sizeof *records, "cifar");
    for (int i = 0; i < n_paths; i++) {
        if (file_records(paths[i], &records[i]) != FG_OK) {
            free(records);
            return FG_ERR;
        }
        total += records[i];
        if (total > (1L << 28)) {
            free(records);
            return fg_error("%s: too many records in total", paths[i]);
        }
    }
    d->n = (int)total;
    d->c = 3;
    d->h = d->w = 32;
    d->n_classes = CIFAR_CLASSES;
    d->images = fg_try_malloc((size_t)total * CIFAR_PIXELS);
    d->labels = fg_try_malloc((size_t)total + 1);
    unsigned char *rec = fg_try_malloc(CIFAR_RECORD);
    if (!d->images || !d->labels || !rec) {
        free(rec);
        free(records);
        fg_dataset_free(d);
        return fg_error("%s: cannot allocate %zu bytes for %ld images", paths[0],
                        (size_t)total * (CIFAR_PIXELS + 1) + CIFAR_RECORD, total);
    }
    int rc = FG_OK;
    long k = 0;
    for (int i = 0; i < n_paths && rc == FG_OK; i++) {
        FILE *f = fopen(paths[i], "rb");
        if (!f) {
            rc = fg_error("%s: cannot open: %s", paths[i], strerror(errno));
            break;
        }
        /* The sizes were checked above, but a file may change under us:
         * every record is read and checked again. */
        for (long r = 0; rc == FG_OK && r < records[i]; r++, k++) {
            if (fread(rec, 1, CIFAR_RECORD, f) != CIFAR_RECORD)
                rc = fg_error("%s: truncated at record %ld of %ld", paths[i], r, records[i]);
            else if (rec[0] >= CIFAR_CLASSES)
                rc = fg_error("%s: record %ld has label %d, expected 0..%d", paths[i], r,
                              rec[0], CIFAR_CLASSES - 1);
            else {
                d->labels[k] = rec[0];
                memcpy(d->images + (size_t)k * CIFAR_PIXELS, rec + 1, CIFAR_PIXELS);
            }
        }
        fclose(f);
    }
    free(rec);
    free(records);
    if (rc != FG_OK)
        fg_dataset_free(d);
    return rc;
}

int fg_dataset_load_cifar10_dir(fg_dataset *d, const char *dir, int train)
{
    size_t n = strlen(dir) + 32;
    char *paths[5];
    int np = train ? 5 : 1;
    for (int i = 0; i < np; i++) {
        paths[i] = fg_xmalloc(n, "path");
        if (train)
            snprintf(paths[i], n, "%s/data_batch_%d.bin", dir, i + 1);
        else
            snprintf(paths[i], n, "%s/test_batch.bin", dir);
    }
    int rc = fg_dataset_load_cifar10_files(d, (const char *const *)paths, np);
    for (int i = 0; i < np; i++)
        free(paths[i]);
    return rc;
}
