/* One training step (see nn/trainer.h). The order is the contract: the
 * finite check sees the averaged gradients, so every rank skips or fails
 * the same batch, and clipping sees gradients known to be finite. */
#include "nn/trainer_internal.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

double fg_trainer_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void fg_trainer_init(fg_trainer *t, const fg_state_list *state, const fg_trainer_options *o)
{
    memset(t, 0, sizeof *t);
    t->o = *o;
    if (t->o.beta1 == 0)
        t->o.beta1 = 0.9;
    if (t->o.beta2 == 0)
        t->o.beta2 = 0.999;
    if (t->o.eps == 0)
        t->o.eps = 1e-8;
    t->state = state;
    fg_optim_init(&t->optim, t->o.optimizer, state, t->o.beta1, t->o.beta2, t->o.eps);
    t->has_ema = t->o.ema > 0;
    if (t->has_ema)
        fg_ema_init(&t->ema, state, t->o.ema);
    t->g = fg_graph_create();
    if (t->o.guard) {
        t->guard = fg_xmalloc(sizeof *t->guard, "step guard");
        fg_guarded_init(t->guard, state, &t->optim, t->has_ema ? &t->ema : NULL,
                        t->o.guard_window > 0 ? t->o.guard_window : 100,
                        t->o.guard_threshold > 0 ? t->o.guard_threshold : 8, t->o.clip_factor);
    }
}

void fg_trainer_free(fg_trainer *t)
{
    if (!t->g)
        return;
    fg_graph_destroy(t->g);
    for (int p = 0; p < t->n_part_graphs; p++)
        fg_graph_destroy(t->part_graphs[p]);
    free(t->part_graphs);
    if (t->guard) {
        fg_guarded_free(t->guard);
        free(t->guard);
    }
    if (t->has_ema)
        fg_ema_free(&t->ema);
    fg_optim_free(&t->optim);
    memset(t, 0, sizeof *t);
}

double fg_trainer_lr(const fg_trainer *t, long step)
{
    double lr = fg_lr_schedule(t->o.schedule, t->o.lr, step, t->o.warmup, t->o.total_steps);
    return t->guard ? lr * t->guard->guard.lr_scale : lr;
}

/* What is not finite after the forward pass (and, with a finite loss, the
 * backward pass, which backward runs), or NULL. State order is forward
 * order, so the first parameter named is the earliest layer that broke. */
static const char *not_finite(fg_trainer *t, double lv, fg_trainer_backward_fn backward,
                              void *bctx, char *why, size_t n)
{
    if (!isfinite(lv)) {
        /* A layer that saw a non-finite input said so during this step's
         * forward pass (the error was cleared before it). */
        char layer[256];
        snprintf(layer, sizeof layer, "%.255s", fg_last_error());
        /* Name a parameter when one is already broken. */
        int p_ok = fg_state_list_check_finite(t->state, 0) == FG_OK;
        snprintf(why, n, "the loss is %s%s%.200s%s%s", isnan(lv) ? "NaN" : "infinite",
                 p_ok ? "" : ", ", p_ok ? "" : fg_last_error(), layer[0] ? "; " : "", layer);
        return why;
    }
    fg_state_list_zero_grad(t->state);
    backward(bctx);
    fg_dist_average_grads(t->state);
    if (t->o.inspect_gradients)
        t->o.inspect_gradients(t->o.inspect_ctx, t->state);
    if (fg_state_list_check_finite(t->state, 1) != FG_OK) {
        snprintf(why, n, "%s", fg_last_error());
        return why;
    }
    return NULL;
}

fg_step_outcome fg_trainer_finish_step(fg_trainer *t, double loss, double metric,
                                       fg_trainer_backward_fn backward, void *bctx,
                                       double t0, fg_step_report *r)
{
    /* Means over ranks, so every rank takes the same decisions below. */
    double means[2] = {loss, metric};
    fg_dist_mean(means, 2);
    r->loss = means[0];
    r->metric = means[1];
    const char *bad = not_finite(t, r->loss, backward, bctx, r->why, sizeof r->why);
    if (bad) {
        r->step = t->step;
        if (t->skipped < t->o.skip_nonfinite) {
            t->skipped++;
            return r->outcome = FG_STEP_SKIPPED;
        }
        fg_error("step %ld: %s", t->step + 1, r->why);
        return r->outcome = FG_STEP_FAILED;
    }
    /* The norm before clipping: a spike in it is where a loss spike comes
     * from. The guard's threshold is the one before this step is judged. */
    r->grad_norm = fg_state_list_grad_norm(t->state);
    r->clip = t->guard ? fg_guarded_clip(t->guard, t->o.grad_clip) : t->o.grad_clip;
    if (t->guard)
        r->guard_event = fg_guarded_judge(t->guard, r->loss, r->grad_norm, &r->guard_verdict);
    t->step++;
    r->lr = fg_trainer_lr(t, t->step);
    r->outcome = r->guard_event == FG_GUARDED_TAKEN ? FG_STEP_TAKEN : FG_STEP_REJECTED;
    if (r->outcome == FG_STEP_TAKEN) {
        fg_state_list_clip_grad_norm(t->state, r->clip);
        fg_optim_step(&t->optim, r->lr);
        if (t->has_ema)
            fg_ema_update(&t->ema);
    }
    r->step = t->step;
    r->seconds = fg_trainer_now() - t0;
    t->elapsed += r->seconds;
    return r->outcome;
}

typedef struct whole_backward {
    fg_graph *g;
    fg_var *loss;
} whole_backward;

static void backward_whole(void *ctx)
{
    whole_backward *w = ctx;
    fg_backward(w->g, w->loss);
}

fg_step_outcome fg_trainer_step(fg_trainer *t, fg_step_loss_fn loss_fn, void *ctx, fg_step_report *r)
{
    double t0 = fg_trainer_now();
    memset(r, 0, sizeof *r);
    fg_graph_reset(t->g);
    double metric = 0;
    fg_clear_error();
    fg_var *loss = loss_fn(ctx, t->g, &metric);
    whole_backward w = {t->g, loss};
    fg_step_outcome out = fg_trainer_finish_step(t, loss->t.data[0], metric, backward_whole, &w,
                                                 t0, r);
    fg_graph_reset(t->g);
    return out;
}

void fg_trainer_swap_ema(fg_trainer *t)
{
    if (t->has_ema)
        fg_ema_swap(&t->ema);
}

void fg_trainer_visit_state(fg_trainer *t, fg_state_list *l)
{
    fg_optim_visit(&t->optim, fg_state_list_add, l);
    if (t->has_ema)
        fg_ema_visit(&t->ema, fg_state_list_add, l);
}

void fg_trainer_broadcast(fg_trainer *t)
{
    if (fg_dist_size() == 1)
        return;
    fg_state_list l;
    fg_state_list_init(&l);
    fg_trainer_visit_state(t, &l);
    fg_dist_broadcast_state(t->state);
    fg_dist_broadcast_state(&l);
    fg_state_list_free(&l);
}
