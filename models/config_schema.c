/* Typed access to the parse tree. Each reader checks kind, form and range,
 * and on failure points at the offending node and says what was expected. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "models/config_internal.h"

int cfg_fail(const cfg_ctx *ctx, const cfg_node *at, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fg_error("%s:%d:%d: %s", ctx->name, at ? at->line : 1, at ? at->column : 1, msg);
}

int cfg_is_null(const cfg_node *n)
{
    if (!n)
        return 1;
    if (n->kind != CFG_SCALAR || !n->plain)
        return 0;
    return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0
        || strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

static const char *kind_word(const cfg_node *n)
{
    if (n->kind == CFG_MAP)
        return "a mapping";
    if (n->kind == CFG_SEQ)
        return "a list";
    if (cfg_is_null(n))
        return "nothing";
    return n->plain ? "a plain value" : "a quoted string";
}

/* Scalars are echoed in messages; keep them short and on one line. */
static const char *echo(const cfg_node *n, char *buf, size_t cap)
{
    if (n->kind != CFG_SCALAR || cfg_is_null(n))
        return kind_word(n);
    size_t k = 0, shown = n->len < 40 ? n->len : 40;
    buf[k++] = '\'';
    for (size_t i = 0; i < shown && k + 6 < cap; i++) {
        unsigned char c = (unsigned char)n->text[i];
        buf[k++] = c < 0x20 ? '?' : (char)c;
    }
    if (shown < n->len)
        for (int i = 0; i < 3; i++)
            buf[k++] = '.';
    buf[k++] = '\'';
    buf[k] = '\0';
    return buf;
}

const char *cfg_join(const char *const *names, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; names[i]; i++) {
        int w = snprintf(buf + k, n - k, "%s%s", i ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= n - k)
            break;
        k += (size_t)w;
    }
    return buf;
}

int cfg_expect_map(const cfg_ctx *ctx, const cfg_node *n, const char *where)
{
    if (n->kind != CFG_MAP)
        return cfg_fail(ctx, n, "'%s' must be a mapping of 'key: value' lines (got %s)",
                        where, kind_word(n));
    return FG_OK;
}

int cfg_check_keys(const cfg_ctx *ctx, const cfg_node *map, const char *where,
                   const char *const *allowed)
{
    for (int i = 0; i < map->n; i += 2) {
        const cfg_node *k = map->kids[i];
        int known = 0;
        for (int j = 0; allowed[j] && !known; j++)
            known = strcmp(k->text, allowed[j]) == 0;
        if (!known) {
            char list[512], e[64];
            return cfg_fail(ctx, k, "unknown key %s in '%s' (expected one of: %s)",
                            echo(k, e, sizeof e), where, cfg_join(allowed, list, sizeof list));
        }
    }
    return FG_OK;
}

const cfg_node *cfg_get_key(const cfg_node *map, const char *key)
{
    if (!map || map->kind != CFG_MAP)
        return NULL;
    for (int i = 0; i < map->n; i += 2)
        if (strcmp(map->kids[i]->text, key) == 0)
            return map->kids[i];
    return NULL;
}

const cfg_node *cfg_get(const cfg_node *map, const char *key)
{
    if (!map || map->kind != CFG_MAP)
        return NULL;
    for (int i = 0; i + 1 < map->n; i += 2)
        if (strcmp(map->kids[i]->text, key) == 0)
            return map->kids[i + 1];
    return NULL;
}

int cfg_require(const cfg_ctx *ctx, const cfg_node *map, const char *where,
                const char *key, const char *expected)
{
    if (cfg_get(map, key))
        return FG_OK;
    return cfg_fail(ctx, map, "missing required key '%s' in '%s' (expected %s: %s)",
                    key, where, key, expected);
}

/* Plain decimal only: "0x10", "1e3", "010" style surprises and quoted
 * numbers are refused so a value means what it looks like. */
static int parse_int(const cfg_node *v, long long *out)
{
    if (v->kind != CFG_SCALAR || !v->plain || v->len == 0)
        return 0;
    const char *s = v->text;
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i == v->len)
        return 0;
    for (size_t j = i; j < v->len; j++)
        if (s[j] < '0' || s[j] > '9')
            return 0;
    errno = 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (errno == ERANGE || *end)
        return 0;
    *out = x;
    return 1;
}

