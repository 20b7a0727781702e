/* From a validated model spec to a flow model: one flow layer per entry of
 * the expanded layer list, inside the multi-scale container. */
#include "models/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static fg_coupling_mask coupling_mask(fg_mask_kind k)
{
    switch (k) {
    case FG_MASK_CHANNEL: return FG_COUPLING_MASK_CHANNEL;
    case FG_MASK_CHANNEL_FLIP: return FG_COUPLING_MASK_CHANNEL_FLIP;
    case FG_MASK_CHECKERBOARD: return FG_COUPLING_MASK_CHECKERBOARD;
    case FG_MASK_CHECKERBOARD_FLIP: return FG_COUPLING_MASK_CHECKERBOARD_FLIP;
    }
    fg_fatal("fg_model_build", "unknown coupling mask %d", (int)k);
}

static fg_transform_kind transform_of(fg_coupling_kind k)
{
    switch (k) {
    case FG_COUPLING_ADDITIVE: return FG_TRANSFORM_ADDITIVE;
    case FG_COUPLING_AFFINE: return FG_TRANSFORM_AFFINE;
    case FG_COUPLING_SPLINE: return FG_TRANSFORM_SPLINE;
    }
    fg_fatal("fg_model_build", "unknown coupling type %d", (int)k);
}

static fg_coupling_scale scale_of(fg_scale_kind k)
{
    return k == FG_SCALE_TANH ? FG_COUPLING_SCALE_TANH : FG_COUPLING_SCALE_SIGMOID;
}

/* One layer, or NULL with fg_error naming where it was declared. */
static fg_flow *build_layer(const fg_layer_spec *l, const fg_flow_shape *in, int max_hidden,
                           fg_rng *rng)
{
    int c = in->dim[1];   /* the actual input; a reduced build may differ */
    switch (l->kind) {
    case FG_LAYER_SQUEEZE:
        return fg_squeeze_create();
    case FG_LAYER_ACTNORM: {
        fg_actnorm_options o = {c, l->u.actnorm.scale};
        return fg_actnorm_create(&o);
    }
    case FG_LAYER_INVCONV: {
        fg_invconv_options o = {c, l->u.invconv.lu, NULL, rng};
        return fg_invconv_create(&o);
    }
    case FG_LAYER_PERMUTE: {
        fg_permute_options o = {c, l->u.permute.type == FG_PERMUTE_SHUFFLE, rng};
        return fg_permute_create(&o);
    }
    case FG_LAYER_FLATTEN: {
        /* The actual input, which a reduced build makes smaller than the spec's. */
        fg_flatten_options o = {in->dim[1], in->dim[2], in->dim[3]};
        return fg_flatten_create(&o);
    }
    case FG_LAYER_SCALE_DIAG:
        return fg_scale_diag_create(c);
    case FG_LAYER_COUPLING: {
        int hidden = l->u.coupling.hidden;
        if (max_hidden > 0 && hidden > max_hidden)
            hidden = max_hidden;
        if (l->u.coupling.dense) {
            fg_dense_coupling_options o = {
                c, hidden, l->u.coupling.layers, transform_of(l->u.coupling.type),
                coupling_mask(l->u.coupling.mask), scale_of(l->u.coupling.scale), rng,
                l->u.coupling.bins, l->u.coupling.bound};
            return fg_dense_coupling_create(&o);
        }
        fg_coupling_options o = {c, hidden, transform_of(l->u.coupling.type), rng,
                                 coupling_mask(l->u.coupling.mask),
                                 scale_of(l->u.coupling.scale), l->u.coupling.bins,
                                 l->u.coupling.bound};
        return fg_coupling_create(&o);
    }
    case FG_LAYER_MAF:
    case FG_LAYER_IAF: {
        int hidden = l->u.autoregressive.hidden;
        if (max_hidden > 0 && hidden > max_hidden)
            hidden = max_hidden;
        fg_autoregressive_options o = {
            c, hidden, l->u.autoregressive.layers, l->kind == FG_LAYER_IAF,
            transform_of(l->u.autoregressive.type), scale_of(l->u.autoregressive.scale),
            l->u.autoregressive.bins, l->u.autoregressive.bound, rng};
        return fg_autoregressive_create(&o);
    }
    case FG_LAYER_SPLIT: {
        fg_split_options o = {c, l->u.split.prior == FG_SPLIT_STANDARD};
        return fg_split_create(&o);
    }
    }
    fg_fatal("fg_model_build", "unknown layer kind %d", (int)l->kind);
}

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
    fg_rng rng;
    fg_rng_seed_stream(&rng, seed, 0x6d6f64656cULL);
    fg_flow **layers = fg_xcalloc((size_t)spec->n_layers, sizeof *layers, "model layers");
    fg_flow_shape cur = fg_flow_shape4(1, spec->input.c, h, w);
    for (int i = 0; i < spec->n_layers; i++) {
        layers[i] = build_layer(&spec->layers[i], &cur, max_hidden, &rng);
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
                                spec->learn_top, n_classes};
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

