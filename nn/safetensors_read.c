/* safetensors reader for untrusted files. Every length, offset, dtype and
 * shape is checked before it is used; a bad file is an error that names the
 * file and the first problem, never a crash or an out-of-bounds read. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "nn/io.h"
#include "tensor/alloc_internal.h"
#include "nn/json.h"

static int parse_dtype(const char *s, fg_dtype *out)
{
    for (int d = FG_DT_F32; d <= FG_DT_U8; d++)
        if (strcmp(s, fg_dtype_name((fg_dtype)d)) == 0) {
            *out = (fg_dtype)d;
            return 0;
        }
    return -1;
}

typedef struct span { uint64_t begin, end; int index; } span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int read_meta(fg_safetensors *st, const fg_json *m, const char *what)
{
    if (m->type != FG_JSON_OBJECT)
        return fg_error("%s: __metadata__ must be an object of strings", what);
    for (int i = 0; i < m->n; i++) {
        if (m->items[i].type != FG_JSON_STRING)
            return fg_error("%s: __metadata__ value of \"%s\" is not a string", what,
                            m->keys[i]);
        fg_st_set_meta(st, m->keys[i], m->items[i].string);
    }
    return FG_OK;
}

/* Checks one entry's header; fills t (without data) and its byte span. */
static int read_entry(const char *name, const fg_json *e, uint64_t buffer_len,
                      fg_st_tensor *t, span *sp, const char *what)
{
    if (e->type != FG_JSON_OBJECT)
        return fg_error("%s: tensor '%s': expected an object", what, name);
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->keys[i], "dtype") && strcmp(e->keys[i], "shape") &&
            strcmp(e->keys[i], "data_offsets"))
            return fg_error("%s: tensor '%s': unknown field \"%s\"", what, name, e->keys[i]);
    const fg_json *dt = fg_json_get(e, "dtype");
    const fg_json *sh = fg_json_get(e, "shape");
    const fg_json *off = fg_json_get(e, "data_offsets");
    if (!dt || !sh || !off)
        return fg_error("%s: tensor '%s': expected dtype, shape and data_offsets", what, name);
    if (dt->type != FG_JSON_STRING)
        return fg_error("%s: tensor '%s': dtype must be a string", what, name);
    if (parse_dtype(dt->string, &t->dtype) < 0)
        return fg_error("%s: tensor '%s': unsupported dtype \"%s\" (expected F32, F64, "
                        "I32, I64 or U8)", what, name, dt->string);
    if (sh->type != FG_JSON_ARRAY || sh->n > FG_ST_MAX_DIMS)
        return fg_error("%s: tensor '%s': shape must be an array of at most %d sizes",
                        what, name, FG_ST_MAX_DIMS);
    /* The byte count is bounded by the buffer at every step of the product,
     * so it cannot overflow. */
    uint64_t bytes = fg_dtype_size(t->dtype);
    int zero = 0;
    t->ndim = sh->n;
    for (int d = 0; d < sh->n; d++) {
        const fg_json *v = &sh->items[d];
        if (v->type != FG_JSON_NUMBER || !v->is_uint || v->uint > (uint64_t)INT64_MAX)
            return fg_error("%s: tensor '%s': shape[%d] is not a non-negative integer",
                            what, name, d);
        t->shape[d] = (int64_t)v->uint;
        zero |= v->uint == 0;
    }
    for (int d = 0; d < sh->n && !zero; d++) {
        uint64_t v = (uint64_t)t->shape[d];
        if (bytes > buffer_len / v)
            return fg_error("%s: tensor '%s': shape needs more bytes than the %llu of the "
                            "data buffer", what, name, (unsigned long long)buffer_len);
        bytes *= v;
    }
    if (zero)
        bytes = 0;
    if (off->type != FG_JSON_ARRAY || off->n != 2 || off->items[0].type != FG_JSON_NUMBER ||
        !off->items[0].is_uint || off->items[1].type != FG_JSON_NUMBER || !off->items[1].is_uint)
        return fg_error("%s: tensor '%s': data_offsets must be [begin, end], non-negative "
                        "integers", what, name);
    uint64_t b = off->items[0].uint, en = off->items[1].uint;
    if (b > en || en > buffer_len)
        return fg_error("%s: tensor '%s': data_offsets [%llu, %llu] outside the data buffer "
                        "of %llu bytes", what, name, (unsigned long long)b,
                        (unsigned long long)en, (unsigned long long)buffer_len);
    if (en - b != bytes)
        return fg_error("%s: tensor '%s': data_offsets span %llu bytes, dtype and shape "
                        "need %llu", what, name, (unsigned long long)(en - b),
                        (unsigned long long)bytes);
    t->nbytes = (size_t)bytes;
    sp->begin = b;
    sp->end = en;
    return FG_OK;
}

