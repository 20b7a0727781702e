/* The prior on the top latent: a diagonal Gaussian, standard by default,
 * optionally learned (Glow's learn_top: a zero conv applied to zeros, so
 * only its bias and logs matter), optionally shifted per class by a
 * zero-initialized linear map of one-hot y, and optionally conditional:
 * the condition of the batch joins the zeros as the conv's input, so the
 * mean and log-std become functions of it (a cINN's conditional base). */
#include "flows/layer.h"

#include <stdlib.h>

static const char kind[] = "prior";

fg_prior *fg_prior_create(const fg_prior_options *o)
{
    if (o->vectors) {
        fg_prior_options image = *o;
        image.height = image.width = 1;
        image.vectors = 0;
        fg_prior *p = fg_prior_create(&image);
        if (p)
            p->vectors = 1;
        return p;
    }
    if (o->channels <= 0 || o->height <= 0 || o->width <= 0) {
        fg_error("prior: latent shape (C, H, W) = (%d, %d, %d) must be positive",
                 o->channels, o->height, o->width);
        return NULL;
    }
    if (o->cond_channels < 0 || (o->cond_channels > 0 && !o->learn_top)) {
        fg_error("prior: a condition of %d channels needs learn_top (the condition reaches "
                 "the prior through the learned conv), and the channels must not be negative",
                 o->cond_channels);
        return NULL;
    }
    if (o->n_classes < 0) {
        fg_error("prior: n_classes must be 0 (unconditional) or positive, got %d",
                 o->n_classes);
        return NULL;
    }
    fg_prior *p = fg_xcalloc(1, sizeof *p, kind);
    p->channels = o->channels;
    p->height = o->height;
    p->width = o->width;
    p->learn_top = o->learn_top != 0;
    p->n_classes = o->n_classes;
    p->cond_channels = o->cond_channels;
    if (p->learn_top)
        fg_zero_conv_init(&p->top, 2 * p->channels + p->cond_channels, 2 * p->channels, 3,
                          3.0f);
    if (p->n_classes)
        fg_linear_init(&p->project_y, p->n_classes, 2 * p->channels, 1, 0.0f, NULL);
    return p;
}

void fg_prior_destroy(fg_prior *p)
{
    if (!p)
        return;
    if (p->learn_top)
        fg_zero_conv_free(&p->top);
    if (p->n_classes)
        fg_linear_free(&p->project_y);
    free(p);
}

/* (n, 2C) per-sample values repeated over H W: (n*2C, 1) x ones (1, HW). */
static fg_var *broadcast_spatial(fg_prior *p, fg_graph *g, fg_var *v, int n)
{
    int hw = p->height * p->width;
    int col[2] = {n * 2 * p->channels, 1}, row[2] = {1, hw};
    int img[4] = {n, 2 * p->channels, p->height, p->width};
    fg_var *ones = fg_const(g, 2, row);
    fg_k_fill((size_t)hw, 1.0f, ones->t.data);
    return fg_reshape(g, fg_matmul(g, fg_reshape(g, v, 2, col), ones, 0, 0), 4, img);
}

void fg_prior_params(fg_prior *p, fg_graph *g, int n, const int *y, fg_var **mean,
                     fg_var **logs)
{
    fg_prior_params_cond(p, g, n, y, NULL, mean, logs);
}

void fg_prior_params_cond(fg_prior *p, fg_graph *g, int n, const int *y, fg_var *condition,
                          fg_var **mean, fg_var **logs)
{
    int c = p->channels;
    int h_shape[4] = {n, 2 * c, p->height, p->width};
    fg_var *h = fg_const(g, 4, h_shape);
    if (p->learn_top)
        h = fg_zero_conv_apply(g, &p->top,
                               fg_condition_join(g, h, condition, p->cond_channels, kind));
    /* Vectors take the values of (N, 2C, 1, 1) as (N, 2C): the same memory. */
    if (p->vectors)
        h = fg_reshape(g, h, 2, h_shape);
    if (p->n_classes) {
        FG_CHECK(y != NULL, kind, "a class-conditional prior needs labels y");
        int oh_shape[2] = {n, p->n_classes};
        fg_var *onehot = fg_const(g, 2, oh_shape);
        for (int i = 0; i < n; i++) {
            FG_CHECK(y[i] >= 0 && y[i] < p->n_classes, kind,
                     "label y[%d] = %d outside [0, %d)", i, y[i], p->n_classes);
            onehot->t.data[(size_t)i * p->n_classes + y[i]] = 1.0f;
        }
        fg_var *shift = fg_linear_apply(g, &p->project_y, onehot);   /* (n, 2C) */
        h = fg_add(g, h, p->vectors ? shift : broadcast_spatial(p, g, shift, n));
    }
    *mean = fg_channel_slice(g, h, 0, c);
    *logs = fg_channel_slice(g, h, c, 2 * c);
}

fg_var *fg_prior_logp(fg_prior *p, fg_graph *g, fg_var *z, const int *y)
{
    return fg_prior_logp_cond(p, g, z, y, NULL);
}

fg_var *fg_prior_logp_cond(fg_prior *p, fg_graph *g, fg_var *z, const int *y,
                           fg_var *condition)
{
    char buf[FG_SHAPE_STR_LEN];
    if (p->vectors)
        FG_CHECK(z->t.ndim == 2 && z->t.shape[1] == p->channels, kind,
                 "latent %s does not match the prior's (N, %d)",
                 fg_shape_str(&z->t, buf, sizeof buf), p->channels);
    else
        FG_CHECK(z->t.ndim == 4 && z->t.shape[1] == p->channels &&
                     z->t.shape[2] == p->height && z->t.shape[3] == p->width,
                 kind, "latent %s does not match the prior's (N, %d, %d, %d)",
                 fg_shape_str(&z->t, buf, sizeof buf), p->channels, p->height, p->width);
    fg_var *mean, *logs;
    fg_prior_params_cond(p, g, z->t.shape[0], y, condition, &mean, &logs);
    fg_flow_observe("prior.logs", logs);
    return fg_gaussian_logp(g, z, mean, logs);
}

fg_var *fg_prior_sample(fg_prior *p, fg_graph *g, int n, const int *y,
                        float temperature, fg_rng *rng)
{
    return fg_prior_sample_cond(p, g, n, y, NULL, temperature, rng);
}

fg_var *fg_prior_sample_cond(fg_prior *p, fg_graph *g, int n, const int *y, fg_var *condition,
                             float temperature, fg_rng *rng)
{
    fg_var *mean, *logs;
    fg_prior_params_cond(p, g, n, y, condition, &mean, &logs);
    if (temperature == 0.0f)
        return mean;
    FG_CHECK(rng != NULL, kind, "sampling at temperature %g needs an RNG", temperature);
    fg_var *eps = fg_const(g, mean->t.ndim, mean->t.shape);
    fg_rng_normal(rng, eps->t.data, fg_numel(&eps->t));
    return fg_add(g, mean, fg_mul(g, fg_exp(g, logs), fg_scale(g, eps, temperature)));
}

void fg_prior_visit(fg_prior *p, const char *prefix, fg_visit_fn fn, void *vctx)
{
    char pre[FG_NAME_LEN], name[FG_NAME_LEN];
    fg_flow_prefix(pre, sizeof pre, prefix, kind);
    if (p->learn_top)
        fg_zero_conv_visit(&p->top, fg_name_join(name, sizeof name, pre, "learn_top"),
                           fn, vctx);
    if (p->n_classes)
        fg_linear_visit(&p->project_y, fg_name_join(name, sizeof name, pre, "project_y"),
                        fn, vctx);
}
