/* Strict recursive-descent JSON (RFC 8259) with a depth cap, for headers
 * that come from files we do not trust. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/json.h"
#include "tensor/tensor.h"

typedef struct parser {
    const char *s;
    size_t len, pos;
    char *err;
    size_t err_len;
    int failed;
} parser;

static int fail(parser *p, const char *fmt, ...)
{
    if (!p->failed) {
        int k = snprintf(p->err, p->err_len, "byte %zu: ", p->pos);
        va_list ap;
        va_start(ap, fmt);
        if (k >= 0 && (size_t)k < p->err_len)
            vsnprintf(p->err + k, p->err_len - (size_t)k, fmt, ap);
        va_end(ap);
        p->failed = 1;
    }
    return -1;
}

int fg_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        int extra;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) { extra = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { extra = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { extra = 3; cp = c & 0x07; }
        else return 0;
        if (n - i <= (size_t)extra)
            return 0;
        for (int k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((extra == 2 && cp < 0x800) || (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += (size_t)extra + 1;
    }
    return 1;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int hex4(parser *p, unsigned *out)
{
    if (p->len - p->pos < 4)
        return fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return fail(p, "expected 4 hex digits after \\u");
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* At the opening quote. The decoded text is never longer than the source. */
static int parse_string(parser *p, char **out)
{
    size_t start = ++p->pos;
    size_t end = start;
    while (end < p->len && p->s[end] != '"') {
        if (p->s[end] == '\\')
            end++;
        end++;
    }
    if (end >= p->len)
        return fail(p, "unterminated string");
    char *buf = fg_xmalloc(end - start + 1, "json string");
    size_t o = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) {
            free(buf);
            return fail(p, "control character in string");
        }
        if (c != '\\') {
            buf[o++] = (char)c;
            p->pos++;
            continue;
        }
        char e = p->s[++p->pos];
        p->pos++;
        unsigned cp;
        switch (e) {
        case '"': buf[o++] = '"'; break;
        case '\\': buf[o++] = '\\'; break;
        case '/': buf[o++] = '/'; break;
        case 'b': buf[o++] = '\b'; break;
        case 'f': buf[o++] = '\f'; break;
        case 'n': buf[o++] = '\n'; break;
        case 'r': buf[o++] = '\r'; break;
        case 't': buf[o++] = '\t'; break;
        case 'u':
            if (hex4(p, &cp) < 0) { free(buf); return -1; }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (p->len - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                    free(buf);
                    return fail(p, "high surrogate without a low surrogate");
                }
                p->pos += 2;
                if (hex4(p, &lo) < 0) { free(buf); return -1; }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    free(buf);
                    return fail(p, "high surrogate without a low surrogate");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(buf);
                return fail(p, "lone low surrogate");
            } else if (cp == 0) {
                free(buf);
                return fail(p, "\\u0000 is not allowed in names or values");
            }
            o += put_utf8(buf + o, cp);
            break;
        default:
            free(buf);
            return fail(p, "invalid escape \\%c", e);
        }
    }
    /* The loop can step past end only through a backslash right before the
     * closing quote, which the scan above has already paired up. */
    buf[o] = '\0';
    p->pos = end + 1;
    *out = buf;
    return 0;
}

static int parse_number(parser *p, fg_json *v)
{
    size_t start = p->pos;
    int is_uint = 1;
    if (p->s[p->pos] == '-') { is_uint = 0; p->pos++; }
    if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
        return fail(p, "expected a digit");
    if (p->s[p->pos] == '0' && p->pos + 1 < p->len && p->s[p->pos + 1] >= '0' &&
        p->s[p->pos + 1] <= '9')
        return fail(p, "leading zero in number");
    uint64_t u = 0;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        unsigned d = (unsigned)(p->s[p->pos++] - '0');
        if (u > (UINT64_MAX - d) / 10)
            is_uint = 0;   /* still a valid number, just not one we can use */
        else
            u = u * 10 + d;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        is_uint = 0;
        p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            return fail(p, "expected a digit after '.'");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        is_uint = 0;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            return fail(p, "expected a digit in the exponent");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    v->type = FG_JSON_NUMBER;
    v->is_uint = is_uint;
    v->uint = is_uint ? u : 0;
    (void)start;
    return 0;
}

