/* The step guard as a training loop uses it: judging, the copy of weights,
 * moments and EMA that a rollback returns to, clipping, and the checkpoint
 * entry "train.guard". The loop keeps only the order of calls. */
#include <stdlib.h>
#include <string.h>

#include "nn/step_guard.h"

/* Rejections in a row after which the window no longer describes the run:
 * the weights do not change while steps are skipped, so a run of outliers
 * means the data or the model moved, and a fresh window follows it. */
#define PATIENCE 20

void fg_guarded_init(fg_guarded *g, const fg_state_list *model, fg_optim *o, fg_ema *ema,
                     int window, double threshold, double clip_factor)
{
    memset(g, 0, sizeof *g);
    /* A quarter of the window before judging: early steps move fast. */
    fg_step_guard_init(&g->guard, window, window / 4 > 1 ? window / 4 : 2, threshold,
                       clip_factor);
    fg_state_list all;
    fg_state_list_init(&all);
    for (int i = 0; i < model->n; i++)
        fg_state_list_add(&all, model->items[i].name, model->items[i].var,
                          model->items[i].kind);
    fg_optim_visit(o, fg_state_list_add, &all);
    if (ema)
        fg_ema_visit(ema, fg_state_list_add, &all);
    fg_snapshot_init(&g->undo, &all, &o->step);
    fg_state_list_free(&all);
}

void fg_guarded_free(fg_guarded *g)
{
    fg_snapshot_free(&g->undo);
}

double fg_guarded_clip(const fg_guarded *g, double fixed)
{
    double adaptive = fg_step_guard_clip(&g->guard);
    return adaptive > 0 && (fixed <= 0 || adaptive < fixed) ? adaptive : fixed;
}

int fg_guarded_judge(fg_guarded *g, double loss, double norm, int *verdict)
{
    int v = fg_step_guard_judge(&g->guard, loss, norm);
    if (verdict)
        *verdict = v;
    if (v == FG_GUARD_ACCEPT) {
        fg_snapshot_take(&g->undo);
        fg_step_guard_accept(&g->guard, loss, norm);
        return FG_GUARDED_TAKEN;
    }
    fg_step_guard_reject(&g->guard, v);
    int event = FG_GUARDED_SKIPPED;
    /* The loss was computed on the weights the last update produced. */
    if ((v & FG_GUARD_LOSS) && fg_snapshot_restore(&g->undo))
        event = FG_GUARDED_ROLLED_BACK, g->rolled_back++;
    if (g->guard.run >= PATIENCE) {
        fg_step_guard_restart(&g->guard);
        event |= FG_GUARDED_RESTARTED;
    }
    return event;
}

void fg_guarded_checkpointed(fg_guarded *g)
{
    /* A run resumed from this checkpoint has no copy to roll back to;
     * forgetting ours keeps the two runs' decisions the same. */
    g->undo.valid = 0;
}

void fg_guarded_save(const fg_guarded *g, fg_safetensors *st)
{
    int n = fg_step_guard_state_len(&g->guard);
    int64_t *s = fg_xmalloc((size_t)n * sizeof *s, "guard");
    fg_step_guard_save(&g->guard, s);
    fg_st_add_i64(st, "train.guard", s, n);  /* copies */
    free(s);
}

int fg_guarded_load(fg_guarded *g, const fg_safetensors *st)
{
    if (!fg_st_find(st, "train.guard"))
        return FG_OK;   /* written without a guard: this one starts afresh */
    int n = fg_step_guard_state_len(&g->guard);
    int64_t *s = fg_xmalloc((size_t)n * sizeof *s, "guard");
    int rc = fg_st_get_i64(st, "train.guard", s, n);
    if (rc == FG_OK && (rc = fg_step_guard_load(&g->guard, s, n)) != FG_OK)
        fg_error("%s: %s", st->path ? st->path : "safetensors", fg_last_error());
    free(s);
    return rc;
}
