/* safetensors container and writer. Layout: u64 LE header length N, N bytes
 * of JSON header (spaces pad it so the data starts 8-byte aligned), then the
 * tensors back to back. Entries are laid out largest element first (stable),
 * so every tensor is aligned to its element size in the file. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "nn/io.h"
#include "nn/json.h"

static const struct { const char *name; size_t size; } dtypes[] = {
    [FG_DT_F32] = {"F32", 4}, [FG_DT_F64] = {"F64", 8}, [FG_DT_I32] = {"I32", 4},
    [FG_DT_I64] = {"I64", 8}, [FG_DT_U8] = {"U8", 1},
};

const char *fg_dtype_name(fg_dtype t) { return dtypes[t].name; }
size_t fg_dtype_size(fg_dtype t) { return dtypes[t].size; }

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(fg_xmalloc(n, "safetensors"), s, n);
}

void fg_st_init(fg_safetensors *st)
{
    memset(st, 0, sizeof *st);
}

void fg_st_free(fg_safetensors *st)
{
    for (int i = 0; i < st->n; i++) {
        free(st->t[i].name);
        if (st->t[i].owns)
            free(st->t[i].data);
    }
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_key[i]);
        free(st->meta_val[i]);
    }
    free(st->t);
    free(st->meta_key);
    free(st->meta_val);
    free(st->path);
    fg_st_init(st);
}

const fg_st_tensor *fg_st_find(const fg_safetensors *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->t[i].name, name) == 0)
            return &st->t[i];
    return NULL;
}

void fg_st_add(fg_safetensors *st, const char *name, fg_dtype dtype, int ndim,
               const int64_t *shape, const void *data, int copy)
{
    FG_CHECK(ndim >= 0 && ndim <= FG_ST_MAX_DIMS, "fg_st_add", "'%s': %d dims", name, ndim);
    FG_CHECK(fg_st_find(st, name) == NULL, "fg_st_add", "tensor '%s' added twice", name);
    FG_CHECK(strcmp(name, "__metadata__") != 0, "fg_st_add", "reserved name '%s'", name);
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        FG_CHECK(shape[d] >= 0, "fg_st_add", "'%s': dim %d is %lld", name, d,
                 (long long)shape[d]);
        numel *= (size_t)shape[d];
    }
    if (st->n == st->cap) {
        st->cap = st->cap ? 2 * st->cap : 16;
        st->t = fg_xrealloc(st->t, (size_t)st->cap * sizeof *st->t, "safetensors");
    }
    fg_st_tensor *t = &st->t[st->n++];
    memset(t, 0, sizeof *t);
    t->name = dup_str(name);
    t->dtype = dtype;
    t->ndim = ndim;
    if (ndim > 0)
        memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->nbytes = numel * fg_dtype_size(dtype);
    if (copy) {
        t->data = fg_xmalloc(t->nbytes ? t->nbytes : 1, "safetensors tensor");
        if (t->nbytes)
            memcpy(t->data, data, t->nbytes);
        t->owns = 1;
    } else {
        t->data = (void *)data;
    }
}

void fg_st_add_tensor(fg_safetensors *st, const char *name, const fg_tensor *t, int copy)
{
    int64_t shape[FG_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++)
        shape[d] = t->shape[d];
    fg_st_add(st, name, FG_DT_F32, t->ndim, shape, t->data, copy);
}

void fg_st_add_i64(fg_safetensors *st, const char *name, const int64_t *v, int n)
{
    int64_t shape[1] = {n};
    fg_st_add(st, name, FG_DT_I64, 1, shape, v, 1);
}

void fg_st_add_state(fg_safetensors *st, const fg_state_list *l)
{
    for (int i = 0; i < l->n; i++)
        fg_st_add_tensor(st, l->items[i].name, &l->items[i].var->t, 0);
}

void fg_st_set_meta(fg_safetensors *st, const char *key, const char *value)
{
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_key[i], key) == 0) {
            free(st->meta_val[i]);
            st->meta_val[i] = dup_str(value);
            return;
        }
    if (st->n_meta == st->cap_meta) {
        st->cap_meta = st->cap_meta ? 2 * st->cap_meta : 8;
        st->meta_key = fg_xrealloc(st->meta_key, (size_t)st->cap_meta * sizeof(char *), "meta");
        st->meta_val = fg_xrealloc(st->meta_val, (size_t)st->cap_meta * sizeof(char *), "meta");
    }
    st->meta_key[st->n_meta] = dup_str(key);
    st->meta_val[st->n_meta] = dup_str(value);
    st->n_meta++;
}

const char *fg_st_get_meta(const fg_safetensors *st, const char *key)
{
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_key[i], key) == 0)
            return st->meta_val[i];
    return NULL;
}

/* ---------------------------------------------------------------- writer */

typedef struct sbuf { char *s; size_t n, cap; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap)
            b->cap = b->cap ? 2 * b->cap : 1024;
        b->s = fg_xrealloc(b->s, b->cap, "safetensors header");
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_fmt_u64(sbuf *b, unsigned long long v)
{
    char tmp[32];
    int k = snprintf(tmp, sizeof tmp, "%llu", v);
    sb_put(b, tmp, (size_t)k);
}

