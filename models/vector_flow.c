/* A flow over vectors with its trainer: the multi-scale container without
 * splits, whose input is (N, D), and the library trainer over its state. */
#include "models/vector_flow.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int fg_vector_flow_init(fg_vector_flow *m, const fg_vector_flow_options *o)
{
    memset(m, 0, sizeof *m);
    int missing = -1;
    for (int i = 0; i < o->n_layers && missing < 0; i++)
        if (!o->layers[i])
            missing = i;
    if (o->dim < 1 || o->n_layers < 0 || missing >= 0 || o->n_classes < 0 ||
        o->cond_channels < 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", fg_last_error());
        for (int i = 0; i < o->n_layers; i++)
            fg_flow_destroy(o->layers[i]);
        if (missing >= 0)
            return fg_error("vector_flow: layer %d was not created: %s", missing, why);
        return fg_error("vector_flow: dimension %d, %d layers, %d classes and %d condition "
                        "channels: the dimension must be positive, the counts not negative",
                        o->dim, o->n_layers, o->n_classes, o->cond_channels);
    }
    fg_multiscale_options mo = {o->layers, o->n_layers, {2, {1, o->dim}}, o->learn_prior != 0,
                                o->n_classes, o->cond_channels};
    if (fg_multiscale_create(&mo, &m->flow) != FG_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", fg_last_error());
        return fg_error("vector_flow: %s", why);
    }
    m->dim = o->dim;
    m->n_classes = o->n_classes;
    m->cond_channels = o->cond_channels;
    fg_state_list_init(&m->state);
    fg_multiscale_visit(m->flow, NULL, fg_state_list_add, &m->state);
    fg_trainer_init(&m->tr, &m->state, &o->train);
    m->g = m->tr.g;
    return FG_OK;
}

void fg_vector_flow_free(fg_vector_flow *m)
{
    if (!m->flow)
        return;
    fg_trainer_free(&m->tr);
    fg_state_list_free(&m->state);
    fg_multiscale_destroy(m->flow);
    memset(m, 0, sizeof *m);
}

fg_var *fg_vector_flow_points(const fg_vector_flow *m, fg_graph *g, const float *x, int n)
{
    int shape[2] = {n, m->dim};
    /* The constant only reads the buffer. */
    return fg_const_wrap(g, (float *)x, 2, shape);
}

int fg_vector_flow_check_labels(const fg_vector_flow *m, const int *y, int n)
{
    if (!m->n_classes)
        return y ? fg_error("vector_flow: labels given to a flow without classes") : FG_OK;
    if (!y)
        return fg_error("vector_flow: the prior depends on the class (%d classes); give a "
                        "label per point", m->n_classes);
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= m->n_classes)
            return fg_error("vector_flow: label %d of point %d is outside [0, %d)", y[i], i,
                            m->n_classes);
    return FG_OK;
}

/* FG_ERR unless c is given exactly when the flow is conditional. */
static int check_condition(const fg_vector_flow *m, const float *c)
{
    if (!m->cond_channels)
        return c ? fg_error("vector_flow: a condition given to a flow without one") : FG_OK;
    if (!c)
        return fg_error("vector_flow: the flow is conditional (%d condition channels); give "
                        "a condition per point", m->cond_channels);
    return FG_OK;
}

static int check_inputs(const fg_vector_flow *m, const int *y, const float *c, int n)
{
    if (fg_vector_flow_check_labels(m, y, n) != FG_OK)
        return FG_ERR;
    return check_condition(m, c);
}

/* c (n x Cc) as an (n, Cc) constant that reads c in place, or NULL. */
static fg_var *condition_var(const fg_vector_flow *m, fg_graph *g, const float *c, int n)
{
    if (!c)
        return NULL;
    int shape[2] = {n, m->cond_channels};
    return fg_const_wrap(g, (float *)c, 2, shape);
}

typedef struct points_loss {
    fg_vector_flow *m;
    const float *x;
    const int *y;
    const float *c;
    int n;
} points_loss;

static fg_var *nll(void *ctx, fg_graph *g, double *metric)
{
    points_loss *p = ctx;
    fg_var *lp = fg_multiscale_log_prob_cond(p->m->flow, g,
                                             fg_vector_flow_points(p->m, g, p->x, p->n), p->y,
                                             condition_var(p->m, g, p->c, p->n));
    fg_var *loss = fg_neg(g, fg_mean(g, lp));
    *metric = loss->t.data[0];
    return loss;
}

int fg_vector_flow_train_step(fg_vector_flow *m, const float *x, const int *y, int n,
                              fg_step_report *r)
{
    return fg_vector_flow_train_step_cond(m, x, y, NULL, n, r);
}

int fg_vector_flow_train_step_cond(fg_vector_flow *m, const float *x, const int *y,
                                   const float *c, int n, fg_step_report *r)
{
    fg_step_report own;
    if (!r)
        r = &own;
    if (check_inputs(m, y, c, n) != FG_OK) {
        memset(r, 0, sizeof *r);
        r->outcome = FG_STEP_FAILED;
        r->loss = r->metric = NAN;
        snprintf(r->why, sizeof r->why, "%s", fg_last_error());
        return FG_ERR;
    }
    points_loss p = {m, x, y, c, n};
    return fg_trainer_step(&m->tr, nll, &p, r) == FG_STEP_FAILED ? FG_ERR : FG_OK;
}

/* Points per pass of log_prob: a bound on the arena a pass needs. */
enum { EVAL_CHUNK = 4096 };

int fg_vector_flow_log_prob(fg_vector_flow *m, const float *x, const int *y, int n,
                            double *out)
{
    return fg_vector_flow_log_prob_cond(m, x, y, NULL, n, out);
}

int fg_vector_flow_log_prob_cond(fg_vector_flow *m, const float *x, const int *y,
                                 const float *c, int n, double *out)
{
    if (check_inputs(m, y, c, n) != FG_OK)
        return FG_ERR;
    int was = fg_set_grad_enabled(m->g, 0);
    for (int s = 0; s < n; s += EVAL_CHUNK) {
        int k = n - s < EVAL_CHUNK ? n - s : EVAL_CHUNK;
        fg_var *lp = fg_multiscale_log_prob_cond(
            m->flow, m->g, fg_vector_flow_points(m, m->g, x + (size_t)m->dim * s, k),
            y ? y + s : NULL,
            condition_var(m, m->g, c ? c + (size_t)m->cond_channels * s : NULL, k));
        for (int i = 0; i < k; i++)
            out[s + i] = lp->t.data[i];
        fg_graph_reset(m->g);
    }
    fg_set_grad_enabled(m->g, was);
    return FG_OK;
}

int fg_vector_flow_sample(fg_vector_flow *m, int n, const int *y, float temperature,
                          fg_rng *rng, float *x)
{
    return fg_vector_flow_sample_cond(m, n, y, NULL, temperature, rng, x);
}

int fg_vector_flow_sample_cond(fg_vector_flow *m, int n, const int *y, const float *c,
                               float temperature, fg_rng *rng, float *x)
{
    if (check_inputs(m, y, c, n) != FG_OK)
        return FG_ERR;
    fg_var *s = fg_multiscale_sample_cond(m->flow, m->g, n, y, condition_var(m, m->g, c, n),
                                          temperature, rng);
    memcpy(x, s->t.data, (size_t)m->dim * n * sizeof *x);
    fg_graph_reset(m->g);
    return FG_OK;
}
