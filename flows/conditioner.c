/* A coupling's conditioner network as a list of modules (flow.h, "conditioner
 * networks"). It lives in flows/ rather than nn/ because one of its modules
 * is actnorm, a flow layer. A network of convolutions, actnorms, ReLUs and
 * its zero conv runs as one convolution chain (fg_conv_chain), chunk of
 * images by chunk of images, once its actnorms are initialized. The rest,
 * and the first step, run module by module in channel-major layout: (N, C,
 * H, W) is reordered once on the way in and once on the way out, and every
 * convolution in between is one GEMM over the whole batch. A condition
 * vector read by the first convolution reaches the chain as such
 * (fg_net_apply_vector_condition): repeated over the image as channels, a
 * one-hot label of 10 classes made that convolution's product six times
 * as long for a two-channel input. */
#include "flows/layer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct module {
    fg_net_kind kind;
    char name[64];
    fg_net_kind activation;      /* residual */
    fg_conv conv, conv2;         /* conv; residual A, B on images */
    fg_linear lin, lin2;         /* dense, zero_dense; residual A, B on vectors */
    fg_zero_conv zero;           /* zero_conv */
    fg_flow *norm;               /* actnorm */
} module;

struct fg_net {
    int images, in, out, n;
    module *m;
};

static const char *const kind_names[FG_NET_KINDS] = {
    [FG_NET_RELU] = "relu", [FG_NET_TANH] = "tanh", [FG_NET_ELU] = "elu",
    [FG_NET_LEAKY_RELU] = "leaky_relu", [FG_NET_CONV] = "conv", [FG_NET_DENSE] = "dense",
    [FG_NET_ACTNORM] = "actnorm", [FG_NET_RESIDUAL] = "residual",
    [FG_NET_ZERO_CONV] = "zero_conv", [FG_NET_ZERO_DENSE] = "zero_dense",
};

const char *fg_net_kind_name(fg_net_kind k)
{
    return (int)k >= 0 && k < FG_NET_KINDS ? kind_names[k] : "unknown";
}

static int is_activation(fg_net_kind k)
{
    return k == FG_NET_RELU || k == FG_NET_TANH || k == FG_NET_ELU || k == FG_NET_LEAKY_RELU;
}

static int is_output(fg_net_kind k)
{
    return k == FG_NET_ZERO_CONV || k == FG_NET_ZERO_DENSE;
}

/* tanh(a) = 2 sigmoid(2a) - 1; elu(a) = relu(a) + e^{-relu(-a)} - 1;
 * leaky_relu(a) = relu(a) - 0.01 relu(-a): compositions of ops that have
 * backward rules, exact at every point but 0. */
static fg_var *activate(fg_graph *g, fg_net_kind k, fg_var *x)
{
    switch (k) {
    case FG_NET_RELU:
        return fg_relu(g, x);
    case FG_NET_TANH:
        return fg_add_scalar(g, fg_scale(g, fg_sigmoid(g, fg_scale(g, x, 2.0f)), 2.0f), -1.0f);
    case FG_NET_ELU: {
        fg_var *neg = fg_relu(g, fg_neg(g, x));
        return fg_add(g, fg_relu(g, x), fg_add_scalar(g, fg_exp(g, fg_neg(g, neg)), -1.0f));
    }
    case FG_NET_LEAKY_RELU:
        return fg_sub(g, fg_relu(g, x), fg_scale(g, fg_relu(g, fg_neg(g, x)), 0.01f));
    default:
        fg_fatal("conditioner", "module kind %d is not an activation", (int)k);
    }
}

/* The weights of a dense layer start He-initialized, so ReLU activations
 * keep their scale through depth; a conv's as Glow's, N(0, 0.05^2). */
static void dense_init(fg_linear *l, int in, int out, int bias, fg_rng *rng)
{
    fg_linear_init(l, in, out, bias, (float)sqrt(2.0 / in), rng);
}