/* JSON string; bytes >= 0x80 are passed through (checked UTF-8 before). */
static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        switch (c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                sb_put(b, esc, 6);
            } else {
                sb_put(b, (const char *)&c, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

static int check_utf8(const char *s, const char *what, const char *kind)
{
    if (!fg_utf8_valid((const unsigned char *)s, strlen(s)))
        return fg_error("%s: %s is not valid UTF-8", what, kind);
    return FG_OK;
}

/* Stable order of entries by decreasing element size. */
static int *layout_order(const fg_safetensors *st)
{
    int *order = fg_xmalloc(((size_t)st->n + 1) * sizeof *order, "safetensors");
    int k = 0;
    static const size_t sizes[] = {8, 4, 2, 1};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int i = 0; i < st->n; i++)
            if (fg_dtype_size(st->t[i].dtype) == sizes[s])
                order[k++] = i;
    FG_CHECK(k == st->n, "fg_st_write", "unexpected dtype size");
    return order;
}

/* Builds the padded header; returns FG_ERR for names or metadata that
 * cannot be written as UTF-8 JSON. */
static int build_header(const fg_safetensors *st, const int *order, sbuf *h, const char *what)
{
    sb_str(h, "{");
    int first = 1;
    if (st->n_meta > 0) {
        sb_str(h, "\"__metadata__\":{");
        for (int i = 0; i < st->n_meta; i++) {
            if (check_utf8(st->meta_key[i], what, "a metadata key") ||
                check_utf8(st->meta_val[i], what, "a metadata value"))
                return FG_ERR;
            if (i)
                sb_str(h, ",");
            sb_json_string(h, st->meta_key[i]);
            sb_str(h, ":");
            sb_json_string(h, st->meta_val[i]);
        }
        sb_str(h, "}");
        first = 0;
    }
    size_t offset = 0;
    for (int k = 0; k < st->n; k++) {
        const fg_st_tensor *t = &st->t[order[k]];
        if (check_utf8(t->name, what, "a tensor name"))
            return FG_ERR;
        if (!first)
            sb_str(h, ",");
        first = 0;
        sb_json_string(h, t->name);
        sb_str(h, ":{\"dtype\":\"");
        sb_str(h, fg_dtype_name(t->dtype));
        sb_str(h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d)
                sb_str(h, ",");
            sb_fmt_u64(h, (unsigned long long)t->shape[d]);
        }
        sb_str(h, "],\"data_offsets\":[");
        sb_fmt_u64(h, offset);
        sb_str(h, ",");
        offset += t->nbytes;
        sb_fmt_u64(h, offset);
        sb_str(h, "]}");
    }
    sb_str(h, "}");
    while (h->n % 8)
        sb_str(h, " ");
    return FG_OK;
}

static int is_big_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 0;
}

static int write_data(FILE *f, const fg_st_tensor *t)
{
    size_t es = fg_dtype_size(t->dtype);
    if (t->nbytes == 0)
        return 0;
    if (!is_big_endian() || es == 1)
        return fwrite(t->data, 1, t->nbytes, f) == t->nbytes ? 0 : -1;
    const unsigned char *p = t->data;
    for (size_t i = 0; i < t->nbytes; i += es) {
        unsigned char tmp[8];
        for (size_t j = 0; j < es; j++)
            tmp[j] = p[i + es - 1 - j];
        if (fwrite(tmp, 1, es, f) != es)
            return -1;
    }
    return 0;
}

/* What a write holds in memory: made before the file is opened, so that a
 * stop for want of memory (fg_xmalloc) never leaves a temporary behind. */
typedef struct prepared {
    int *order;
    sbuf header;
} prepared;

static int prepare(const fg_safetensors *st, prepared *p, const char *what)
{
    p->order = layout_order(st);
    p->header = (sbuf){0};
    return build_header(st, p->order, &p->header, what);
}

static void prepared_free(prepared *p)
{
    free(p->header.s);
    free(p->order);
}

/* Writes and flushes; allocates nothing. */
static int emit(const fg_safetensors *st, const prepared *p, FILE *f, const char *what)
{
    const sbuf *h = &p->header;
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)h->n >> (8 * i));
    errno = 0;
    int bad = fwrite(len, 1, 8, f) != 8 || fwrite(h->s, 1, h->n, f) != h->n;
    for (int k = 0; k < st->n && !bad; k++)
        bad = write_data(f, &st->t[p->order[k]]) != 0;
    if (!bad)
        bad = fflush(f) != 0 || ferror(f);
    return bad ? fg_error("%s: write failed: %s", what, strerror(errno ? errno : EIO)) : FG_OK;
}

int fg_st_write_stream(const fg_safetensors *st, FILE *f, const char *what)
{
    prepared p;
    int rc = prepare(st, &p, what);
    if (rc == FG_OK)
        rc = emit(st, &p, f, what);
    prepared_free(&p);
    return rc;
}

int fg_st_write(const fg_safetensors *st, const char *path)
{
    prepared p;
    fg_atomic_file a;
    int rc = prepare(st, &p, path);
    if (rc == FG_OK)
        rc = fg_atomic_open(&a, path);
    if (rc == FG_OK) {
        if (emit(st, &p, a.f, path) == FG_OK) {
            rc = fg_atomic_commit(&a);
        } else {
            fg_atomic_abort(&a);
            rc = FG_ERR;
        }
    }
    prepared_free(&p);
    return rc;
}