static int parse_value(parser *p, fg_json *v, int depth);

static int literal(parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return fail(p, "expected a JSON value");
    p->pos += n;
    return 0;
}

static void push_item(fg_json *v, int *cap)
{
    if (v->n == *cap) {
        *cap = *cap ? 2 * *cap : 4;
        v->items = fg_xrealloc(v->items, (size_t)*cap * sizeof *v->items, "json");
        if (v->type == FG_JSON_OBJECT)
            v->keys = fg_xrealloc(v->keys, (size_t)*cap * sizeof *v->keys, "json");
    }
    memset(&v->items[v->n], 0, sizeof v->items[v->n]);
}

static int parse_container(parser *p, fg_json *v, int depth, int object)
{
    char close = object ? '}' : ']';
    int cap = 0;
    v->type = object ? FG_JSON_OBJECT : FG_JSON_ARRAY;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        push_item(v, &cap);
        if (object) {
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return fail(p, "expected a member name in quotes");
            char *key;
            if (parse_string(p, &key) < 0)
                return -1;
            for (int i = 0; i < v->n; i++)
                if (strcmp(v->keys[i], key) == 0) {
                    free(key);
                    return fail(p, "duplicate key \"%s\"", v->keys[i]);
                }
            v->keys[v->n] = key;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                v->n++;   /* so that free releases the key */
                return fail(p, "expected ':'");
            }
            p->pos++;
        }
        int rc = parse_value(p, &v->items[v->n], depth + 1);
        v->n++;
        if (rc < 0)
            return -1;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return 0;
        }
        return fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int parse_value(parser *p, fg_json *v, int depth)
{
    memset(v, 0, sizeof *v);
    if (depth > FG_JSON_MAX_DEPTH)
        return fail(p, "nesting deeper than %d", FG_JSON_MAX_DEPTH);
    skip_ws(p);
    v->offset = p->pos;
    if (p->pos >= p->len)
        return fail(p, "unexpected end of header");
    char c = p->s[p->pos];
    switch (c) {
    case '{': return parse_container(p, v, depth, 1);
    case '[': return parse_container(p, v, depth, 0);
    case '"': v->type = FG_JSON_STRING; return parse_string(p, &v->string);
    case 't': v->type = FG_JSON_BOOL; v->boolean = 1; return literal(p, "true");
    case 'f': v->type = FG_JSON_BOOL; return literal(p, "false");
    case 'n': v->type = FG_JSON_NULL; return literal(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return parse_number(p, v);
        return fail(p, "expected a JSON value");
    }
}

int fg_json_parse(const char *text, size_t len, char pad, fg_json *out,
                  char *err, size_t err_len)
{
    parser p = {text, len, 0, err, err_len, 0};
    memset(out, 0, sizeof *out);
    if (!fg_utf8_valid((const unsigned char *)text, len)) {
        snprintf(err, err_len, "header is not valid UTF-8");
        return -1;
    }
    if (parse_value(&p, out, 0) < 0) {
        fg_json_free(out);
        return -1;
    }
    /* Only the padding may follow (JSON whitespace when pad is 0 is not
     * allowed either: the writer we follow pads with spaces only). */
    while (p.pos < len && pad && text[p.pos] == pad)
        p.pos++;
    if (p.pos != len) {
        fail(&p, "unexpected data after the JSON value");
        fg_json_free(out);
        return -1;
    }
    return 0;
}

void fg_json_free(fg_json *v)
{
    for (int i = 0; i < v->n; i++) {
        fg_json_free(&v->items[i]);
        if (v->type == FG_JSON_OBJECT)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
    memset(v, 0, sizeof *v);
}

const fg_json *fg_json_get(const fg_json *obj, const char *key)
{
    if (obj->type != FG_JSON_OBJECT)
        return NULL;
    for (int i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}
