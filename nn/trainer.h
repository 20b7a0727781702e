/* flowgrad trainer: the training step and the loop around it, for any
 * model that exposes its state as an fg_state_list and its loss as a graph.
 *
 * One step is
 *     loss -> backward -> gradient all-reduce (MPI) -> finite check
 *          -> clipping -> optimizer -> EMA
 * and nothing else: what a run prints, writes or evaluates between steps is
 * the caller's, through the hooks of fg_train_run. Losses and metrics are
 * averaged over ranks before any decision, so that every rank takes the
 * same one (skip, stop, step). */
#ifndef FLOWGRAD_NN_TRAINER_H
#define FLOWGRAD_NN_TRAINER_H

#include "nn/io.h"
#include "nn/distributed.h"
#include "nn/step_guard.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fg_trainer_options {
    fg_optim_kind optimizer;
    double beta1, beta2, eps;  /* 0: Adam's defaults 0.9, 0.999, 1e-8 */
    double lr;
    long warmup;               /* linear warmup steps (fg_lr_warmup) */
    fg_schedule_kind schedule; /* after warmup: constant, cosine or linear decay */
    long total_steps;          /* the decay's horizon: the run's last step */
    double grad_clip;          /* global norm; 0 clips nothing */
    /* The step guard (nn/step_guard.h): 0 off. Outliers are judged on the
     * loss and the gradient norm over guard_window accepted steps, at
     * guard_threshold robust sigmas; clip_factor > 0 clips at that times
     * the window's median norm (the lower of it and grad_clip). */
    int guard;
    int guard_window;
    double guard_threshold;
    double clip_factor;
    double ema;                /* decay of the weight averages; 0: none */
    long skip_nonfinite;       /* bad batches to skip before a step fails */
    /* Called after backward with the averaged gradients, before anything
     * judges or clips them (debugging, tracing); NULL: none. */
    void (*inspect_gradients)(void *ctx, const fg_state_list *state);
    void *inspect_ctx;
    /* fg_trainer_step_parts: the parts a batch is split into, each
     * computed whole on one thread; 0: one per thread (fg_get_threads),
     * 1: none. */
    int batch_parts;
} fg_trainer_options;

typedef struct fg_trainer {
    fg_trainer_options o;
    const fg_state_list *state; /* borrowed */
    fg_optim optim;
    fg_ema ema;
    int has_ema;
    fg_graph *g;               /* the graph steps build; free between steps */
    fg_guarded *guard;         /* NULL when the options ask for none */
    long step;                 /* updates taken, carried across resumes */
    long skipped;              /* bad batches skipped so far */
    double elapsed;            /* seconds inside steps, carried across resumes */
    fg_graph **part_graphs;    /* parts 1, 2, ... of a split batch (part 0: g) */
    int n_part_graphs;
} fg_trainer;

/* What one call of fg_trainer_step did. FG_STEP_REJECTED: the guard judged
 * the step an outlier; it counts as a step (the schedule moves on) but
 * updates nothing, and a loss outlier also undid the update before it. */
typedef enum { FG_STEP_TAKEN = 0, FG_STEP_SKIPPED = 1, FG_STEP_FAILED = 2,
               FG_STEP_REJECTED = 3 } fg_step_outcome;
typedef struct fg_step_report {
    fg_step_outcome outcome;
    long step;                 /* the trainer's step after the call */
    double loss, metric;       /* means over ranks */
    double lr, grad_norm;      /* norm before clipping */
    double clip;               /* the clipping threshold used; 0: none */
    int guard_event;           /* FG_GUARDED_* flags (0: taken) */
    int guard_verdict;         /* FG_GUARD_LOSS | FG_GUARD_NORM of a rejection */
    double seconds;
    int images;                /* the global batch (set by fg_train_run) */
    char why[512];             /* a skipped or failed batch: what was not finite */
} fg_step_report;

/* Builds the loss of one batch on g (the trainer resets g before); *metric
 * receives a figure to report beside it (bits/dim for flows). */
typedef fg_var *(*fg_step_loss_fn)(void *ctx, fg_graph *g, double *metric);

FG_API void fg_trainer_init(fg_trainer *t, const fg_state_list *state, const fg_trainer_options *o);
FG_API void fg_trainer_free(fg_trainer *t);
/* The learning rate of the update numbered step (1-based): the one place
 * where it is computed (warmup, then the schedule; the guard's factor,
 * which rejections lower, multiplies it). */
FG_API double fg_trainer_lr(const fg_trainer *t, long step);
/* One step. FG_STEP_SKIPPED leaves the weights as they were (a bad batch
 * within skip_nonfinite); FG_STEP_FAILED leaves them too and says why in
 * r->why and fg_last_error ("step N: the loss is NaN ..."). */