static int check_layer(const char *owner, const fg_net_layer *s, int i, int n, int images)
{
    const char *name = fg_net_kind_name(s->kind);
    if ((int)s->kind < 0 || s->kind >= FG_NET_KINDS)
        return fg_error("%s: conditioner module %d has unknown kind %d", owner, i,
                        (int)s->kind);
    if ((s->kind == FG_NET_CONV || s->kind == FG_NET_ZERO_CONV) && !images)
        return fg_error("%s: conditioner module %d (%s) needs images, but this coupling "
                        "works on vectors (use %s)", owner, i, name,
                        s->kind == FG_NET_CONV ? "dense" : "zero_dense");
    if ((s->kind == FG_NET_DENSE || s->kind == FG_NET_ZERO_DENSE) && images)
        return fg_error("%s: conditioner module %d (%s) needs vectors, but this coupling "
                        "works on images (use %s)", owner, i, name,
                        s->kind == FG_NET_DENSE ? "conv" : "zero_conv");
    if ((s->kind == FG_NET_CONV || s->kind == FG_NET_DENSE) && s->width <= 0)
        return fg_error("%s: conditioner module %d (%s) needs a positive width, got %d",
                        owner, i, name, s->width);
    if (s->kind == FG_NET_RESIDUAL && s->width < 0)
        return fg_error("%s: conditioner module %d (residual) needs a width of 0 (the "
                        "input's) or more, got %d", owner, i, s->width);
    if (s->kind == FG_NET_RESIDUAL && !is_activation(s->activation))
        return fg_error("%s: conditioner module %d (residual) has activation %s (expected "
                        "relu, tanh, elu or leaky_relu)", owner, i,
                        fg_net_kind_name(s->activation));
    if (images && s->kernel != 0 && s->kernel != 1 && s->kernel != 3 &&
        (s->kind == FG_NET_CONV || s->kind == FG_NET_ZERO_CONV || s->kind == FG_NET_RESIDUAL))
        return fg_error("%s: conditioner module %d (%s) has kernel %d (expected 1 or 3)",
                        owner, i, name, s->kernel);
    if (is_output(s->kind) != (i == n - 1))
        return fg_error("%s: conditioner module %d (%s): the list must end in its output "
                        "module, %s, and have it only there", owner, i, name,
                        images ? "zero_conv" : "zero_dense");
    return FG_OK;
}

/* Builds module m from spec s on `in` channels; returns its output width. */
static int build(module *m, const fg_net_layer *s, int in, int out, int images, fg_rng *rng)
{
    int k = s->kernel ? s->kernel : 3;
    switch (s->kind) {
    case FG_NET_CONV:
        fg_conv_init(&m->conv, in, s->width, k, s->bias, 0.05f, rng);
        return s->width;
    case FG_NET_DENSE:
        dense_init(&m->lin, in, s->width, s->bias, rng);
        return s->width;
    case FG_NET_ACTNORM: {
        fg_actnorm_options an = {in, 1.0f};
        m->norm = fg_actnorm_create(&an);
        return in;
    }
    case FG_NET_RESIDUAL: {
        int w = s->width ? s->width : in;
        m->activation = s->activation;
        if (images) {
            fg_conv_init(&m->conv, in, w, k, 1, 0.05f, rng);
            fg_conv_init(&m->conv2, w, in, k, 1, 0.0f, NULL);
        } else {
            dense_init(&m->lin, in, w, 1, rng);
            fg_linear_init(&m->lin2, w, in, 1, 0.0f, NULL);
        }
        return in;
    }
    case FG_NET_ZERO_CONV:
        fg_zero_conv_init(&m->zero, in, out, k, 3.0f);
        return out;
    case FG_NET_ZERO_DENSE:
        fg_linear_init(&m->lin, in, out, 1, 0.0f, NULL);
        return out;
    default:
        return in;   /* activations */
    }
}

