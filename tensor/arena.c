/* Bump allocator for the intermediates of one step.
 *
 * Memory is a list of chunks. Reset rewinds to the first chunk without
 * freeing anything, so after the first step a loop allocates nothing from the
 * system and touches only pages it has touched before: no page faults in
 * the steady state. When one step outgrows the chunk list, a new chunk is
 * appended and kept. (Merging the chunks into one at reset would save the
 * few bytes left at chunk ends, but the merged chunk is fresh memory that
 * the next step faults in page by page, 570 MB for a small Glow.) */
#include "tensor/tensor.h"
#include "tensor/arena_trace.h"

#include <stdlib.h>
#include <string.h>

typedef struct chunk {
    struct chunk *next;
    char *base;
    size_t size;
    int index;       /* position in the list, for traces */
} chunk;

struct fg_arena {
    chunk *first;
    chunk *cur;      /* chunk being filled */
    size_t offset;   /* bytes used in cur */
    size_t used;     /* bytes handed out since reset (with padding) */
    size_t peak;
    size_t reserved;
    size_t chunk_bytes;
    fg_arena_trace *trace; /* recording, or NULL */
};

static size_t round_up(size_t n)
{
    return (n + FG_ARENA_ALIGN - 1) & ~(size_t)(FG_ARENA_ALIGN - 1);
}

static chunk *chunk_new(size_t size)
{
    chunk *c = fg_xmalloc(sizeof *c, "arena chunk header");
    c->base = fg_aligned_alloc(size, "arena chunk");
    c->size = size;
    c->next = NULL;
    c->index = 0;
    return c;
}

fg_arena *fg_arena_create(size_t chunk_bytes)
{
    fg_arena *a = fg_xcalloc(1, sizeof *a, "arena");
    a->chunk_bytes = round_up(chunk_bytes < 4096 ? 4096 : chunk_bytes);
    a->first = a->cur = chunk_new(a->chunk_bytes);
    a->reserved = a->chunk_bytes;
    return a;
}

static void free_chunks(chunk *c)
{
    while (c) {
        chunk *next = c->next;
        fg_aligned_free(c->base);
        free(c);
        c = next;
    }
}

void fg_arena_destroy(fg_arena *a)
{
    if (!a)
        return;
    free_chunks(a->first);
    free(a);
}

void *fg_arena_alloc(fg_arena *a, size_t bytes)
{
    size_t need = round_up(bytes ? bytes : 1);
    while (a->offset + need > a->cur->size) {
        if (a->cur->next) {
            a->cur = a->cur->next;
        } else {
            size_t size = need > a->chunk_bytes ? need : a->chunk_bytes;
            a->cur->next = chunk_new(size);
            a->cur->next->index = a->cur->index + 1;
            a->reserved += size;
            a->cur = a->cur->next;
        }
        a->offset = 0;
    }
    void *p = a->cur->base + a->offset;
    a->offset += need;
    a->used += need;
    if (a->used > a->peak)
        a->peak = a->used;
    if (a->trace)
        fg_arena_trace_alloc(a->trace, bytes, a->cur->index, a->offset, a->used);
    return p;
}

void *fg_arena_calloc(fg_arena *a, size_t bytes)
{
    void *p = fg_arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

void fg_arena_reset(fg_arena *a)
{
    a->cur = a->first;
    a->offset = 0;
    a->used = 0;
    if (a->trace)
        fg_arena_trace_reset(a->trace);
}

void fg_arena_trim(fg_arena *a)
{
    fg_arena_reset(a);
    for (chunk *c = a->first->next; c; c = c->next)
        a->reserved -= c->size;
    free_chunks(a->first->next);
    a->first->next = NULL;
}

size_t fg_arena_used(const fg_arena *a)
{
    return a->used;
}

size_t fg_arena_reserved(const fg_arena *a)
{
    return a->reserved;
}

size_t fg_arena_peak(const fg_arena *a)
{
    return a->peak;
}

fg_arena_mark fg_arena_mark_now(const fg_arena *a)
{
    return (fg_arena_mark){a->cur, a->offset, a->used};
}

void fg_arena_rewind(fg_arena *a, const fg_arena_mark *m)
{
    FG_CHECK(m->used <= a->used, "arena_rewind",
             "the mark (%zu bytes in use) is later than the arena (%zu): it was taken "
             "before a reset or rewound past", m->used, a->used);
    a->cur = m->chunk;
    a->offset = m->offset;
    a->used = m->used;
    if (a->trace)
        fg_arena_trace_rewind(a->trace, a->cur->index, a->offset, a->used);
}

fg_arena_trace *fg_arena_trace_start(fg_arena *a)
{
    FG_CHECK(!a->trace, "arena_trace_start", "the arena is already being traced");
    return a->trace = fg_arena_trace_new();
}

size_t fg_arena_chunk_bytes(const fg_arena *a)
{
    return a->chunk_bytes;
}

void fg_arena_trace_stop(fg_arena *a)
{
    a->trace = NULL;
}
