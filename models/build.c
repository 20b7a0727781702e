/* From a validated model spec to a flow model: one flow layer per entry of
 * the expanded layer list, each made by its kind's entry
 * (models/layer_kind.h), inside the multi-scale container. */
#include "models/model.h"
#include "models/layer_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int fg_model_build(const fg_model_spec *spec, uint64_t seed, fg_model **out)
{
    return fg_model_build_ex(spec, seed, NULL, out);
}

int fg_model_build_ex(const fg_model_spec *spec, uint64_t seed,
                      const fg_model_build_options *o, fg_model **out)
{
    *out = NULL;
    if (spec->n_layers <= 0)
        return fg_error("model: the layer list is empty");
    int h = o && o->height > 0 ? o->height : spec->input.h;
    int w = o && o->width > 0 ? o->width : spec->input.w;
    int max_hidden = o ? o->max_hidden : 0;
    fg_rng rng, order;
    fg_rng_seed_stream(&rng, seed, 0x6d6f64656cULL);
    fg_layer_build build = {&rng, max_hidden, NULL};
    if (spec->permutation_seed >= 0) {
        /* The channel orders from their own seed: the same for every
         * training seed (model.permutation_seed in models/config.h). */
        fg_rng_seed_stream(&order, (uint64_t)spec->permutation_seed, 0x6f72646572ULL);
        build.order_rng = &order;
    }
    fg_flow **layers = fg_xcalloc((size_t)spec->n_layers, sizeof *layers, "model layers");
    fg_flow_shape cur = fg_flow_shape4(1, spec->input.c, h, w);
    for (int i = 0; i < spec->n_layers; i++) {
        layers[i] = fg_layer_spec_create(&spec->layers[i], &cur, &build);
        if (layers[i] && fg_flow_out_shape(layers[i], &cur, &cur) != FG_OK) {
            fg_flow_destroy(layers[i]);
            layers[i] = NULL;
        }
        if (!layers[i]) {
            for (int j = 0; j < i; j++)
                fg_flow_destroy(layers[j]);
            free(layers);
            return FG_ERR;
        }
    }
    int n_classes = spec->y_condition ? spec->classes : 0;
    fg_multiscale_options mo = {layers, spec->n_layers,
                                fg_flow_shape4(1, spec->input.c, h, w),
                                spec->learn_top, n_classes, spec->cond_channels};
    fg_multiscale *ms;
    int rc = fg_multiscale_create(&mo, &ms);
    free(layers);
    if (rc != FG_OK)
        return FG_ERR;
    fg_model *m = fg_xcalloc(1, sizeof *m, "model");
    m->flow = ms;
    m->c = spec->input.c;
    m->h = h;
    m->w = w;
    m->n_bits = spec->n_bits;
    m->n_classes = n_classes;
    m->weight_y = spec->weight_y;
    m->condition = spec->condition;
    m->cond_channels = spec->cond_channels;
    m->cond_classes = spec->condition == FG_CONDITION_CLASS ? spec->classes : 0;
    if (n_classes > 0) {
        m->has_class_head = 1;
        fg_linear_init(&m->project_class, ms->top.dim[1], n_classes, 1, 0.0f, NULL);
    }
    fg_state_list_init(&m->state);
    fg_model_visit(m, "", fg_state_list_add, &m->state);
    *out = m;
    return FG_OK;
}

void fg_model_free(fg_model *m)
{
    if (!m)
        return;
    fg_state_list_free(&m->state);
    if (m->has_class_head)
        fg_linear_free(&m->project_class);
    fg_multiscale_destroy(m->flow);
    free(m);
}

void fg_model_visit(fg_model *m, const char *prefix, fg_visit_fn fn, void *vctx)
{
    fg_multiscale_visit(m->flow, prefix, fn, vctx);
    if (m->has_class_head) {
        char p[FG_NAME_LEN];
        fg_linear_visit(&m->project_class, fg_name_join(p, sizeof p, prefix, "project_class"),
                        fn, vctx);
    }
}

int fg_model_dims(const fg_model *m)
{
    return m->c * m->h * m->w;
}

/* log p(x) -> bits/dim: the density of the discrete data is the density of
 * the dequantized value times the bin volume (2^-n_bits)^D. */
static fg_var *to_bits_per_dim(fg_model *m, fg_graph *g, fg_var *logp)
{
    double D = fg_model_dims(m);
    fg_var *nll = fg_add_scalar(g, fg_neg(g, logp), (float)(D * m->n_bits * log(2.0)));
    return fg_scale(g, nll, (float)(1.0 / (D * log(2.0))));
}

