/* A flow over vectors, built and trained from C without a config: layers
 * that take batches of D-vectors (N, D) (actnorm, invconv, permute,
 * scale_diag, dense couplings, MAF, IAF; flows/flow.h) under a diagonal
 * Gaussian prior (standard, learned, or shifted per class), its state list
 * and the library trainer (nn/trainer.h). Points are n x D floats,
 * row-major; labels, for a class-conditional prior, n ints in [0, classes).
 * A conditional flow p(x | c) (cond_channels = Cc > 0) takes a condition
 * per point, n x Cc floats (a continuous variable, a one-hot class, any
 * vector): it reaches every layer made with the same cond_channels (dense
 * couplings' conditioners) and the learned prior, through the _cond forms;
 * the forms without _cond are those with no condition.
 * State names are the multi-scale container's: "flow.<i>.<kind>..." for
 * the layers, "prior..." for the prior. */
#ifndef FLOWGRAD_MODELS_VECTOR_FLOW_H
#define FLOWGRAD_MODELS_VECTOR_FLOW_H

#include "nn/trainer.h"
#include "flows/flow.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fg_vector_flow_options {
    int dim;                   /* D */
    fg_flow **layers;          /* ownership passes to the model, on FG_ERR too */
    int n_layers;
    int learn_prior;           /* 1: the prior's mean and scale are learned */
    int n_classes;             /* > 0: the prior's mean and scale depend on the class */
    fg_trainer_options train;  /* optimizer, rate and schedule of the trainer */
    int cond_channels;         /* > 0: Cc, a conditional flow (needs learn_prior) */
} fg_vector_flow_options;

typedef struct fg_vector_flow {
    fg_multiscale *flow;       /* the layers and the prior over (N, D) */
    int dim, n_classes;
    int cond_channels;
    fg_state_list state;
    fg_trainer tr;
    fg_graph *g;               /* the trainer's */
} fg_vector_flow;

/* FG_ERR with fg_error naming the layer and the shapes when a layer cannot
 * take (N, D) vectors, or a layer is missing (NULL from its create call,
 * whose message is kept). */
FG_API int fg_vector_flow_init(fg_vector_flow *m, const fg_vector_flow_options *o);
FG_API void fg_vector_flow_free(fg_vector_flow *m);   /* a zeroed or freed model is fine */
/* x (n x D) as an (n, D) constant on g that reads x in place. */
FG_API fg_var *fg_vector_flow_points(const fg_vector_flow *m, fg_graph *g, const float *x,
                                     int n);
/* FG_ERR naming the label unless y suits the prior: NULL for an
 * unconditional one, n labels in [0, n_classes) for a class-conditional one. */
FG_API int fg_vector_flow_check_labels(const fg_vector_flow *m, const int *y, int n);
/* One trainer step on -mean log p(x | y) over the n points. FG_ERR when the
 * labels are bad or the step failed (r->why and fg_last_error say why);
 * *r (may be NULL) gets the step's report, its loss NaN for bad labels. */
FG_API int fg_vector_flow_train_step(fg_vector_flow *m, const float *x, const int *y, int n,
                                     fg_step_report *r);
/* log p(x | y) into out[n], without a tape, in batches; FG_ERR for bad
 * labels. */
FG_API int fg_vector_flow_log_prob(fg_vector_flow *m, const float *x, const int *y, int n,
                                   double *out);
/* n samples at the temperature into x (n x D); FG_ERR for bad labels. */
FG_API int fg_vector_flow_sample(fg_vector_flow *m, int n, const int *y, float temperature,
                                 fg_rng *rng, float *x);
/* The same given the condition c (n x Cc floats, row-major): FG_ERR
 * unless c is given exactly when the flow is conditional. */
FG_API int fg_vector_flow_train_step_cond(fg_vector_flow *m, const float *x, const int *y,
                                          const float *c, int n, fg_step_report *r);
FG_API int fg_vector_flow_log_prob_cond(fg_vector_flow *m, const float *x, const int *y,
                                        const float *c, int n, double *out);
FG_API int fg_vector_flow_sample_cond(fg_vector_flow *m, int n, const int *y, const float *c,
                                      float temperature, fg_rng *rng, float *x);

#ifdef __cplusplus
}
#endif
#endif
