/* Error reporting and checked allocation. */
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Thread-local so that concurrent callers (e.g. data loader threads) never
 * see each other's messages. */
static _Thread_local char last_error[1024];

/* Formats into a scratch buffer first: a caller may pass fg_last_error()
 * itself as an argument ("%s: %s", path, fg_last_error()), and vsnprintf
 * into the buffer it is reading from is undefined behaviour. */
int fg_verror(const char *fmt, va_list ap)
{
    char msg[sizeof last_error];
    vsnprintf(msg, sizeof msg, fmt, ap);
    memcpy(last_error, msg, sizeof last_error);
    return FG_ERR;
}

int fg_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fg_verror(fmt, ap);
    va_end(ap);
    return FG_ERR;
}

const char *fg_last_error(void)
{
    return last_error;
}

void fg_clear_error(void)
{
    last_error[0] = '\0';
}

void fg_fatal(const char *op, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "flowgrad: %s: ", op);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void *fg_xmalloc(size_t bytes, const char *what)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        fg_fatal("malloc", "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void *fg_xcalloc(size_t n, size_t size, const char *what)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        fg_fatal("calloc", "out of memory allocating %zu x %zu bytes for %s", n, size, what);
    return p;
}

void *fg_xrealloc(void *p, size_t bytes, const char *what)
{
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q)
        fg_fatal("realloc", "out of memory growing %s to %zu bytes", what, bytes);
    return q;
}

void *fg_aligned_alloc(size_t bytes, const char *what)
{
    void *p = NULL;
    /* posix_memalign accepts any size, unlike C11 aligned_alloc which wants a
     * multiple of the alignment. */
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        fg_fatal("aligned_alloc", "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void fg_aligned_free(void *p)
{
    free(p);
}
