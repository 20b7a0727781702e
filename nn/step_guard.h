/* The step guard: outlier steps of a training run detected from running
 * statistics of the loss and the gradient norm, skipped or undone from an
 * in-memory copy, and a clipping threshold that follows the measured norms.
 * fg_trainer_step (nn/trainer.h) uses it when its options ask for it. */
#ifndef FLOWGRAD_NN_STEP_GUARD_H
#define FLOWGRAD_NN_STEP_GUARD_H

#include "nn/io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Step guard: an outlier step is one whose loss or gradient norm lies more
 * than `threshold` robust sigmas above the recent level: for the log norm,
 * the median and 1.4826 MAD of the last `window` accepted steps; for the
 * loss, the median of the last 5 and the spread of successive differences
 * over the window (a trend does not widen it). Nothing is judged before
 * `warmup` steps were accepted. The training loop skips or undoes a
 * rejected step; the guard judges, counts, and keeps a learning-rate factor
 * that each rejection halves (down to 1/64) and each accepted step raises
 * by 10 % (up to 1): when an undone step is retried from the same weights,
 * a smaller step gets out of a spot where the full one overshoots again and
 * again. clip_factor > 0 gives a clipping threshold of clip_factor times
 * the median gradient norm of the window. */
#define FG_GUARD_MAX_WINDOW 4096
enum { FG_GUARD_ACCEPT = 0, FG_GUARD_LOSS = 1, FG_GUARD_NORM = 2 };
typedef struct fg_step_guard {
    int window, warmup;
    double threshold, clip_factor;
    int n, head;                         /* values held, next slot */
    float loss[FG_GUARD_MAX_WINDOW];     /* accepted steps, ring buffers */
    float log_norm[FG_GUARD_MAX_WINDOW];
    int64_t run;                         /* rejections since the last accept */
    int64_t skipped, by_loss, by_norm;   /* totals; a step may count in both */
    int64_t restarts;                    /* fg_step_guard_restart calls */
    float lr_scale;                      /* multiplies the learning rate */
} fg_step_guard;
FG_API void fg_step_guard_init(fg_step_guard *g, int window, int warmup, double threshold,
                        double clip_factor);
/* FG_GUARD_ACCEPT, or FG_GUARD_LOSS | FG_GUARD_NORM naming what is an
 * outlier. Records nothing. */
FG_API int fg_step_guard_judge(const fg_step_guard *g, double loss, double norm);
FG_API void fg_step_guard_accept(fg_step_guard *g, double loss, double norm);
FG_API void fg_step_guard_reject(fg_step_guard *g, int verdict);
/* Clipping threshold for the next step; 0 (none) in warmup or when off. */
FG_API double fg_step_guard_clip(const fg_step_guard *g);
/* Forgets the window (a new warmup): for when the statistics no longer
 * describe the run, after many rejections in a row. */
FG_API void fg_step_guard_restart(fg_step_guard *g);
/* The whole state as int64 (floats by their bits), for checkpoints. */
FG_API int fg_step_guard_state_len(const fg_step_guard *g);
FG_API void fg_step_guard_save(const fg_step_guard *g, int64_t *s);
/* FG_ERR naming train.guard unless s fits g's window and holds finite
 * values and counters in range; g is untouched then. */
FG_API int fg_step_guard_load(fg_step_guard *g, const int64_t *s, int n);

/* In-memory copy of every value of a state list (parameters and buffers)
 * and of one counter (the optimizer's step). take overwrites the copy;
 * restore returns 1 after copying it back, once, or 0 when there is no
 * copy (none taken, or already restored). Entries are borrowed. */
typedef struct fg_snapshot {
    int n;
    fg_var **vars;
    float **copy;
    long *counter, saved_counter;
    int valid;
} fg_snapshot;
FG_API void fg_snapshot_init(fg_snapshot *s, const fg_state_list *l, long *counter);
FG_API void fg_snapshot_free(fg_snapshot *s);
FG_API void fg_snapshot_take(fg_snapshot *s);
FG_API int fg_snapshot_restore(fg_snapshot *s);

/* ---------------------------------------------------------------- guarded steps
 * The step guard with what a training loop needs around it (nn/guarded_step.c):
 * per step, after backward,
 *     clip  = fg_guarded_clip(&g, grad_clip);      before judging
 *     event = fg_guarded_judge(&g, loss, norm, &verdict);
 *     if (event == FG_GUARDED_TAKEN) { clip gradients; optimizer step; EMA }
 * A judged outlier is skipped; a loss outlier also undoes the update before
 * it from an in-memory copy of the model's state, the optimizer's moments
 * and step, and the EMA (NULL: none). fg_guarded_checkpointed after each
 * checkpoint write; save/load the "train.guard" entry with the checkpoint. */
enum { FG_GUARDED_TAKEN = 0, FG_GUARDED_SKIPPED = 1, FG_GUARDED_ROLLED_BACK = 2,
       FG_GUARDED_RESTARTED = 4 /* or-ed in: 20 rejections in a row, a fresh window */ };
typedef struct fg_guarded {
    fg_step_guard guard;
    fg_snapshot undo;
    long rolled_back;          /* by this process */
} fg_guarded;
FG_API void fg_guarded_init(fg_guarded *g, const fg_state_list *model, fg_optim *o, fg_ema *ema,
                     int window, double threshold, double clip_factor);
FG_API void fg_guarded_free(fg_guarded *g);
/* The lower of fixed (0: none) and the guard's clip_factor x median norm. */
FG_API double fg_guarded_clip(const fg_guarded *g, double fixed);
/* FG_STEP_*; *verdict (may be NULL) gets fg_step_guard_judge's answer. */
FG_API int fg_guarded_judge(fg_guarded *g, double loss, double norm, int *verdict);
FG_API void fg_guarded_checkpointed(fg_guarded *g);
FG_API void fg_guarded_save(const fg_guarded *g, fg_safetensors *st);
/* FG_OK also when st has no "train.guard" (a checkpoint of a run without
 * the guard): the window then starts empty. */
FG_API int fg_guarded_load(fg_guarded *g, const fg_safetensors *st);

#ifdef __cplusplus
}
#endif
#endif