int cfg_int(const cfg_ctx *ctx, const cfg_node *map, const char *where,
            const char *key, long long lo, long long hi, long long *out)
{
    const cfg_node *v = cfg_get(map, key);
    if (!v)
        return FG_OK;
    long long x;
    char e[64];
    if (!parse_int(v, &x))
        return cfg_fail(ctx, v, "'%s' in '%s' must be a whole number from %lld to %lld "
                        "(got %s)", key, where, lo, hi, echo(v, e, sizeof e));
    if (x < lo || x > hi)
        return cfg_fail(ctx, v, "'%s' in '%s' is out of range (expected %lld..%lld, "
                        "got %lld)", key, where, lo, hi, x);
    *out = x;
    return FG_OK;
}

int cfg_int32(const cfg_ctx *ctx, const cfg_node *map, const char *where,
              const char *key, int lo, int hi, int *out)
{
    long long x = *out;
    if (cfg_int(ctx, map, where, key, lo, hi, &x))
        return FG_ERR;
    *out = (int)x;
    return FG_OK;
}

static void range_str(double lo, int lo_open, double hi, int hi_open, char *buf, size_t n)
{
    if (isinf(hi))
        snprintf(buf, n, "%s %g", lo_open ? ">" : ">=", lo);
    else
        snprintf(buf, n, "%c%g, %g%c", lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']');
}

int cfg_real(const cfg_ctx *ctx, const cfg_node *map, const char *where,
             const char *key, double lo, int lo_open, double hi, int hi_open, double *out)
{
    const cfg_node *v = cfg_get(map, key);
    if (!v)
        return FG_OK;
    char range[64], e[64];
    range_str(lo, lo_open, hi, hi_open, range, sizeof range);
    double x = 0;
    int ok = v->kind == CFG_SCALAR && v->plain && v->len > 0;
    if (ok) {
        /* strtod would accept "inf", "nan" and hex floats: allow only
         * digits, sign, point and exponent. */
        ok = strspn(v->text, "0123456789+-.eE") == v->len;
        char *end;
        errno = 0;
        x = ok ? strtod(v->text, &end) : 0;
        ok = ok && *end == '\0' && errno != ERANGE && isfinite(x);
    }
    if (!ok)
        return cfg_fail(ctx, v, "'%s' in '%s' must be a number %s (got %s)", key, where,
                        range, echo(v, e, sizeof e));
    if (x < lo || (lo_open && x == lo) || x > hi || (hi_open && x == hi))
        return cfg_fail(ctx, v, "'%s' in '%s' is out of range (expected %s, got %g)",
                        key, where, range, x);
    *out = x;
    return FG_OK;
}

int cfg_bool(const cfg_ctx *ctx, const cfg_node *map, const char *where,
             const char *key, int *out)
{
    const cfg_node *v = cfg_get(map, key);
    if (!v)
        return FG_OK;
    if (v->kind == CFG_SCALAR && v->plain) {
        if (!strcmp(v->text, "true") || !strcmp(v->text, "True") || !strcmp(v->text, "TRUE")) {
            *out = 1;
            return FG_OK;
        }
        if (!strcmp(v->text, "false") || !strcmp(v->text, "False") || !strcmp(v->text, "FALSE")) {
            *out = 0;
            return FG_OK;
        }
    }
    char e[64];
    return cfg_fail(ctx, v, "'%s' in '%s' must be true or false (got %s)", key, where,
                    echo(v, e, sizeof e));
}

int cfg_enum(const cfg_ctx *ctx, const cfg_node *map, const char *where,
             const char *key, const char *const *names, int *out)
{
    const cfg_node *v = cfg_get(map, key);
    if (!v)
        return FG_OK;
    if (v->kind == CFG_SCALAR && !cfg_is_null(v))
        for (int i = 0; names[i]; i++)
            if (strcmp(v->text, names[i]) == 0) {
                *out = i;
                return FG_OK;
            }
    char list[256], e[64];
    return cfg_fail(ctx, v, "'%s' in '%s' must be one of: %s (got %s)", key, where,
                    cfg_join(names, list, sizeof list), echo(v, e, sizeof e));
}

int cfg_string(const cfg_ctx *ctx, const cfg_node *map, const char *where,
               const char *key, const char **out)
{
    const cfg_node *v = cfg_get(map, key);
    if (!v)
        return FG_OK;
    if (v->kind != CFG_SCALAR || cfg_is_null(v) || strlen(v->text) != v->len) {
        char e[64];
        return cfg_fail(ctx, v, "'%s' in '%s' must be text (got %s)", key, where,
                        echo(v, e, sizeof e));
    }
    *out = v->text;
    return FG_OK;
}
