/* The hooks flowgrad train gives the library trainer (see train_run.h). */
#include "examples/train_run.h"
#include "examples/train_dist.h"
#include "examples/train_guard.h"
#include "examples/plots.h"
#include "examples/train_trace.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *out_file(train_run *r, const char *name)
{
    snprintf(r->path, sizeof r->path, "%s/%s", r->out, name);
    return r->path;
}

fg_train_state train_run_state(const train_run *r)
{
    return (fg_train_state){r->tr.step, r->it.epoch, r->it.pos, r->cfg->train.seed,
                            r->tr.elapsed};
}

int train_run_save(train_run *r)
{
    if (!dist_is_root())
        return FG_OK;
    char why[512];
    fg_state_report_ill_conditioned(&r->model->state, FG_COND_WARN, r->tr.step);
    fg_train_state s = train_run_state(r);
    const char *path = out_file(r, "checkpoint.safetensors");
    if (fg_checkpoint_save(path, r->cfg, r->model, &r->tr, &s) == FG_OK)
        return FG_OK;
    snprintf(why, sizeof why, "%s", fg_last_error());
    /* Weights that are no longer finite never replace the good ones. */
    if (fg_state_list_check_finite(&r->model->state, 0) != FG_OK)
        return fg_error("step %ld: %s; checkpoint not written, the last good one is kept",
                        r->tr.step, why);
    if (strstr(why, "left untouched"))
        return FG_ERR;
    return fg_error("%s (the previous checkpoint is left untouched)", why);
}

/* Evaluations and samples use the EMA weights when there are any. The
 * summary says, under the printed mean, when one image carries it. */
static double test_bpd(train_run *r, fg_bpd_summary *summary)
{
    fg_trainer_swap_ema(&r->tr);
    double bpd = fg_model_eval_bpd_ranks_summary(r->model, r->tr.g, &r->test,
                                                 fg_dist_shard_size(r->cfg->train.batch),
                                                 r->cfg->train.seed, summary);
    fg_trainer_swap_ema(&r->tr);
    return bpd;
}

static void report_test(const train_run *r, const char *when, double bpd,
                        const fg_bpd_summary *summary)
{
    if (!dist_is_root())
        return;
    fprintf(stderr, "%s: test %.4f bits/dim\n", when, bpd);
    cli_report_dominated(stderr, summary, "flowgrad eval CKPT --per-image FILE.csv");
}

static int write_samples(train_run *r)
{
    if (!dist_is_root())
        return FG_OK;
    fg_trainer_swap_ema(&r->tr);
    fg_rng rng;
    fg_rng_seed_stream(&rng, r->cfg->train.seed, FG_STREAM_SAMPLE);
    int n = 64, labels[64], *y = NULL;
    /* A row of 8 per class, for class-conditional priors and flows alike. */
    if (fg_model_spec_needs_labels(&r->cfg->model)) {
        for (int i = 0; i < n; i++)
            labels[i] = (i / 8) % r->cfg->model.classes;
        y = labels;
    }
    fg_graph *g = r->tr.g;
    fg_graph_reset(g);
    fg_var *x = fg_model_sample(r->model, g, n, y, NULL, (float)r->cfg->train.temperature,
                                &rng);
    char name[64];
    snprintf(name, sizeof name, "samples_%ld.png", r->tr.step);
    int rc = cli_write_grid(out_file(r, name), &x->t, 8);
    fg_graph_reset(g);
    fg_trainer_swap_ema(&r->tr);
    return rc;
}

static void progress(train_run *r, double bpd, int final)
{
    if (!dist_is_root())
        return;
    static int tty = -1;
    if (tty < 0)
        tty = isatty(2);
    long step = r->tr.step, total = r->plan.total_steps;
    double eta = r->img_s > 0 ? (total - step) * (double)r->cfg->train.batch / r->img_s : 0;
    int em = (int)(eta / 60), es = (int)eta % 60;
    if (tty) {
        int width = 30, fill = (int)(width * (double)step / total);
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] step %ld/%ld  %.4f bits/dim  %.1f img/s  ETA %dm%02ds ", bar,
                step, total, bpd, r->img_s, em, es);
        if (final)
            fputc('\n', stderr);
    } else {
        long every = total / 50 > 10 ? total / 50 : 10;
        if (final || step % every == 0 || step == 1)
            fprintf(stderr, "step %ld/%ld  %.4f bits/dim  %.1f img/s  ETA %dm%02ds\n", step,
                    total, bpd, r->img_s, em, es);
    }
    fflush(stderr);
}

static int due(int64_t every, long step)
{
    return every > 0 && step % every == 0;
}

