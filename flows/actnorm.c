/* actnorm: a per-channel affine map y = (x + bias) * exp(logs), initialized
 * from the first training batch so that its outputs have zero mean and unit
 * variance per channel. The initialized flag is a saved buffer, so a loaded
 * model keeps its trained values. */
#include "flows/layer.h"

#include <math.h>
#include <stdlib.h>

typedef struct actnorm {
    fg_flow base;
    int channels;
    float scale;
    fg_var *bias, *logs;    /* [C] parameters */
    fg_var *initialized;    /* [1] buffer, 0 or 1 */
} actnorm;

static const char kind[] = "actnorm";

static int out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    const actnorm *a = (const actnorm *)f;
    if (fg_flow_expect_channels(kind, in, a->channels) != FG_OK)
        return FG_ERR;
    *out = *in;
    return FG_OK;
}

/* Process-wide, like the thread count: data-parallel training sets it once
 * for every actnorm of every model. */
static fg_sum_reducer reducer;
static void *reducer_ctx;

void fg_actnorm_set_reducer(fg_sum_reducer fn, void *ctx)
{
    reducer = fn;
    reducer_ctx = ctx;
}

static void reduce(double *v, int n)
{
    if (reducer)
        reducer(v, n, reducer_ctx);
}

void fg_actnorm_initialize(fg_flow *f, const fg_tensor *x)
{
    actnorm *a = (actnorm *)f;
    FG_CHECK(x->ndim >= 2 && x->shape[1] == a->channels, kind,
             "init batch has %d dims and %d channels, expected %d channels",
             x->ndim, x->ndim >= 2 ? x->shape[1] : 0, a->channels);
    int n = x->shape[0], c = a->channels, hw = 1;
    for (int i = 2; i < x->ndim; i++)
        hw *= x->shape[i];
    /* Two passes: the mean first, then squared deviations, so a large mean
     * does not cancel the variance away. Each pass ends in one reduction, so
     * processes holding parts of the batch see the whole batch's statistics.
     * sums[c] is the count of values per channel. */
    double *sums = fg_xmalloc((size_t)(2 * c + 1) * sizeof *sums, "actnorm init");
    double *sq = sums + c + 1;
    for (int ch = 0; ch < c; ch++) {
        double sum = 0.0;
        for (int s = 0; s < n; s++) {
            const float *p = x->data + ((size_t)s * c + ch) * hw;
            for (int i = 0; i < hw; i++)
                sum += p[i];
        }
        sums[ch] = sum;
    }
    sums[c] = (double)n * hw;
    reduce(sums, c + 1);
    const double count = sums[c];
    for (int ch = 0; ch < c; ch++) {
        double mean = sums[ch] / count, dev = 0.0;
        for (int s = 0; s < n; s++) {
            const float *p = x->data + ((size_t)s * c + ch) * hw;
            for (int i = 0; i < hw; i++)
                dev += (p[i] - mean) * (p[i] - mean);
        }
        sq[ch] = dev;
    }
    reduce(sq, c);
    for (int ch = 0; ch < c; ch++) {
        double mean = sums[ch] / count;
        double std = sqrt(sq[ch] / count);
        a->bias->t.data[ch] = (float)-mean;
        a->logs->t.data[ch] = (float)log(a->scale / (std + 1e-6));
    }
    free(sums);
    a->initialized->t.data[0] = 1.0f;
}

int fg_actnorm_is_initialized(const fg_flow *f)
{
    return ((const actnorm *)f)->initialized->t.data[0] != 0.0f;
}

static void require_input(const actnorm *a, const fg_var *x)
{
    FG_CHECK(x->t.ndim >= 2 && x->t.shape[1] == a->channels, kind,
             "input has %d dims and %d channels, the layer was built for %d",
             x->t.ndim, x->t.ndim >= 2 ? x->t.shape[1] : 0, a->channels);
}

static fg_var *logdet_term(actnorm *a, fg_graph *g, const fg_var *x)
{
    return fg_scale(g, fg_sum(g, a->logs), (float)fg_flow_spatial(x));
}

/* Checks x and, on the first forward in training, initializes from it. */
static void prepare(actnorm *a, fg_graph *g, const fg_var *x)
{
    require_input(a, x);
    if (!fg_actnorm_is_initialized(&a->base) && fg_grad_enabled(g))
        fg_actnorm_initialize(&a->base, &x->t);
}