/* The size is bounded by the file, which is already in memory; a copy that
 * still does not fit is an error for the caller, not a stop. */
static int copy_data(fg_st_tensor *t, const unsigned char *src, const char *what)
{
    t->data = fg_try_malloc(t->nbytes ? t->nbytes : 1);
    if (!t->data)
        return fg_error("%s: tensor '%s': cannot allocate %zu bytes for its data", what,
                        t->name, t->nbytes);
    t->owns = 1;
    size_t es = fg_dtype_size(t->dtype);
    const uint16_t one = 1;
    if (*(const unsigned char *)&one == 1 || es == 1) {
        memcpy(t->data, src, t->nbytes);
        return FG_OK;
    }
    unsigned char *d = t->data;
    for (size_t i = 0; i < t->nbytes; i += es)
        for (size_t j = 0; j < es; j++)
            d[i + j] = src[i + es - 1 - j];
    return FG_OK;
}

static int parse_into(fg_safetensors *st, const unsigned char *buf, size_t len, const char *what)
{
    if (len < 8)
        return fg_error("%s: %zu bytes, too short for the 8-byte header length", what, len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | buf[i];
    if (n > FG_ST_MAX_HEADER)
        return fg_error("%s: header length %llu exceeds the %u-byte limit", what,
                        (unsigned long long)n, FG_ST_MAX_HEADER);
    if (n > len - 8)
        return fg_error("%s: header length %llu runs past the end of the file (%zu bytes)",
                        what, (unsigned long long)n, len);
    if (n < 2 || buf[8] != '{')
        return fg_error("%s: header must be a JSON object starting with '{'", what);
    const uint64_t buffer_len = len - 8 - n;
    const unsigned char *data = buf + 8 + n;

    fg_json root;
    char err[256];
    if (fg_json_parse((const char *)buf + 8, (size_t)n, ' ', &root, err, sizeof err) < 0)
        return fg_error("%s: header: %s", what, err);
    int rc = FG_OK;
    span *spans = fg_xmalloc(((size_t)root.n + 1) * sizeof *spans, "safetensors");
    int ns = 0;
    for (int i = 0; i < root.n && rc == FG_OK; i++) {
        const char *name = root.keys[i];
        if (strcmp(name, "__metadata__") == 0) {
            rc = read_meta(st, &root.items[i], what);
            continue;
        }
        fg_st_tensor t;
        memset(&t, 0, sizeof t);
        rc = read_entry(name, &root.items[i], buffer_len, &t, &spans[ns], what);
        if (rc != FG_OK)
            break;
        int64_t shape[FG_ST_MAX_DIMS];
        memcpy(shape, t.shape, sizeof shape);
        /* Register without data first (borrowing NULL), then copy. */
        fg_st_add(st, name, t.dtype, t.ndim, shape, NULL, 0);
        spans[ns].index = st->n - 1;
        ns++;
    }
    if (rc == FG_OK) {
        qsort(spans, (size_t)ns, sizeof *spans, span_cmp);
        uint64_t expect = 0;
        for (int i = 0; i < ns && rc == FG_OK; i++) {
            if (spans[i].begin != expect)
                rc = fg_error("%s: tensor '%s' starts at byte %llu of the data, expected %llu "
                              "(%s)", what, st->t[spans[i].index].name,
                              (unsigned long long)spans[i].begin, (unsigned long long)expect,
                              spans[i].begin < expect ? "overlaps the previous tensor"
                                                      : "leaves a hole");
            expect = spans[i].end;
        }
        if (rc == FG_OK && expect != buffer_len)
            rc = fg_error("%s: tensors cover %llu bytes of a %llu-byte data buffer", what,
                          (unsigned long long)expect, (unsigned long long)buffer_len);
    }
    for (int i = 0; rc == FG_OK && i < ns; i++)
        rc = copy_data(&st->t[spans[i].index], data + spans[i].begin, what);
    free(spans);
    fg_json_free(&root);
    return rc;
}

int fg_st_parse(fg_safetensors *st, const unsigned char *buf, size_t len, const char *what)
{
    fg_st_init(st);
    if (!what)
        what = "safetensors";
    if (parse_into(st, buf, len, what) != FG_OK) {
        fg_st_free(st);
        return FG_ERR;
    }
    size_t n = strlen(what) + 1;
    st->path = memcpy(fg_xmalloc(n, "path"), what, n);
    return FG_OK;
}

int fg_st_read(fg_safetensors *st, const char *path)
{
    fg_st_init(st);
    FILE *f = fopen(path, "rb");
    if (!f)
        return fg_error("%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return fg_error("%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *buf = fg_try_malloc(len ? len : 1);
    if (!buf) {
        fclose(f);
        return fg_error("%s: cannot allocate %zu bytes to read it", path, len);
    }
    size_t got = fread(buf, 1, len, f);
    fclose(f);
    if (got != len) {
        free(buf);
        return fg_error("%s: read %zu of %zu bytes", path, got, len);
    }
    int rc = fg_st_parse(st, buf, len, path);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- getters */

static const char *st_what(const fg_safetensors *st)
{
    return st->path ? st->path : "safetensors";
}

static void shape_text(const fg_st_tensor *t, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < t->ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (k < n)
        snprintf(buf + k, n - k, ")");
}

int fg_st_check_tensor(const fg_safetensors *st, const char *name, const fg_tensor *t)
{
    const fg_st_tensor *e = fg_st_find(st, name);
    char a[FG_SHAPE_STR_LEN + 64], b[FG_SHAPE_STR_LEN];
    if (!e)
        return fg_error("%s: missing tensor '%s' (expected shape %s)", st_what(st), name,
                        fg_shape_str(t, b, sizeof b));
    if (e->dtype != FG_DT_F32)
        return fg_error("%s: tensor '%s' has dtype %s, expected F32", st_what(st), name,
                        fg_dtype_name(e->dtype));
    int same = e->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++)
        same = e->shape[d] == t->shape[d];
    if (!same) {
        shape_text(e, a, sizeof a);
        return fg_error("%s: tensor '%s' has shape %s in the file, expected %s", st_what(st),
                        name, a, fg_shape_str(t, b, sizeof b));
    }
    return FG_OK;
}

int fg_st_get_tensor(const fg_safetensors *st, const char *name, fg_tensor *t)
{
    if (fg_st_check_tensor(st, name, t) != FG_OK)
        return FG_ERR;
    const fg_st_tensor *e = fg_st_find(st, name);
    memcpy(t->data, e->data, e->nbytes);
    return FG_OK;
}

int fg_st_get_i64(const fg_safetensors *st, const char *name, int64_t *v, int n)
{
    const fg_st_tensor *e = fg_st_find(st, name);
    if (!e)
        return fg_error("%s: missing tensor '%s'", st_what(st), name);
    if (e->dtype != FG_DT_I64 || e->ndim != 1 || e->shape[0] != n)
        return fg_error("%s: tensor '%s' should be I64 of shape (%d)", st_what(st), name, n);
    memcpy(v, e->data, e->nbytes);
    return FG_OK;
}

static int has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int fg_st_load_state(const fg_safetensors *st, const fg_state_list *l, const char *skip_prefix)
{
    /* Everything is checked before anything is copied, so a bad file leaves
     * the model as it was. */
    for (int i = 0; i < l->n; i++)
        if (fg_st_check_tensor(st, l->items[i].name, &l->items[i].var->t) != FG_OK)
            return FG_ERR;
    int extra = 0;
    const char *first = NULL;
    for (int i = 0; i < st->n; i++) {
        const char *name = st->t[i].name;
        if (skip_prefix && has_prefix(name, skip_prefix))
            continue;
        if (!fg_state_list_find(l, name)) {
            if (!first)
                first = name;
            extra++;
        }
    }
    if (extra)
        return fg_error("%s: %d unexpected tensor%s, first '%s'", st_what(st), extra,
                        extra == 1 ? "" : "s", first);
    for (int i = 0; i < l->n; i++) {
        const fg_st_tensor *e = fg_st_find(st, l->items[i].name);
        memcpy(l->items[i].var->t.data, e->data, e->nbytes);
    }
    return FG_OK;
}