static int end_of_epoch(void *ctx, fg_trainer *t, long ended)
{
    train_run *r = ctx;
    const fg_train_spec *s = &r->cfg->train;
    if (s->test_every == 0 || r->plan.epochs) {
        fg_bpd_summary sm;
        double tb = test_bpd(r, &sm);
        char when[48];
        snprintf(when, sizeof when, "epoch %ld", ended);
        report_test(r, when, tb, &sm);
        fprintf(r->metrics, "%ld,%ld,,%.6f,,,%.2f,,,,,\n", t->step, ended, tb, t->elapsed);
        fflush(r->metrics);
    }
    if (s->sample_every == 0 && write_samples(r) != FG_OK)
        return FG_ERR;
    if (s->checkpoint_every == 0 && train_run_save(r) != FG_OK)
        return FG_ERR;
    return FG_OK;
}

/* The guard judged the step an outlier: what, and what it did. */
static void report_rejection(const fg_step_report *rep)
{
    if (!dist_is_root())
        return;
    int v = rep->guard_verdict;
    const char *what = v == FG_GUARD_LOSS ? "loss" : v == FG_GUARD_NORM
                       ? "gradient norm" : "loss and gradient norm";
    fprintf(stderr, "%sstep %ld: %s far above recent steps (%.4g bits/dim, gradient norm "
            "%.4g); update skipped%s\n", isatty(2) ? "\n" : "", rep->step, what, rep->metric,
            rep->grad_norm, rep->guard_event & FG_GUARDED_ROLLED_BACK
            ? ", the one before undone" : "");
    if (rep->guard_event & FG_GUARDED_RESTARTED)
        fprintf(stderr, "step %ld: too many outliers in a row; the guard starts its "
                "statistics afresh\n", rep->step);
}

void train_run_guard_summary(const train_run *r)
{
    if (!r->tr.guard || !dist_is_root())
        return;
    const fg_step_guard *g = &r->tr.guard->guard;
    fprintf(stderr, "guard: %lld step%s skipped (%lld for the loss, %lld for the gradient "
            "norm), %ld rolled back, %lld restart%s\n", (long long)g->skipped,
            g->skipped == 1 ? "" : "s", (long long)g->by_loss, (long long)g->by_norm,
            r->tr.guard->rolled_back, (long long)g->restarts, g->restarts == 1 ? "" : "s");
}

static int after_step(void *ctx, fg_trainer *t, const fg_step_report *rep)
{
    train_run *r = ctx;
    const fg_train_spec *s = &r->cfg->train;
    if (rep->outcome == FG_STEP_FAILED)
        return fg_error("step %ld: %s; stopping without writing a checkpoint, the last good "
                        "one is kept. Try a lower lr, more warmup, grad_clip or "
                        "--skip-nonfinite N", t->step + 1, rep->why);
    if (rep->outcome == FG_STEP_SKIPPED) {
        fprintf(stderr, "step %ld: %s; batch skipped (%ld of %ld allowed)\n", t->step + 1,
                rep->why, t->skipped, t->o.skip_nonfinite);
        return FG_OK;
    }
    if (rep->outcome == FG_STEP_REJECTED)
        report_rejection(rep);
    double img_s = rep->images / (rep->seconds > 1e-9 ? rep->seconds : 1e-9);
    r->img_s = r->img_s == 0 ? img_s : 0.9 * r->img_s + 0.1 * img_s;
    double tb = NAN;
    int last = t->step == r->plan.total_steps;
    if (due(s->test_every, t->step) || (last && !r->plan.epochs && s->test_every > 0)) {
        fg_bpd_summary sm;
        tb = test_bpd(r, &sm);
        char when[48];
        snprintf(when, sizeof when, "%sstep %ld", isatty(2) ? "\n" : "", t->step);
        report_test(r, when, tb, &sm);
    }
    fprintf(r->metrics, "%ld,%ld,%.6f,", t->step, r->it.epoch, rep->metric);
    if (isfinite(tb))
        fprintf(r->metrics, "%.6f", tb);
    fprintf(r->metrics, ",%.6g,%.2f,%.2f,%.6g,%.6g,%d,", rep->lr, img_s, t->elapsed,
            rep->grad_norm, rep->clip, rep->guard_event);
    /* Inversion's float drift, every FG_INVERT_DRIFT_EVERY steps (see
     * flows/multiscale_invert.c; empty in store mode). */
    const fg_invert_stats *inv = &r->batches.invert;
    if (r->batches.memory == FG_MEMORY_INVERT && (t->step == 1 || due(FG_INVERT_DRIFT_EVERY, t->step))) {
        fprintf(r->metrics, "%.3g,%.3g", inv->drift, inv->residual);
        if (!(inv->drift <= FG_INVERT_DRIFT_WARN) && dist_is_root())
            fprintf(stderr, "step %ld: the inputs recomputed by inversion differ from the "
                    "forward's by up to %.3g (above %g): gradients are less exact than with "
                    "--memory store; an ill-conditioned layer? ('flowgrad check')\n", t->step,
                    inv->drift, FG_INVERT_DRIFT_WARN);
    } else
        fputc(',', r->metrics);
    fputc('\n', r->metrics);
    fflush(r->metrics);
    progress(r, rep->metric, last);
    if ((due(s->sample_every, t->step) || (last && s->sample_every > 0)) &&
        write_samples(r) != FG_OK)
        return FG_ERR;
    if ((due(s->checkpoint_every, t->step) || (last && s->checkpoint_every > 0)) &&
        train_run_save(r) != FG_OK)
        return FG_ERR;
    return FG_OK;
}