fg_var *fg_model_condition(fg_model *m, fg_graph *g, const int *y, int n)
{
    if (m->condition == FG_CONDITION_NONE)
        return NULL;
    FG_CHECK(m->condition == FG_CONDITION_CLASS, "model", "the model is conditioned on a "
             "tensor of %d channels (condition: tensor): give it to the _cond forms",
             m->cond_channels);
    FG_CHECK(y != NULL, "model", "the model is conditioned on the class (condition: class) "
             "and needs a label per image");
    int shape[2] = {n, m->cond_classes};
    fg_var *onehot = fg_const(g, 2, shape);
    for (int i = 0; i < n; i++) {
        FG_CHECK(y[i] >= 0 && y[i] < m->cond_classes, "model",
                 "label y[%d] = %d outside [0, %d)", i, y[i], m->cond_classes);
        onehot->t.data[(size_t)i * m->cond_classes + y[i]] = 1.0f;
    }
    return onehot;
}

fg_var *fg_model_bits_per_dim(fg_model *m, fg_graph *g, fg_var *x, const int *y)
{
    return fg_model_bits_per_dim_cond(m, g, x, y,
                                      fg_model_condition(m, g, y, x->t.shape[0]));
}

fg_var *fg_model_bits_per_dim_cond(fg_model *m, fg_graph *g, fg_var *x, const int *y,
                                   fg_var *condition)
{
    fg_var *logp = fg_multiscale_log_prob_cond(m->flow, g, x, m->n_classes ? y : NULL,
                                               condition);
    return to_bits_per_dim(m, g, logp);
}

fg_var *fg_model_loss(fg_model *m, fg_graph *g, fg_var *x, const int *y, double *bpd)
{
    return fg_model_loss_ex(m, g, x, y, bpd, FG_MEMORY_STORE, NULL);
}

fg_var *fg_model_loss_ex(fg_model *m, fg_graph *g, fg_var *x, const int *y, double *bpd,
                         fg_memory_mode memory, fg_invert_stats *stats)
{
    return fg_model_loss_cond(m, g, x, y, fg_model_condition(m, g, y, x->t.shape[0]), bpd,
                              memory, stats);
}

fg_var *fg_model_sample(fg_model *m, fg_graph *g, int n, const int *y, fg_var *condition,
                        float temperature, fg_rng *rng)
{
    if (!condition && m->condition == FG_CONDITION_CLASS)
        condition = fg_model_condition(m, g, y, n);
    return fg_multiscale_sample_cond(m->flow, g, n, m->n_classes ? y : NULL, condition,
                                     temperature, rng);
}

fg_var *fg_model_loss_cond(fg_model *m, fg_graph *g, fg_var *x, const int *y,
                           fg_var *condition, double *bpd, fg_memory_mode memory,
                           fg_invert_stats *stats)
{
    fg_var *latents[FG_FLOW_MAX_LATENTS], *logp;
    const int *cy = m->n_classes ? y : NULL;
    int n_lat = memory == FG_MEMORY_INVERT
                    ? fg_multiscale_encode_invert_cond(m->flow, g, x, cy, condition, latents,
                                                       &logp, stats)
                    : fg_multiscale_encode_cond(m->flow, g, x, cy, condition, latents, &logp);
    fg_var *loss = fg_mean(g, to_bits_per_dim(m, g, logp));
    if (bpd)
        *bpd = loss->t.data[0];
    if (m->has_class_head && y) {
        /* Class logits from the channel means of the top latent. */
        fg_var *z = latents[n_lat - 1];
        int n = z->t.shape[0], c = z->t.shape[1], hw = z->t.shape[2] * z->t.shape[3];
        int rows[2] = {n * c, hw}, nc[2] = {n, c};
        fg_var *means = fg_reshape(g, fg_mean_per_sample(g, fg_reshape(g, z, 2, rows)), 2, nc);
        fg_var *logits = fg_linear_apply(g, &m->project_class, means);
        fg_var *ce = fg_mean(g, fg_log_softmax_cross_entropy(g, logits, y));
        loss = fg_add(g, loss, fg_scale(g, ce, m->weight_y));
    }
    return loss;
}

double fg_model_spec_flops(const fg_model_spec *spec)
{
    double f = 0;
    for (int i = 0; i < spec->n_layers; i++)
        f += fg_layer_spec_flops(&spec->layers[i]);
    if (spec->learn_top)
        f += layer_conv_flops(2 * spec->top.c + spec->cond_channels, 2 * spec->top.c, 3,
                              spec->top.h, spec->top.w);
    if (spec->y_condition)
        f += 2.0 * spec->top.c * spec->classes;
    return f;
}