FG_API fg_step_outcome fg_trainer_step(fg_trainer *t, fg_step_loss_fn loss, void *ctx, fg_step_report *r);
/* The loss of images [first, first + n) of a step's batch, built on g, as
 * a mean over them; *metric receives their figure (a mean too). */
typedef fg_var *(*fg_part_loss_fn)(void *ctx, fg_graph *g, int first, int n, double *metric);
/* One step on a batch of n images split into parts (o.batch_parts), each
 * part's forward and backward computed at once with the others, one
 * thread each, every kernel of a part on its thread. Two threads keep
 * busy through the whole step this way, where splitting each kernel
 * between them leaves one waiting at every small op. The losses and
 * gradients of the parts are weighted by their share of the batch and
 * added, so the step is fg_trainer_step's on the whole batch up to float
 * rounding. The parts run the model at once: its forward must not change
 * its own state (data-dependent initialization does; take that step
 * whole). With one part (one thread, a batch of one, or called from a
 * parallel region) this is fg_trainer_step on the whole batch. */
FG_API fg_step_outcome fg_trainer_step_parts(fg_trainer *t, fg_part_loss_fn loss, void *ctx, int n,
                                             fg_step_report *r);
/* The number of parts fg_trainer_step_parts splits a batch of n into. */
FG_API int fg_trainer_batch_parts(const fg_trainer *t, int n);
/* The graph part p of a split batch runs on (0: the trainer's own), or
 * NULL where no step has used that part yet. Sampling or evaluating between
 * steps on these graphs reuses the pages the steps touched, where a new
 * graph would fault in its memory again and add it to the peak. Reset it
 * before and after use. */
FG_API fg_graph *fg_trainer_part_graph(fg_trainer *t, int p);
/* Exchanges the weights and their averages (no-op without EMA); call again
 * to swap back. Evaluation and sampling between steps use the averages. */
FG_API void fg_trainer_swap_ema(fg_trainer *t);
/* The optimizer's moments and the averages as one list of buffers, for
 * checkpoints and broadcasts. l must be fresh from fg_state_list_init. */
FG_API void fg_trainer_visit_state(fg_trainer *t, fg_state_list *l);
/* Gives every rank rank 0's weights, moments and averages. */
FG_API void fg_trainer_broadcast(fg_trainer *t);

/* ---------------------------------------------------------------- the loop
 * fg_train_run draws global batches from an iterator, hands each rank its
 * contiguous shard, steps, and calls the hooks. Any hook may be NULL; a hook
 * returning FG_ERR ends the run with that error. */
typedef struct fg_batch {
    const int *idx;            /* this rank's images */
    int n;                     /* how many */
    int first;                 /* their offset in the global batch */
    int global_n;              /* the global batch */
    long step;                 /* updates taken before this batch */
    int offset;                /* idx[0]'s place among this rank's images: 0
                                  unless the batch is computed in parts */
} fg_batch;

typedef struct fg_train_hooks {
    void *ctx;
    fg_var *(*loss)(void *ctx, fg_graph *g, const fg_batch *b, double *metric);
    /* After every call of fg_trainer_step: taken, skipped, or failed (the
     * run then ends with FG_ERR whatever the hook returns; it may reword
     * the message). */
    int (*after_step)(void *ctx, fg_trainer *t, const fg_step_report *r);
    /* At the end of each epoch (ended counts epochs finished). */
    int (*end_of_epoch)(void *ctx, fg_trainer *t, long ended);
    /* After every taken step: a non-zero return (a signal number, say)
     * stops the run after this step, with FG_OK. */
    int (*stop)(void *ctx, fg_trainer *t);
    /* Whether the next batch's loss may be computed in parts at once
     * (fg_trainer_step_parts): the loss hook is then called from several
     * threads, on parts of the batch, and must be safe so. NULL: never. */
    int (*can_split)(void *ctx, fg_trainer *t);
} fg_train_hooks;

typedef struct fg_train_plan {
    long total_steps;          /* stop once the trainer is at this step */
    int epochs;                /* > 0: counted in epochs; the last step is still
                                  followed by the end of its epoch */
} fg_train_plan;

/* Runs until the plan is done, a hook fails or stops it, or a step fails.
 * *stopped_by (may be NULL) receives the stop hook's value, else 0. */
FG_API int fg_train_run(fg_trainer *t, fg_batch_iter *it, const fg_train_plan *p,
                 const fg_train_hooks *h, int *stopped_by);
/* Whether the plan still has work from where the trainer and iterator are. */
FG_API int fg_train_plan_pending(const fg_train_plan *p, const fg_trainer *t, const fg_batch_iter *it);

#ifdef __cplusplus
}
#endif
#endif
