/* One training step on a batch split between threads (see
 * fg_trainer_step_parts in nn/trainer.h).
 *
 * Part 0 runs on the trainer's own graph and adds its gradients straight
 * into the parameters' buffers; every other part has a graph that keeps
 * its leaf gradients apart (fg_graph_keep_leaf_grads), added in after the
 * backward passes, in part order, so the result does not depend on which
 * thread finished first. */
#include "nn/trainer_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

/* The parts of one step: their losses, weights and what went wrong. */
typedef struct parts {
    fg_trainer *t;
    int count;
    fg_var **loss;
    float *weight;          /* the part's share of the batch */
    double *metric;
    char (*error)[256];     /* each part's fg_last_error after its forward */
} parts;

static fg_graph *part_graph(fg_trainer *t, int p)
{
    return p == 0 ? t->g : t->part_graphs[p - 1];
}

fg_graph *fg_trainer_part_graph(fg_trainer *t, int p)
{
    if (p < 0 || p > t->n_part_graphs)
        return NULL;
    return part_graph(t, p);
}

int fg_trainer_batch_parts(const fg_trainer *t, int n)
{
    int want = t->o.batch_parts > 0 ? t->o.batch_parts : fg_get_threads();
    /* Inside a parallel region the caller already splits the work. */
    if (omp_get_level() > 0)
        want = 1;
    return want < n ? want : n;
}

static void ensure_graphs(fg_trainer *t, int count)
{
    if (t->n_part_graphs >= count - 1)
        return;
    /* The trainer's graph, part 0 from now on, has held whole batches:
     * what a part does not need goes back, or the process would keep a
     * whole batch's memory on top of the parts'. */
    if (t->n_part_graphs == 0)
        fg_graph_trim(t->g);
    t->part_graphs = fg_xrealloc(t->part_graphs, (size_t)(count - 1) * sizeof *t->part_graphs,
                                 "part graphs");
    for (int p = t->n_part_graphs; p < count - 1; p++) {
        t->part_graphs[p] = fg_graph_create();
        fg_graph_keep_leaf_grads(t->part_graphs[p], 1);
    }
    t->n_part_graphs = count - 1;
}

static void backward_parts(void *ctx)
{
    parts *s = ctx;
    #pragma omp parallel for schedule(static, 1) num_threads(s->count)
    for (int p = 0; p < s->count; p++)
        fg_backward_with(part_graph(s->t, p), s->loss[p], &s->weight[p]);
    for (int p = 1; p < s->count; p++)
        fg_graph_add_leaf_grads(part_graph(s->t, p));
}

typedef struct whole {
    fg_part_loss_fn fn;
    void *ctx;
    int n;
} whole;

static fg_var *whole_loss(void *ctx, fg_graph *g, double *metric)
{
    whole *w = ctx;
    return w->fn(w->ctx, g, 0, w->n, metric);
}

fg_step_outcome fg_trainer_step_parts(fg_trainer *t, fg_part_loss_fn fn, void *ctx, int n,
                                      fg_step_report *r)
{
    int count = fg_trainer_batch_parts(t, n);
    if (count <= 1) {
        whole w = {fn, ctx, n};
        return fg_trainer_step(t, whole_loss, &w, r);
    }
    double t0 = fg_trainer_now();
    memset(r, 0, sizeof *r);
    ensure_graphs(t, count);
    parts s = {t, count, fg_xcalloc((size_t)count, sizeof *s.loss, "part losses"),
               fg_xcalloc((size_t)count, sizeof *s.weight, "part weights"),
               fg_xcalloc((size_t)count, sizeof *s.metric, "part metrics"),
               fg_xcalloc((size_t)count, sizeof *s.error, "part errors")};
    #pragma omp parallel for schedule(static, 1) num_threads(count)
    for (int p = 0; p < count; p++) {
        int first = (int)((long)n * p / count), last = (int)((long)n * (p + 1) / count);
        fg_graph *g = part_graph(t, p);
        fg_graph_reset(g);
        fg_clear_error();
        s.loss[p] = fn(ctx, g, first, last - first, &s.metric[p]);
        s.weight[p] = (float)(last - first) / (float)n;
        snprintf(s.error[p], sizeof s.error[p], "%s", fg_last_error());
    }
    double loss = 0, metric = 0;
    int first_bad = -1;
    for (int p = 0; p < count; p++) {
        loss += s.weight[p] * (double)s.loss[p]->t.data[0];
        metric += s.weight[p] * s.metric[p];
        if (first_bad < 0 && !isfinite(s.loss[p]->t.data[0]))
            first_bad = p;
    }
    /* What a layer of the first broken part said, for the step's message. */
    fg_clear_error();
    if (first_bad >= 0 && s.error[first_bad][0])
        fg_error("%s", s.error[first_bad]);
    fg_step_outcome out = fg_trainer_finish_step(t, loss, metric, backward_parts, &s, t0, r);
    for (int p = 0; p < count; p++)
        fg_graph_reset(part_graph(t, p));
    free(s.loss);
    free(s.weight);
    free(s.metric);
    free(s.error);
    return out;
}