fg_var *fg_model_bits_per_dim(fg_model *m, fg_graph *g, fg_var *x, const int *y)
{
    fg_var *logp = fg_multiscale_log_prob(m->flow, g, x, m->n_classes ? y : NULL);
    return to_bits_per_dim(m, g, logp);
}

fg_var *fg_model_loss(fg_model *m, fg_graph *g, fg_var *x, const int *y, double *bpd)
{
    return fg_model_loss_ex(m, g, x, y, bpd, FG_MEMORY_STORE, NULL);
}

fg_var *fg_model_loss_ex(fg_model *m, fg_graph *g, fg_var *x, const int *y, double *bpd,
                         fg_memory_mode memory, fg_invert_stats *stats)
{
    fg_var *latents[FG_FLOW_MAX_LATENTS], *logp;
    const int *cy = m->n_classes ? y : NULL;
    int n_lat = memory == FG_MEMORY_INVERT
                    ? fg_multiscale_encode_invert(m->flow, g, x, cy, latents, &logp, stats)
                    : fg_multiscale_encode(m->flow, g, x, cy, latents, &logp);
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

static double conv_flops(int ci, int co, int k, int h, int w)
{
    return 2.0 * ci * co * k * k * (double)h * w;
}

double fg_model_spec_flops(const fg_model_spec *spec)
{
    double f = 0;
    for (int i = 0; i < spec->n_layers; i++) {
        const fg_layer_spec *l = &spec->layers[i];
        int c = l->in.c, h = l->in.h, w = l->in.w, half = c / 2;
        switch (l->kind) {
        case FG_LAYER_INVCONV:
            f += conv_flops(c, c, 1, h, w);
            break;
        case FG_LAYER_COUPLING: {
            int hid = l->u.coupling.hidden;
            int width = fg_coupling_kind_width(l->u.coupling.type, l->u.coupling.bins);
            if (l->u.coupling.dense) {
                int out = width * (c - half);
                f += 2.0 * hid * (half + (l->u.coupling.layers - 1) * (double)hid + out);
                break;
            }
            /* A checkerboard network sees and writes every channel. */
            int checker = l->u.coupling.mask == FG_MASK_CHECKERBOARD ||
                          l->u.coupling.mask == FG_MASK_CHECKERBOARD_FLIP;
            int seen = checker ? c : half, changed = checker ? c : c - half;
            int co = width * changed;
            f += conv_flops(seen, hid, 3, h, w) + conv_flops(hid, hid, 1, h, w) +
                 conv_flops(hid, co, 3, h, w);
            break;
        }
        case FG_LAYER_MAF:
        case FG_LAYER_IAF: {
            /* The density direction: one network pass for maf, D for iaf. */
            double hid = l->u.autoregressive.hidden;
            double out = (double)c * fg_coupling_kind_width(l->u.autoregressive.type,
                                                            l->u.autoregressive.bins);
            double pass = 2.0 * hid * (c + (l->u.autoregressive.layers - 1) * hid + out);
            f += l->kind == FG_LAYER_IAF ? c * pass : pass;
            break;
        }
        case FG_LAYER_SPLIT:
            f += conv_flops(half, 2 * (c - half), 3, h, w);
            break;
        default:
            break;
        }
    }
    if (spec->learn_top)
        f += conv_flops(2 * spec->top.c, 2 * spec->top.c, 3, spec->top.h, spec->top.w);
    if (spec->y_condition)
        f += 2.0 * spec->top.c * spec->classes;
    return f;
}