static fg_var *batch_loss(void *ctx, fg_graph *g, const fg_batch *b, double *bpd)
{
    train_run *r = ctx;
    trace_set_step(b->step + 1);
    fg_var *x = fg_model_batch_input(&r->batches, g, b);
    if (b->step + 1 == r->inject)
        for (size_t i = 0; i < fg_numel(&x->t); i++)
            x->t.data[i] *= 30.0f;
    return fg_model_loss_ex(r->model, g, x, fg_model_batch_labels(&r->batches, b), bpd,
                            r->batches.memory, &r->batches.invert);
}

static int can_split(void *ctx, fg_trainer *t)
{
    (void)t;
    train_run *r = ctx;
    /* The trace wants one forward at a time, in layer order. */
    return !trace_active() && fg_model_batches_can_split(&r->batches);
}

static int stop_requested(void *ctx, fg_trainer *t)
{
    train_run *r = ctx;
    int sig = guard_stop_signal();
    return sig ? sig : t->step == r->stop_after ? SIGTERM : 0;
}

/* OUT/curves.png from the metrics just written, however the run ended (a
 * diverged run's curves show how). A figure is no reason to fail a run:
 * without gnuplot it is a warning, and the run's own error stays the one
 * reported. */
static void draw_curves(train_run *r)
{
    if (!dist_is_root())
        return;
    char why[1024], csv[4200];
    snprintf(why, sizeof why, "%s", fg_last_error());
    snprintf(csv, sizeof csv, "%s/metrics.csv", r->out);
    if (plot_curves(csv, out_file(r, "curves.png"), r->out, NULL) != FG_OK)
        fprintf(stderr, "flowgrad train: warning: %s\n", fg_last_error());
    fg_error("%s", why);
}

int train_run_loop(train_run *r)
{
    r->metrics = fopen(dist_is_root() ? out_file(r, "metrics.csv") : "/dev/null",
                       r->tr.step > 0 ? "a" : "w");
    if (!r->metrics)
        return fg_error("%s: cannot open for writing", r->path);
    /* A resumed run appends, unless its --out is new: then the table
     * starts with its header too, so that plots and tools can read it. */
    fseek(r->metrics, 0, SEEK_END);
    if (ftell(r->metrics) == 0)
        fprintf(r->metrics, "step,epoch,train_bpd,test_bpd,lr,img_per_s,elapsed_s,grad_norm,"
                "clip,guard,invert_drift,invert_residual\n");
    fg_model_batches_init(&r->batches, r->model, &r->train, r->cfg->train.batch,
                          r->cfg->train.seed);
    r->batches.memory = r->cfg->train.memory;
    r->batches.flip = r->cfg->train.flip;
    fg_train_hooks h = {.ctx = r, .loss = batch_loss, .after_step = after_step,
                        .end_of_epoch = end_of_epoch, .stop = stop_requested,
                        .can_split = can_split};
    int rc = fg_train_run(&r->tr, &r->it, &r->plan, &h, &r->stopped_by);
    fg_model_batches_free(&r->batches);
    if (rc == FG_OK && r->stopped_by) {
        if ((rc = train_run_save(r)) == FG_OK && dist_is_root())
            fprintf(stderr, "\nstopped by signal %d after step %ld; checkpoint written to %s\n",
                    r->stopped_by, r->tr.step, r->path);
    }
    /* A step budget that ends inside an epoch still leaves a checkpoint. */
    const fg_train_spec *s = &r->cfg->train;
    if (rc == FG_OK && !r->stopped_by && !r->plan.epochs && s->checkpoint_every == 0)
        rc = train_run_save(r);
    if (rc == FG_OK && !r->stopped_by && !r->plan.epochs && s->sample_every == 0)
        rc = write_samples(r);
    fclose(r->metrics);
    draw_curves(r);
    return rc;
}
