/* An in-memory copy of a state list's values and one counter, to undo
 * training updates: the step guard rolls back an update that a loss spike
 * shows went wrong. Copies all entries, buffers too (actnorm's init flag,
 * optimizer moments), so that restoring returns exactly to the copy. */
#include <stdlib.h>
#include <string.h>

#include "nn/step_guard.h"

void fg_snapshot_init(fg_snapshot *s, const fg_state_list *l, long *counter)
{
    memset(s, 0, sizeof *s);
    s->n = l->n;
    s->vars = fg_xcalloc((size_t)l->n + 1, sizeof *s->vars, "snapshot");
    s->copy = fg_xcalloc((size_t)l->n + 1, sizeof *s->copy, "snapshot");
    for (int i = 0; i < l->n; i++) {
        s->vars[i] = l->items[i].var;
        s->copy[i] = fg_xmalloc(fg_numel(&s->vars[i]->t) * sizeof(float), "snapshot");
    }
    s->counter = counter;
}

void fg_snapshot_free(fg_snapshot *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->copy[i]);
    free(s->copy);
    free(s->vars);
    memset(s, 0, sizeof *s);
}

void fg_snapshot_take(fg_snapshot *s)
{
    for (int i = 0; i < s->n; i++)
        memcpy(s->copy[i], s->vars[i]->t.data, fg_numel(&s->vars[i]->t) * sizeof(float));
    s->saved_counter = s->counter ? *s->counter : 0;
    s->valid = 1;
}

int fg_snapshot_restore(fg_snapshot *s)
{
    if (!s->valid)
        return 0;
    for (int i = 0; i < s->n; i++)
        memcpy(s->vars[i]->t.data, s->copy[i], fg_numel(&s->vars[i]->t) * sizeof(float));
    if (s->counter)
        *s->counter = s->saved_counter;
    s->valid = 0;
    return 1;
}
