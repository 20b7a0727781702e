/* The loop of fg_train_run (see nn/trainer.h): batches, shards, steps and
 * the caller's hooks, in the order a resumed run must repeat exactly. */
#include "nn/trainer.h"

#include <stdlib.h>

typedef struct batch_loss {
    const fg_train_hooks *h;
    fg_batch b;
} batch_loss;

static fg_var *loss_of_batch(void *ctx, fg_graph *g, double *metric)
{
    batch_loss *bl = ctx;
    return bl->h->loss(bl->h->ctx, g, &bl->b, metric);
}

/* Images [first, first + n) of this rank's shard as a batch of their own:
 * their own noise and flips, as in the whole batch. */
static fg_var *loss_of_part(void *ctx, fg_graph *g, int first, int n, double *metric)
{
    batch_loss *bl = ctx;
    fg_batch part = bl->b;
    part.idx += first;
    part.n = n;
    part.first += first;
    part.offset = first;
    return bl->h->loss(bl->h->ctx, g, &part, metric);
}

int fg_train_plan_pending(const fg_train_plan *p, const fg_trainer *t, const fg_batch_iter *it)
{
    /* Counted in epochs, an epoch begun is finished even past the steps. */
    return t->step < p->total_steps || (p->epochs && it->pos > 0 && it->epoch < p->epochs);
}

int fg_train_run(fg_trainer *t, fg_batch_iter *it, const fg_train_plan *p,
                 const fg_train_hooks *h, int *stopped_by)
{
    int *idx = fg_xmalloc((size_t)it->batch * sizeof *idx, "batch indices");
    int rc = FG_OK;
    if (stopped_by)
        *stopped_by = 0;
    while (fg_train_plan_pending(p, t, it)) {
        int n = fg_batch_iter_next(it, idx);
        if (n == 0) {
            long ended = it->epoch;
            if (h->end_of_epoch && (rc = h->end_of_epoch(h->ctx, t, ended)) != FG_OK)
                break;
            if (p->epochs && ended >= p->epochs)
                break;
            continue;
        }
        /* n is the global batch; this rank trains on its shard of it. */
        int first = fg_dist_shard_first(n);
        batch_loss bl = {h, {idx + first, fg_dist_shard_size(n), first, n, t->step, 0}};
        fg_step_report r;
        fg_step_outcome out = h->can_split && h->can_split(h->ctx, t)
                                  ? fg_trainer_step_parts(t, loss_of_part, &bl, bl.b.n, &r)
                                  : fg_trainer_step(t, loss_of_batch, &bl, &r);
        r.images = n;
        if (h->after_step && (rc = h->after_step(h->ctx, t, &r)) != FG_OK)
            break;
        if (out == FG_STEP_FAILED) {
            rc = FG_ERR;
            break;
        }
        if (out == FG_STEP_SKIPPED)
            continue;   /* not a step: the stop check waits for one */
        /* Agreed between ranks, so that all of them stop after this step
         * even when the request reached only some. */
        int stop = fg_dist_agree_max(h->stop ? h->stop(h->ctx, t) : 0);
        if (stop) {
            if (stopped_by)
                *stopped_by = stop;
            break;
        }
    }
    free(idx);
    return rc;
}
