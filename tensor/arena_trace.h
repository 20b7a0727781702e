/* What an arena did, recorded to be replayed at another batch size.
 * Internal; not installed.
 *
 * The memory estimate (models/train_memory.c) measures training steps at
 * batch 1 and 2. The arena's peak of bytes in use grows linearly with the
 * batch, but the pages a step touches do not: a tensor that does not fit in
 * what is left of a chunk starts the next one, and layers whose graphs are
 * rewound and rebuilt in the same bytes cross chunk ends at different
 * points, so between them they touch more of each chunk than any one uses.
 * At the small batches measured nothing crosses a chunk end, so the line
 * cannot see it.
 *
 * A trace records every allocation (the bytes asked for), reset and rewind
 * of one arena. Two traces of the same steps at two batch sizes have the
 * same events (from batch 2 on: a batch of one skips some layout copies),
 * and each allocation's size is a line in the batch; replaying the events
 * with the sizes of batch n through the arena's own chunk rule gives the
 * bytes the arena touches at batch n. */
#ifndef FLOWGRAD_TENSOR_ARENA_TRACE_H
#define FLOWGRAD_TENSOR_ARENA_TRACE_H

#include "tensor/tensor.h"

/* Every allocation is rounded up to this, and chunks to at least 4096 bytes. */
#define FG_ARENA_ALIGN 64

typedef struct fg_arena_trace fg_arena_trace;

/* Starts recording a's events into a new trace (one at a time per arena). */
fg_arena_trace *fg_arena_trace_start(fg_arena *a);
/* The chunk size a was created with (after rounding). */
size_t fg_arena_chunk_bytes(const fg_arena *a);
/* Stops recording; the trace stays valid until fg_arena_trace_free. */
void fg_arena_trace_stop(fg_arena *a);
void fg_arena_trace_free(fg_arena_trace *t);

/* Bytes of chunk memory touched (the sum over chunks of the furthest byte
 * used) when the events of at1 (recorded at batch n1) and at2 (batch n2)
 * run at batch n, with chunks of chunk_bytes as fg_arena_create(chunk_bytes)
 * makes them. -1 when the two traces are not the same events (a rewind
 * whose mark was not seen, a different count or order): then only the line
 * is known. */
double fg_arena_trace_replay(const fg_arena_trace *at1, double n1, const fg_arena_trace *at2,
                             double n2, double n, size_t chunk_bytes);

/* For tensor/arena.c: an empty trace, and the hooks that record into it,
 * given the state after each event: the state after each event, as the chunk's
 * position in the list, the offset in it and the bytes in use. */
fg_arena_trace *fg_arena_trace_new(void);
void fg_arena_trace_alloc(fg_arena_trace *t, size_t bytes, int chunk, size_t offset,
                          size_t used);
void fg_arena_trace_reset(fg_arena_trace *t);
void fg_arena_trace_rewind(fg_arena_trace *t, int chunk, size_t offset, size_t used);

#endif
