/* The arena's event traces (tensor/arena_trace.h): replayed at another
 * batch size they must land tensors in chunks exactly as the arena would.
 * The expected bytes below are worked out by hand from the arena's rule
 * (64-byte rounding; a tensor that does not fit in what is left of a chunk
 * skips to the next one, appending a chunk of max(need, chunk size)). */
#include "check_main.h"
#include "tensor/tensor.h"
#include "tensor/arena_trace.h"

#define CHUNK 4096

/* One "step" at batch n: A (1000 n bytes), a mark, B (1000 n), back to the
 * mark, C (1500 n), then a reset, as a layer rewound and rebuilt does. */
static void step(fg_arena *a, int n)
{
    fg_arena_reset(a);
    fg_arena_alloc(a, 1000u * n);
    fg_arena_mark m = fg_arena_mark_now(a);
    fg_arena_alloc(a, 1000u * n);
    fg_arena_rewind(a, &m);
    fg_arena_alloc(a, 1500u * n);
    fg_arena_reset(a);
}

static fg_arena_trace *record(int n, size_t *reserved)
{
    fg_arena *a = fg_arena_create(CHUNK);
    fg_arena_trace *t = fg_arena_trace_start(a);
    step(a, n);
    step(a, n);
    fg_arena_trace_stop(a);
    *reserved = fg_arena_reserved(a);
    fg_arena_destroy(a);
    return t;
}

START_TEST(replay_lands_tensors_as_the_arena_does)
{
    size_t r2, r3, r4;
    fg_arena_trace *t2 = record(2, &r2), *t3 = record(3, &r3), *t4 = record(4, &r4);
    /* n = 1: 1024 + [1024, rewound] + 1536 in one chunk. */
    ck_assert_double_eq(fg_arena_trace_replay(t2, 2, t3, 3, 1, CHUNK), 2560);
    /* n = 2: A 2048, B fills the chunk to 4096; C (3008) after A does not
     * fit and starts chunk 1. */
    ck_assert_double_eq(fg_arena_trace_replay(t2, 2, t3, 3, 2, CHUNK), 4096 + 3008);
    ck_assert_uint_eq(r2, 2 * CHUNK);
    /* n = 3: B (3008) starts chunk 1; C (4544) fits in neither and appends
     * a chunk of its own size. */
    ck_assert_double_eq(fg_arena_trace_replay(t2, 2, t3, 3, 3, CHUNK), 3008 + 3008 + 4544);
    ck_assert_uint_eq(r3, 2 * CHUNK + 4544);
    /* n = 4, never recorded: 4032 + 4032 + 6016, in the chunks the arena made. */
    ck_assert_double_eq(fg_arena_trace_replay(t2, 2, t3, 3, 4, CHUNK), 4032 + 4032 + 6016);
    ck_assert_uint_eq(r4, 2 * CHUNK + 6016);
    /* Any two batch sizes fix the same lines. */
    ck_assert_double_eq(fg_arena_trace_replay(t3, 3, t4, 4, 2, CHUNK), 4096 + 3008);
    fg_arena_trace_free(t2);
    fg_arena_trace_free(t3);
    fg_arena_trace_free(t4);
}
END_TEST

START_TEST(different_events_are_not_replayed)
{
    size_t r;
    fg_arena_trace *t2 = record(2, &r);
    fg_arena *a = fg_arena_create(CHUNK);
    fg_arena_trace *other = fg_arena_trace_start(a);
    step(a, 3); /* one step where two were recorded */
    fg_arena_trace_stop(a);
    ck_assert_double_eq(fg_arena_trace_replay(t2, 2, other, 3, 8, CHUNK), -1);
    fg_arena_trace_free(other);

    /* A mark from before the trace started names no recorded state. */
    fg_arena_reset(a);
    fg_arena_alloc(a, 100);
    fg_arena_mark m = fg_arena_mark_now(a);
    fg_arena_trace *late = fg_arena_trace_start(a);
    fg_arena_alloc(a, 100);
    fg_arena_rewind(a, &m);
    fg_arena_trace_stop(a);
    ck_assert_double_eq(fg_arena_trace_replay(late, 2, late, 3, 8, CHUNK), -1);
    fg_arena_trace_free(late);
    fg_arena_destroy(a);
    fg_arena_trace_free(t2);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("arena_trace");
    TCase *tc = fg_tcase("arena_trace");
    tcase_add_test(tc, replay_lands_tensors_as_the_arena_does);
    tcase_add_test(tc, different_events_are_not_replayed);
    suite_add_tcase(s, tc);
    return s;
}
