/* Recording an arena's events and replaying them at another batch size
 * (see tensor/arena_trace.h). */
#include "tensor/arena_trace.h"

#include <stdlib.h>
#include <string.h>

enum { EV_ALLOC, EV_RESET, EV_REWIND };

typedef struct event {
    int kind;
    size_t bytes;  /* EV_ALLOC: bytes asked for */
    long target;   /* EV_REWIND: the event after which the mark was taken, -1 for the start */
    /* the arena's state after the event, to find the event a later mark names */
    int chunk;
    size_t offset, used;
} event;

struct fg_arena_trace {
    event *ev;
    long n, cap;
    int broken; /* a rewind to a state never seen */
};

fg_arena_trace *fg_arena_trace_new(void)
{
    return fg_xcalloc(1, sizeof(fg_arena_trace), "arena trace");
}

void fg_arena_trace_free(fg_arena_trace *t)
{
    if (!t)
        return;
    free(t->ev);
    free(t);
}

static event *push(fg_arena_trace *t, int kind, int chunk, size_t offset, size_t used)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 4096;
        t->ev = fg_xrealloc(t->ev, (size_t)t->cap * sizeof *t->ev, "arena trace");
    }
    event *e = &t->ev[t->n++];
    *e = (event){.kind = kind, .target = -1, .chunk = chunk, .offset = offset, .used = used};
    return e;
}

void fg_arena_trace_alloc(fg_arena_trace *t, size_t bytes, int chunk, size_t offset, size_t used)
{
    push(t, EV_ALLOC, chunk, offset, used)->bytes = bytes;
}

void fg_arena_trace_reset(fg_arena_trace *t)
{
    push(t, EV_RESET, 0, 0, 0);
}

/* A mark is a state the arena was in: after some earlier event, or at the
 * start (nothing in use). The latest event that left that state stands for
 * it: any event between it and the rewind was given back by the rewind. */
void fg_arena_trace_rewind(fg_arena_trace *t, int chunk, size_t offset, size_t used)
{
    long target = -2;
    for (long i = t->n - 1; i >= 0; i--) {
        const event *e = &t->ev[i];
        if (e->chunk == chunk && e->offset == offset && e->used == used) {
            target = i;
            break;
        }
    }
    if (target == -2) {
        if (used == 0 && chunk == 0 && offset == 0)
            target = -1;
        else
            t->broken = 1;
    }
    push(t, EV_REWIND, chunk, offset, used)->target = target;
}

static size_t round_up(size_t n)
{
    return (n + FG_ARENA_ALIGN - 1) & ~(size_t)(FG_ARENA_ALIGN - 1);
}

typedef struct sim_chunk {
    size_t size, high;
} sim_chunk;

double fg_arena_trace_replay(const fg_arena_trace *at1, double n1, const fg_arena_trace *at2,
                             double n2, double n, size_t chunk_bytes)
{
    if (at1->broken || at2->broken || at1->n != at2->n)
        return -1;
    for (long i = 0; i < at1->n; i++)
        if (at1->ev[i].kind != at2->ev[i].kind || at1->ev[i].target != at2->ev[i].target)
            return -1;
    chunk_bytes = round_up(chunk_bytes < 4096 ? 4096 : chunk_bytes);
    int nc = 1, cap = 16;
    sim_chunk *c = fg_xcalloc((size_t)cap, sizeof *c, "arena replay");
    c[0].size = chunk_bytes;
    /* The simulated state after every event, for rewinds. */
    int *at_chunk = fg_xmalloc((size_t)(at1->n ? at1->n : 1) * sizeof *at_chunk, "arena replay");
    size_t *at_offset = fg_xmalloc((size_t)(at1->n ? at1->n : 1) * sizeof *at_offset,
                                   "arena replay");
    int cur = 0;
    size_t offset = 0;
    for (long i = 0; i < at1->n; i++) {
        const event *e1 = &at1->ev[i], *e2 = &at2->ev[i];
        if (e1->kind == EV_RESET) {
            cur = 0;
            offset = 0;
        } else if (e1->kind == EV_REWIND) {
            cur = e1->target < 0 ? 0 : at_chunk[e1->target];
            offset = e1->target < 0 ? 0 : at_offset[e1->target];
        } else {
            /* Sizes are a line in the batch through (n1, b1) and (n2, b2). */
            double b = (double)e1->bytes +
                       ((double)e2->bytes - (double)e1->bytes) * (n - n1) / (n2 - n1);
            size_t need = round_up(b >= 1 ? (size_t)(b + 0.5) : 1);
            /* The rule of fg_arena_alloc: skip to the next chunk with room,
             * appending one when the list ends. */
            while (offset + need > c[cur].size) {
                if (cur + 1 == nc) {
                    if (nc == cap) {
                        cap *= 2;
                        c = fg_xrealloc(c, (size_t)cap * sizeof *c, "arena replay");
                    }
                    c[nc].size = need > chunk_bytes ? need : chunk_bytes;
                    c[nc++].high = 0;
                }
                cur++;
                offset = 0;
            }
            offset += need;
            if (offset > c[cur].high)
                c[cur].high = offset;
        }
        at_chunk[i] = cur;
        at_offset[i] = offset;
    }
    double touched = 0;
    for (int k = 0; k < nc; k++)
        touched += (double)c[k].high;
    free(c);
    free(at_chunk);
    free(at_offset);
    return touched;
}
