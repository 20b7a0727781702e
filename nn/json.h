/* A small strict JSON reader for untrusted headers (safetensors). Internal
 * to nn/; not installed. */
#ifndef FLOWGRAD_NN_JSON_H
#define FLOWGRAD_NN_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum { FG_JSON_NULL, FG_JSON_BOOL, FG_JSON_NUMBER, FG_JSON_STRING,
               FG_JSON_ARRAY, FG_JSON_OBJECT } fg_json_type;

typedef struct fg_json {
    fg_json_type type;
    int boolean;
    /* Numbers: is_uint when the text is a non-negative integer that fits
     * in 64 bits; anything else (fraction, exponent, sign) is_uint 0. */
    int is_uint;
    uint64_t uint;
    char *string;              /* decoded UTF-8, NUL-free */
    int n;                     /* array items or object members */
    struct fg_json *items;
    char **keys;               /* objects: decoded member names */
    size_t offset;             /* byte offset of the value in the text */
} fg_json;

#define FG_JSON_MAX_DEPTH 32

/* Parses text[0..len) as one JSON value followed only by trailing bytes
 * equal to pad (e.g. ' '; 0 allows none). Rejects duplicate keys, invalid
 * UTF-8, control characters in strings, and \u0000. On error writes
 * "byte K: what was expected" into err and returns -1. */
int fg_json_parse(const char *text, size_t len, char pad, fg_json *out,
                  char *err, size_t err_len);
void fg_json_free(fg_json *v);
const fg_json *fg_json_get(const fg_json *obj, const char *key);
/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates). */
int fg_utf8_valid(const unsigned char *s, size_t n);

#endif
