/* Error reporting, checked allocation and the allocation-failure injector. */
#include "tensor/tensor.h"
#include "tensor/alloc_internal.h"

#include <pthread.h>
#include <stdatomic.h>
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

/* ------------------------------------------------ the allocation injector
 *
 * A testing hook: the Nth allocation from arming fails as if the system had
 * no memory, so a test can check what every allocation's failure does. It
 * is armed by fg_alloc_fail_at (tensor/alloc_internal.h) or by the
 * environment variable FLOWGRAD_FAIL_ALLOC=N, read at the first allocation.
 * Off, it costs each allocation one load and one branch that is always
 * taken the same way. Counting is atomic, so threads that allocate at once
 * each get their own number; the test runs on one thread so that the
 * numbers are the same from run to run. */
enum { WATCH_OFF, WATCH_UNREAD, WATCH_ON };
static _Atomic int watch = WATCH_UNREAD;
static _Atomic long alloc_count;
static _Atomic long fail_at;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void read_env(void)
{
    const char *v = getenv("FLOWGRAD_FAIL_ALLOC");
    char *end;
    long n = v ? strtol(v, &end, 10) : 0;
    if (v && (end == v || *end || n < 1)) {
        fprintf(stderr, "flowgrad: FLOWGRAD_FAIL_ALLOC=%s ignored: expected a whole number "
                        ">= 1 (the allocation that is to fail)\n", v);
        n = 0;
    }
    atomic_store(&alloc_count, 0);
    atomic_store(&fail_at, n);
    atomic_store(&watch, n > 0 ? WATCH_ON : WATCH_OFF);
}

void fg_alloc_fail_at(long n)
{
    pthread_once(&env_once, read_env);
    atomic_store(&watch, WATCH_OFF);
    atomic_store(&alloc_count, 0);
    atomic_store(&fail_at, n > 0 ? n : 0);
    atomic_store(&watch, n >= 0 ? WATCH_ON : WATCH_OFF);
}

long fg_alloc_count(void)
{
    return atomic_load(&alloc_count);
}

static int counted_alloc_fails(void)
{
    if (atomic_load(&watch) == WATCH_UNREAD)
        pthread_once(&env_once, read_env);
    if (atomic_load(&watch) != WATCH_ON)
        return 0;
    long n = atomic_fetch_add(&alloc_count, 1) + 1;
    return n == atomic_load(&fail_at);
}

/* Whether this allocation is to fail: the one branch when nothing watches. */
static inline int alloc_fails(void)
{
    if (__builtin_expect(atomic_load_explicit(&watch, memory_order_relaxed) == WATCH_OFF, 1))
        return 0;
    return counted_alloc_fails();
}

/* ----------------------------------------------------------- allocation */

/* No memory for bookkeeping, a model's tensors or a step's intermediates:
 * nothing sensible can go on, and unwinding every caller would only move
 * the stop. The message names what the memory was for and how much; the
 * exit is immediate (_Exit: no atexit handlers, which might allocate, and
 * no stdio buffers of half-written files flushed) with its own status, so
 * a script tells it from a refusal (1) or a crash (a signal). Files being
 * replaced atomically keep their previous content: only the rename makes a
 * new one visible. */
static _Noreturn void out_of_memory(const char *op, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "flowgrad: out of memory (%s): ", op);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    _Exit(FG_EXIT_OUT_OF_MEMORY);
}

void *fg_try_malloc(size_t bytes)
{
    return alloc_fails() ? NULL : malloc(bytes ? bytes : 1);
}

void *fg_try_realloc(void *p, size_t bytes)
{
    return alloc_fails() ? NULL : realloc(p, bytes ? bytes : 1);
}

void *fg_xmalloc(size_t bytes, const char *what)
{
    void *p = fg_try_malloc(bytes);
    if (!p)
        out_of_memory("malloc", "cannot allocate %zu bytes for %s", bytes, what);
    return p;
}

void *fg_xcalloc(size_t n, size_t size, const char *what)
{
    void *p = alloc_fails() ? NULL : calloc(n ? n : 1, size ? size : 1);
    if (!p)
        out_of_memory("calloc", "cannot allocate %zu x %zu bytes for %s", n, size, what);
    return p;
}

void *fg_xrealloc(void *p, size_t bytes, const char *what)
{
    void *q = fg_try_realloc(p, bytes);
    if (!q)
        out_of_memory("realloc", "cannot grow %s to %zu bytes", what, bytes);
    return q;
}

void *fg_aligned_alloc(size_t bytes, const char *what)
{
    void *p = NULL;
    /* posix_memalign accepts any size, unlike C11 aligned_alloc which wants a
     * multiple of the alignment. */
    if (alloc_fails() || posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        out_of_memory("aligned_alloc", "cannot allocate %zu bytes for %s", bytes, what);
    return p;
}

void fg_aligned_free(void *p)
{
    free(p);
}