static fg_var *forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    actnorm *a = (actnorm *)f;
    prepare(a, g, x);
    fg_var *y = fg_mul_channel(g, fg_add_channel(g, x, a->bias), fg_exp(g, a->logs));
    if (logdet)
        fg_flow_accumulate(g, logdet, logdet_term(a, g, x), +1, x->t.shape[0]);
    return y;
}

fg_var *fg_actnorm_forward_relu(fg_flow *f, fg_graph *g, fg_var *x)
{
    actnorm *a = (actnorm *)f;
    prepare(a, g, x);
    return fg_channel_affine_relu(g, x, a->bias, a->logs);
}

fg_var *fg_actnorm_conv_relu(fg_flow *f, fg_graph *g, fg_conv *conv, fg_var *x, int n)
{
    actnorm *a = (actnorm *)f;
    if (conv->bias || conv->co != a->channels)
        return fg_actnorm_forward_relu(f, g, fg_conv_apply_cm(g, conv, x, n));
    if (!fg_actnorm_is_initialized(f) && fg_grad_enabled(g)) {
        /* The statistics need the pre-activation, which the fused op does
         * not keep: one extra convolution off the tape, once, its output
         * given back to the arena at once, so that the first step places
         * its tensors as every later one does (no page first touched
         * after it). */
        fg_arena *arena = fg_graph_arena(g);
        fg_arena_mark mark = fg_arena_mark_now(arena);
        int was = fg_set_grad_enabled(g, 0);
        fg_var *pre = fg_conv_apply_cm(g, conv, x, n);
        fg_set_grad_enabled(g, was);
        prepare(a, g, pre);
        fg_arena_rewind(arena, &mark);
    }
    return fg_conv2d_cm_affine_relu(g, x, conv->weight, a->bias, a->logs, n);
}

fg_chain_stage fg_actnorm_chain_stage(fg_flow *f, int relu)
{
    actnorm *a = (actnorm *)f;
    return (fg_chain_stage){.kind = relu ? FG_CHAIN_AFFINE_RELU : FG_CHAIN_AFFINE,
                            .bias = a->bias, .logs = a->logs};
}

static fg_var *inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    actnorm *a = (actnorm *)f;
    require_input(a, z);
    fg_var *x = fg_add_channel(g, fg_mul_channel(g, z, fg_exp(g, fg_neg(g, a->logs))),
                               fg_neg(g, a->bias));
    if (logdet)
        fg_flow_accumulate(g, logdet, logdet_term(a, g, z), -1, z->t.shape[0]);
    return x;
}

void fg_actnorm_visit_state(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    actnorm *a = (actnorm *)f;
    char name[FG_NAME_LEN];
    fn(vctx, fg_name_join(name, sizeof name, prefix, "bias"), a->bias, FG_PARAM);
    fn(vctx, fg_name_join(name, sizeof name, prefix, "logs"), a->logs, FG_PARAM);
    fn(vctx, fg_name_join(name, sizeof name, prefix, "initialized"), a->initialized,
       FG_BUFFER);
}

static void visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    char p[FG_NAME_LEN];
    fg_actnorm_visit_state(f, fg_flow_prefix(p, sizeof p, prefix, kind), fn, vctx);
}

static void destroy(fg_flow *f)
{
    actnorm *a = (actnorm *)f;
    fg_leaf_free(a->bias);
    fg_leaf_free(a->logs);
    fg_leaf_free(a->initialized);
    free(a);
}

static int data_init(fg_flow *f, int rearm)
{
    actnorm *a = (actnorm *)f;
    if (rearm)
        a->initialized->t.data[0] = 0.0f;
    return !fg_actnorm_is_initialized(f);
}

static const fg_flow_ops ops = {kind, out_shape, forward, inverse, visit, destroy, NULL, 0,
                                data_init, NULL};

fg_flow *fg_actnorm_create(const fg_actnorm_options *o)
{
    if (o->channels <= 0) {
        fg_error("actnorm: channels must be positive, got %d", o->channels);
        return NULL;
    }
    if (o->scale < 0.0f || !isfinite(o->scale)) {
        fg_error("actnorm: scale must be positive, got %g", o->scale);
        return NULL;
    }
    actnorm *a = fg_xcalloc(1, sizeof *a, kind);
    a->base.ops = &ops;
    a->channels = o->channels;
    a->scale = o->scale > 0.0f ? o->scale : 1.0f;
    int c[1] = {o->channels}, one[1] = {1};
    a->bias = fg_leaf_new(1, c, 1);
    a->logs = fg_leaf_new(1, c, 1);
    a->initialized = fg_leaf_new(1, one, 0);
    return &a->base;
}
