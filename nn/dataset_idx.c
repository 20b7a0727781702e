/* MNIST-family IDX files, gzip-compressed or plain (zlib reads both): a
 * big-endian magic 0x000008dd (type 08 = unsigned byte, d = number of
 * dimensions), d big-endian u32 sizes, then the bytes. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "nn/io.h"
#include "tensor/alloc_internal.h"

#define IDX_MAX_BYTES ((size_t)1 << 32)   /* 4 GiB: far above any real set */
#define MNIST_CLASSES 10

/* Reads exactly n bytes; FG_ERR naming the file and what was being read. */
static int read_exact(gzFile f, const char *path, void *buf, size_t n, const char *what)
{
    size_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int r = gzread(f, (char *)buf + got, chunk);
        if (r < 0) {
            int errnum;
            const char *msg = gzerror(f, &errnum);
            return fg_error("%s: corrupt data while reading %s: %s", path, what, msg);
        }
        if (r == 0)
            return fg_error("%s: truncated: %s needs %zu bytes, file ends after %zu", path,
                            what, n, got);
        got += (size_t)r;
    }
    return FG_OK;
}

/* Reads n bytes into a buffer that grows as the data arrives, so a header
 * that claims gigabytes of a short (or hostile) file fails at its end
 * instead of allocating all it claims up front. */
static int read_grown(gzFile f, const char *path, size_t n, const char *what,
                      unsigned char **out)
{
    size_t cap = n < ((size_t)16 << 20) ? n : ((size_t)16 << 20), got = 0;
    unsigned char *buf = fg_try_malloc(cap ? cap : 1);
    while (buf && got < n) {
        if (got == cap) {
            size_t grown = n - cap > cap ? 2 * cap : n;
            unsigned char *more = fg_try_realloc(buf, grown);
            if (!more)
                break;
            buf = more, cap = grown;
        }
        unsigned chunk = cap - got > (1u << 30) ? (1u << 30) : (unsigned)(cap - got);
        int r = gzread(f, buf + got, chunk);
        if (r <= 0) {
            int errnum;
            free(buf);
            if (r < 0)
                return fg_error("%s: corrupt data while reading %s: %s", path, what,
                                gzerror(f, &errnum));
            return fg_error("%s: truncated: %s needs %zu bytes, file ends after %zu", path,
                            what, n, got);
        }
        got += (size_t)r;
    }
    if (got < n) {
        free(buf);
        return fg_error("%s: cannot allocate %zu bytes for %s", path, n, what);
    }
    *out = buf;
    return FG_OK;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Opens an IDX file of unsigned bytes with ndim dims; fills dims. */
static gzFile open_idx(const char *path, int ndim, uint32_t *dims)
{
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fg_error("%s: cannot open", path);
        return NULL;
    }
    unsigned char head[4 + 4 * 3];
    if (read_exact(f, path, head, 4, "the magic number") != FG_OK)
        goto fail;
    uint32_t magic = be32(head), expect = 0x00000800u | (uint32_t)ndim;
    if (magic != expect) {
        fg_error("%s: magic number 0x%08x, expected 0x%08x (IDX unsigned bytes, %d dims)",
                 path, magic, expect, ndim);
        goto fail;
    }
    if (read_exact(f, path, head + 4, 4 * (size_t)ndim, "the dimensions") != FG_OK)
        goto fail;
    size_t total = 1;
    for (int d = 0; d < ndim; d++) {
        dims[d] = be32(head + 4 + 4 * d);
        if (dims[d] == 0 || dims[d] > INT_MAX) {
            fg_error("%s: dimension %d is %u, expected 1..%d", path, d, dims[d], INT_MAX);
            goto fail;
        }
        total *= dims[d];
        if (total > IDX_MAX_BYTES) {
            fg_error("%s: dimensions describe more than %zu bytes", path, IDX_MAX_BYTES);
            goto fail;
        }
    }
    return f;
fail:
    gzclose(f);
    return NULL;
}

static int expect_eof(gzFile f, const char *path)
{
    unsigned char extra;
    int r = gzread(f, &extra, 1);
    if (r != 0)
        return fg_error("%s: %s after the declared data", path,
                        r > 0 ? "unexpected bytes" : "corrupt data");
    return FG_OK;
}

int fg_dataset_load_idx(fg_dataset *d, const char *images_path, const char *labels_path)
{
    memset(d, 0, sizeof *d);
    uint32_t idims[3], ldims[1];
    gzFile fi = open_idx(images_path, 3, idims);
    if (!fi)
        return FG_ERR;
    gzFile fl = open_idx(labels_path, 1, ldims);
    if (!fl) {
        gzclose(fi);
        return FG_ERR;
    }
    int rc = FG_OK;
    if (idims[0] != ldims[0])
        rc = fg_error("%s: %u labels, but %s holds %u images", labels_path, ldims[0],
                      images_path, idims[0]);
    size_t npix = (size_t)idims[0] * idims[1] * idims[2];
    if (rc == FG_OK) {
        d->n = (int)idims[0];
        d->c = 1;
        d->h = (int)idims[1];
        d->w = (int)idims[2];
        d->n_classes = MNIST_CLASSES;
    }
    if (rc == FG_OK)
        rc = read_grown(fi, images_path, npix, "the pixels", &d->images);
    if (rc == FG_OK)
        rc = expect_eof(fi, images_path);
    if (rc == FG_OK)
        rc = read_grown(fl, labels_path, (size_t)d->n, "the labels", &d->labels);
    if (rc == FG_OK)
        rc = expect_eof(fl, labels_path);
    for (int i = 0; rc == FG_OK && i < d->n; i++)
        if (d->labels[i] >= MNIST_CLASSES)
            rc = fg_error("%s: label %d of item %d, expected 0..%d", labels_path,
                          d->labels[i], i, MNIST_CLASSES - 1);
    gzclose(fi);
    gzclose(fl);
    if (rc != FG_OK)
        fg_dataset_free(d);
    return rc;
}

int fg_dataset_load_mnist_dir(fg_dataset *d, const char *dir, int train)
{
    if (!dir)
        dir = FG_FASHION_MNIST_DIR;
    const char *split = train ? "train" : "t10k";
    size_t n = strlen(dir) + 64;
    char *img = fg_xmalloc(n, "path"), *lab = fg_xmalloc(n, "path");
    snprintf(img, n, "%s/%s-images-idx3-ubyte.gz", dir, split);
    snprintf(lab, n, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    int rc = fg_dataset_load_idx(d, img, lab);
    free(img);
    free(lab);
    return rc;
}
