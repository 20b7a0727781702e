/* Allocation inside the library that is not part of its API. Internal; not
 * installed.
 *
 * fg_try_malloc and fg_try_realloc are malloc and realloc for callers that
 * recover from a failure (return FG_ERR naming the file and the size):
 * memory whose size a file or dataset decides. They count for the injector
 * like every fg_x* allocation.
 *
 * The injector is a testing hook. fg_alloc_fail_at(n) restarts the count of
 * allocations (fg_xmalloc, fg_xcalloc, fg_xrealloc, fg_aligned_alloc, the
 * arena's chunks through them, fg_try_*): with n >= 1 the nth from now
 * fails as if the system had no memory (once); with n == 0 they are only
 * counted; with n < 0 nothing is counted any more. fg_alloc_count() is the
 * number counted since. The environment variable FLOWGRAD_FAIL_ALLOC=N arms
 * it for a whole process, e.g. a flowgrad command. Allocations inside other
 * libraries (libyaml, BLIS, libc's stdio) are not counted. */
#ifndef FLOWGRAD_TENSOR_ALLOC_INTERNAL_H
#define FLOWGRAD_TENSOR_ALLOC_INTERNAL_H

#include <stddef.h>

void *fg_try_malloc(size_t bytes);
void *fg_try_realloc(void *p, size_t bytes);

void fg_alloc_fail_at(long n);
long fg_alloc_count(void);

#endif