fg_net *fg_net_create(const char *owner, const fg_net_layer *layers, int n, int in, int out,
                      int images, fg_rng *rng)
{
    if (n < 1 || !layers) {
        fg_error("%s: a conditioner network needs at least its output module", owner);
        return NULL;
    }
    if (in < 1 || out < 1) {
        fg_error("%s: a conditioner network needs positive input and output widths, got "
                 "%d and %d", owner, in, out);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (check_layer(owner, &layers[i], i, n, images) != FG_OK)
            return NULL;
    if (!rng) {
        fg_error("%s: needs an RNG for its network's weights", owner);
        return NULL;
    }
    fg_net *net = fg_xcalloc(1, sizeof *net, "conditioner");
    net->images = images;
    net->in = in;
    net->out = out;
    net->n = n;
    net->m = fg_xcalloc((size_t)n, sizeof *net->m, "conditioner");
    int width = in;
    for (int i = 0; i < n; i++) {
        module *m = &net->m[i];
        m->kind = layers[i].kind;
        if (layers[i].name)
            snprintf(m->name, sizeof m->name, "%s", layers[i].name);
        else
            snprintf(m->name, sizeof m->name, "nn.%d", i);
        width = build(m, &layers[i], width, out, images, rng);
    }
    return net;
}

void fg_net_destroy(fg_net *net)
{
    if (!net)
        return;
    for (int i = 0; i < net->n; i++) {
        module *m = &net->m[i];
        fg_conv_free(&m->conv);
        fg_conv_free(&m->conv2);
        fg_linear_free(&m->lin);
        fg_linear_free(&m->lin2);
        fg_zero_conv_free(&m->zero);
        fg_flow_destroy(m->norm);
    }
    free(net->m);
    free(net);
}

static fg_var *residual(module *m, fg_graph *g, fg_var *h, int images, int n)
{
    fg_var *a = images ? fg_conv_apply_cm(g, &m->conv, h, n) : fg_linear_apply(g, &m->lin, h);
    a = activate(g, m->activation, a);
    fg_var *b = images ? fg_conv_apply_cm(g, &m->conv2, a, n) : fg_linear_apply(g, &m->lin2, a);
    return fg_add(g, h, b);
}

/* The network as stages of one convolution chain, in st (room for two per
 * module); returns their count, or 0 when a module has no stage (residual
 * blocks, the smooth activations, vector modules). */
static int chain_stages(fg_net *net, fg_chain_stage *st)
{
    if (!net->images)
        return 0;
    int ns = 0;
    for (int i = 0; i < net->n; i++) {
        module *m = &net->m[i];
        switch (m->kind) {
        case FG_NET_CONV:
            st[ns++] = (fg_chain_stage){.kind = FG_CHAIN_CONV, .weight = m->conv.weight,
                                        .bias = m->conv.bias};
            break;
        case FG_NET_ACTNORM: {
            const int relu = i + 1 < net->n && net->m[i + 1].kind == FG_NET_RELU;
            st[ns++] = fg_actnorm_chain_stage(m->norm, relu);
            i += relu;
            break;
        }
        case FG_NET_RELU:
            st[ns++] = (fg_chain_stage){.kind = FG_CHAIN_RELU};
            break;
        case FG_NET_ZERO_CONV:
            st[ns++] = (fg_chain_stage){.kind = FG_CHAIN_CONV, .weight = m->zero.conv.weight,
                                        .bias = m->zero.conv.bias};
            st[ns++] = (fg_chain_stage){.kind = FG_CHAIN_CHANNEL_SCALE_EXP,
                                        .logs = m->zero.logs,
                                        .factor = m->zero.logscale_factor};
            break;
        default:
            return 0;
        }
    }
    return ns;
}

/* Module by module: images in channel-major layout, each convolution one
 * GEMM over the batch. */
static fg_var *apply_modules(fg_net *net, fg_graph *g, fg_var *x)
{
    const int n = x->t.shape[0];
    fg_var *h = net->images ? fg_to_channel_major(g, x) : x;
    for (int i = 0; i < net->n; i++) {
        module *m = &net->m[i];
        switch (m->kind) {
        case FG_NET_CONV:
            if (i + 2 < net->n && net->m[i + 1].kind == FG_NET_ACTNORM &&
                net->m[i + 2].kind == FG_NET_RELU) {
                /* conv -> actnorm -> ReLU as one op, keeping no pre-activation */
                h = fg_actnorm_conv_relu(net->m[i + 1].norm, g, &m->conv, h, n);
                i += 2;
            } else {
                h = fg_conv_apply_cm(g, &m->conv, h, n);
            }
            break;
        case FG_NET_DENSE:
        case FG_NET_ZERO_DENSE:
            h = fg_linear_apply(g, &m->lin, h);
            break;
        case FG_NET_ACTNORM:
            if (i + 1 < net->n && net->m[i + 1].kind == FG_NET_RELU) {
                h = fg_actnorm_forward_relu(m->norm, g, h);
                i++;   /* the ReLU is part of the fused op */
            } else {
                h = fg_flow_forward(m->norm, g, h, NULL, NULL);
            }
            break;
        case FG_NET_RESIDUAL:
            h = residual(m, g, h, net->images, n);
            break;
        case FG_NET_ZERO_CONV:
            h = fg_zero_conv_apply_cm(g, &m->zero, h, n);
            break;
        default:
            h = activate(g, m->kind, h);
        }
    }
    return net->images ? fg_from_channel_major(g, h, n) : h;
}

fg_var *fg_net_apply(fg_net *net, fg_graph *g, fg_var *x)
{
    FG_CHECK(x->t.ndim == (net->images ? 4 : 2) && x->t.shape[1] == net->in, "conditioner",
             "input has %d dims and %d channels; the network takes %s with %d",
             x->t.ndim, x->t.ndim > 1 ? x->t.shape[1] : 0,
             net->images ? "(N, C, H, W)" : "(N, D)", net->in);
    fg_chain_stage st[2 * net->n];
    const int ns = chain_stages(net, st);
    if (ns == 0)
        return apply_modules(net, g, x);
    if (fg_net_data_init(net, 0) > 0) {
        /* The actnorms' data-dependent init needs the pre-activations, which
         * the chain never forms, and happens only with gradients on. Then
         * the network runs once module by module, initializing each actnorm
         * from what reaches it as that path always did, and its tape and
         * memory are given back at once, so that the first step lays out
         * its tensors as every later one does (and is no larger). */
        if (!fg_grad_enabled(g))
            return apply_modules(net, g, x);
        fg_graph_mark mark = fg_graph_mark_now(g);
        apply_modules(net, g, x);
        fg_graph_rewind(g, &mark);
    }
    return fg_conv_chain(g, x, st, ns);
}

fg_var *fg_net_apply_vector_condition(fg_net *net, fg_graph *g, fg_var *x, fg_var *cond)
{
    if (!net->images || x->t.ndim != 4 || !cond || cond->t.ndim != 2 ||
        cond->t.shape[0] != x->t.shape[0] || x->t.shape[1] + cond->t.shape[1] != net->in)
        return NULL;
    fg_chain_stage st[2 * net->n];
    const int ns = chain_stages(net, st);
    if (ns == 0 || st[0].kind != FG_CHAIN_CONV || fg_net_data_init(net, 0) > 0)
        return NULL;
    if (!fg_conv_chain_takes_condition(x->t.shape[1], st[0].weight->t.shape[0],
                                       st[0].weight->t.shape[2]))
        return NULL;
    st[0].cond = cond;
    return fg_conv_chain(g, x, st, ns);
}

void fg_net_visit(fg_net *net, const char *prefix, fg_visit_fn fn, void *vctx)
{
    char name[FG_NAME_LEN], sub[FG_NAME_LEN];
    for (int i = 0; i < net->n; i++) {
        module *m = &net->m[i];
        fg_name_join(name, sizeof name, prefix, m->name);
        switch (m->kind) {
        case FG_NET_CONV:
            fg_conv_visit(&m->conv, name, fn, vctx);
            break;
        case FG_NET_DENSE:
        case FG_NET_ZERO_DENSE:
            fg_linear_visit(&m->lin, name, fn, vctx);
            break;
        case FG_NET_ACTNORM:
            fg_actnorm_visit_state(m->norm, name, fn, vctx);
            break;
        case FG_NET_RESIDUAL:
            /* 0 and 2, as a torch.nn.Sequential of A, activation, B names them. */
            if (net->images) {
                fg_conv_visit(&m->conv, fg_name_join(sub, sizeof sub, name, "0"), fn, vctx);
                fg_conv_visit(&m->conv2, fg_name_join(sub, sizeof sub, name, "2"), fn, vctx);
            } else {
                fg_linear_visit(&m->lin, fg_name_join(sub, sizeof sub, name, "0"), fn, vctx);
                fg_linear_visit(&m->lin2, fg_name_join(sub, sizeof sub, name, "2"), fn, vctx);
            }
            break;
        case FG_NET_ZERO_CONV:
            fg_zero_conv_visit(&m->zero, name, fn, vctx);
            break;
        default:
            break;
        }
    }
}

int fg_net_data_init(fg_net *net, int rearm)
{
    int pending = 0;
    for (int i = 0; i < net->n; i++) {
        fg_flow *norm = net->m[i].norm;
        if (!norm)
            continue;
        if (rearm)
            fg_flow_rearm_actnorm(norm);
        pending += fg_flow_init_pending(norm);
    }
    return pending;
}
