/* coupling: one part of the input conditions an invertible map of the
 * rest, through Glow's three convolutions or, on vectors, a dense net, or
 * through a conditioner network listed module by module. */
#include <stdio.h>

#include "models/layer_internal.h"

enum { TYPE, HIDDEN, MASK, SCALE, NET, LAYERS, BINS, BOUND, CONDITIONER };
enum { CONV, DENSE };

static const char *const mask_names[] = {
    [FG_COUPLING_MASK_CHANNEL] = "channel",
    [FG_COUPLING_MASK_CHANNEL_FLIP] = "channel_flip",
    [FG_COUPLING_MASK_CHECKERBOARD] = "checkerboard",
    [FG_COUPLING_MASK_CHECKERBOARD_FLIP] = "checkerboard_flip",
    NULL
};
static const char *const net_names[] = { [CONV] = "conv", [DENSE] = "dense", NULL };

/* The conditioner's modules, indexed by the fg_net_kind they build; the
 * options of each in the order their spec holds them. */
static const char *const kernel_names[] = { "1", "3", NULL };
static const char *const activation_names[] = {
    [FG_NET_RELU] = "relu", [FG_NET_TANH] = "tanh", [FG_NET_ELU] = "elu",
    [FG_NET_LEAKY_RELU] = "leaky_relu", NULL
};
enum { WIDTH, KERNEL, BIAS };            /* conv */
enum { DENSE_WIDTH, DENSE_BIAS };        /* dense */
enum { RES_WIDTH, RES_KERNEL, RES_ACTIVATION };
enum { ZERO_KERNEL };                    /* zero_conv */

#define KERNEL_OPTION(doc_) { .key = "kernel", .type = FG_OPTION_CHOICE, .choices = kernel_names, \
                              .def = 1, .doc = doc_ }
#define WIDTH_OPTION { .key = "width", .type = FG_OPTION_INT, .required = 1, .lo = 1, \
                       .hi = 65536, .doc = "output channels (entries)" }
#define BIAS_OPTION { .key = "bias", .type = FG_OPTION_BOOL, .def = 1, \
                      .doc = "a learned bias (Glow's convs before an actnorm have none)" }
static const fg_layer_option conv_options[] = {
    [WIDTH] = WIDTH_OPTION,
    [KERNEL] = KERNEL_OPTION("kernel size"),
    [BIAS] = BIAS_OPTION,
};
static const fg_layer_option dense_options[] = {
    [DENSE_WIDTH] = WIDTH_OPTION,
    [DENSE_BIAS] = BIAS_OPTION,
};
static const fg_layer_option residual_options[] = {
    [RES_WIDTH] = { .key = "width", .type = FG_OPTION_INT, .def = 0, .lo = 0, .hi = 65536,
                    .doc = "outputs of the block's first layer; 0: the block's input width" },
    [RES_KERNEL] = { .key = "kernel", .type = FG_OPTION_CHOICE, .choices = kernel_names,
                     .def = 1, .when_key = "net", .when_value = CONV,
                     .when_what = "conv coupling networks", .doc = "kernel size of both convs" },
    [RES_ACTIVATION] = { .key = "activation", .type = FG_OPTION_CHOICE,
                         .choices = activation_names, .def = FG_NET_RELU,
                         .doc = "between the block's two layers" },
};
static const fg_layer_option zero_conv_options[] = {
    [ZERO_KERNEL] = KERNEL_OPTION("kernel size"),
};

#define ON_CONV .when_key = "net", .when_value = CONV, .when_what = "conv coupling networks"
#define ON_DENSE .when_key = "net", .when_value = DENSE, .when_what = "dense coupling networks"
#define OPTIONS(a) .options = a, .n_options = (int)(sizeof a / sizeof a[0])
static const fg_layer_module modules[] = {
    [FG_NET_RELU] = { .name = "relu", .doc = "max(0, x)" },
    [FG_NET_TANH] = { .name = "tanh", .doc = "tanh(x)" },
    [FG_NET_ELU] = { .name = "elu", .doc = "x, or e^x - 1 below 0" },
    [FG_NET_LEAKY_RELU] = { .name = "leaky_relu", .doc = "x, or 0.01 x below 0" },
    [FG_NET_CONV] = { .name = "conv", .doc = "convolution, weights N(0, 0.05^2)",
                      OPTIONS(conv_options), ON_CONV },
    [FG_NET_DENSE] = { .name = "dense", .doc = "fully connected, He-initialized",
                       OPTIONS(dense_options), ON_DENSE },
    [FG_NET_ACTNORM] = { .name = "actnorm", .doc = "per-channel affine, data-initialized" },
    [FG_NET_RESIDUAL] = { .name = "residual", .doc = "x + B(act(A(x))), B zero at the start",
                          OPTIONS(residual_options) },
    [FG_NET_ZERO_CONV] = { .name = "zero_conv", .output = 1, OPTIONS(zero_conv_options),
                           ON_CONV, .doc = "the output: Glow's zero conv, scaled e^{3 logs}" },
    [FG_NET_ZERO_DENSE] = { .name = "zero_dense", .output = 1, ON_DENSE,
                            .doc = "the output: a dense layer starting at zero" },
};
_Static_assert(sizeof modules / sizeof modules[0] == FG_NET_KINDS,
               "one module entry per fg_net_kind");

static const fg_layer_option options[] = {
    [TYPE] = { .key = "type", .type = FG_OPTION_CHOICE, .choices = layer_transform_names,
               .def = FG_TRANSFORM_AFFINE, .bare = 1,
               .doc = "the map of the changing half; spline: rational-quadratic, identity tails" },
    [HIDDEN] = { .key = "hidden", .type = FG_OPTION_INT, .def = 512, .lo = 1, .hi = 65536,
                 .doc = "width of the conditioning network" },
    [MASK] = { .key = "mask", .type = FG_OPTION_CHOICE, .choices = mask_names,
               .def = FG_COUPLING_MASK_CHANNEL,
               .doc = "which part conditions: channel halves or a checkerboard, or the other" },
    [SCALE] = { .key = "scale", .type = FG_OPTION_CHOICE, .choices = layer_scale_names,
                .def = FG_COUPLING_SCALE_SIGMOID, .when_key = "type",
                .when_value = FG_TRANSFORM_AFFINE, .when_what = "affine couplings",
                .doc = "bound on the scale: sigmoid(h + 2) (Glow) or exp(tanh(h)) (RealNVP)" },
    [NET] = { .key = "net", .type = FG_OPTION_CHOICE, .choices = net_names, .def = CONV,
              .doc = "conv: Glow's three convolutions; dense: ReLU layers on vectors" },
    [LAYERS] = { .key = "layers", .type = FG_OPTION_INT, .def = 4, .lo = 1, .hi = 64,
                 .when_key = "net", .when_value = DENSE,
                 .when_what = "dense coupling networks",
                 .doc = "hidden layers of width hidden" },
    [BINS] = { .key = "bins", .type = FG_OPTION_INT, .def = 8, .lo = 2, .hi = FG_RQ_MAX_BINS,
               .when_key = "type", .when_value = FG_TRANSFORM_SPLINE,
               .when_what = "spline transforms", .doc = "bins of the spline" },
    [BOUND] = { .key = "bound", .type = FG_OPTION_REAL, .def = 3, .lo = 0, .lo_open = 1,
                .hi = 1e4, .when_key = "type", .when_value = FG_TRANSFORM_SPLINE,
                .when_what = "spline transforms",
                .doc = "the spline covers [-bound, bound] in and out" },
    [CONDITIONER] = { .key = "conditioner", .type = FG_OPTION_NETWORK, .modules = modules,
                      .n_modules = FG_NET_KINDS,
                      .doc = "the network as a list of modules ending in its output; "
                             "default: the one net names" },
};

static int is_channel_mask(const fg_layer_spec *l)
{
    int m = layer_int(l, MASK);
    return m == FG_COUPLING_MASK_CHANNEL || m == FG_COUPLING_MASK_CHANNEL_FLIP;
}

static int shape(const fg_layer_spec *l, fg_chw in, fg_chw *out)
{
    char s[64];
    layer_shape_str(in, s, sizeof s);
    *out = in;
    if (is_channel_mask(l) && (in.c < 2 || in.c % 2))
        return fg_error("coupling with a channel mask needs an even number of channels to "
                        "cut in halves, but the shape here is %s (CxHxW; add a squeeze "
                        "first, or use mask: checkerboard)", s);
    if (layer_int(l, NET) == DENSE && (in.h != 1 || in.w != 1 || !is_channel_mask(l)))
        return fg_error("a dense coupling works on vectors with a channel mask, but the "
                        "shape here is %s (CxHxW; add a flatten first, and use mask: "
                        "channel or channel_flip)", s);
    if (!is_channel_mask(l) && in.h * in.w < 2)
        return fg_error("coupling with a checkerboard mask needs at least 2 pixels, but the "
                        "shape here is %s (CxHxW)", s);
    return FG_OK;
}

static int kernel_of(double choice)
{
    return choice == 0 ? 1 : 3;
}

/* The listed modules as flows/ takes them; widths capped as the build
 * says. Returns the count (0: the default network). */
static int network(const fg_layer_spec *l, const fg_layer_build *b, fg_net_layer *net)
{
    int n = layer_int(l, CONDITIONER);
    for (int i = 0; i < n; i++) {
        const fg_module_spec *s = &l->net[i];
        fg_net_layer *m = &net[i];
        *m = (fg_net_layer){ .kind = (fg_net_kind)s->kind };
        switch (s->kind) {
        case FG_NET_CONV:
            m->width = layer_hidden((int)s->opt[WIDTH], b);
            m->kernel = kernel_of(s->opt[KERNEL]);
            m->bias = (int)s->opt[BIAS];
            break;
        case FG_NET_DENSE:
            m->width = layer_hidden((int)s->opt[DENSE_WIDTH], b);
            m->bias = (int)s->opt[DENSE_BIAS];
            break;
        case FG_NET_RESIDUAL:
            m->width = layer_hidden((int)s->opt[RES_WIDTH], b);
            m->kernel = kernel_of(s->opt[RES_KERNEL]);
            m->activation = (fg_net_kind)s->opt[RES_ACTIVATION];
            break;
        case FG_NET_ZERO_CONV:
            m->kernel = kernel_of(s->opt[ZERO_KERNEL]);
            break;
        default:
            break;
        }
    }
    return n;
}

static fg_flow *create(const fg_layer_spec *l, const fg_flow_shape *in, const fg_layer_build *b)
{
    int c = in->dim[1], hidden = layer_hidden(layer_int(l, HIDDEN), b);
    fg_transform_kind type = (fg_transform_kind)layer_int(l, TYPE);
    fg_coupling_mask mask = (fg_coupling_mask)layer_int(l, MASK);
    fg_coupling_scale scale = (fg_coupling_scale)layer_int(l, SCALE);
    fg_net_layer net[FG_LAYER_MAX_MODULES];
    int n = network(l, b, net);
    if (layer_int(l, NET) == DENSE) {
        fg_dense_coupling_options o = {
            .dim = c, .hidden = hidden, .layers = layer_int(l, LAYERS), .transform = type,
            .mask = mask, .scale = scale, .rng = b->rng, .bins = layer_int(l, BINS),
            .bound = (float)l->opt[BOUND], .net = n ? net : NULL, .net_layers = n,
            .cond_channels = l->cond_channels };
        return fg_dense_coupling_create(&o);
    }
    fg_coupling_options o = {
        .channels = c, .hidden = hidden, .transform = type, .rng = b->rng, .mask = mask,
        .scale = scale, .bins = layer_int(l, BINS), .bound = (float)l->opt[BOUND],
        .net = n ? net : NULL, .net_layers = n, .cond_channels = l->cond_channels };
    return fg_coupling_create(&o);
}

/* Channels the network sees and channels that change: a checkerboard
 * network sees and writes every channel. */
static void halves(const fg_layer_spec *l, double *seen, double *changed)
{
    double c = l->in.c, half = (double)(l->in.c / 2);
    *seen = (is_channel_mask(l) ? half : c) + l->cond_channels;
    *changed = is_channel_mask(l) ? c - half : c;
}

/* FLOPs and values of a listed network from seen inputs to co outputs, at
 * pixels positions (1 for vectors); activations cost nothing here, as in
 * the default networks' counts. */
static double listed_cost(const fg_layer_spec *l, double seen, double co, fg_model_size *s)
{
    fg_net_layer net[FG_LAYER_MAX_MODULES];
    fg_layer_build full = {0};
    int n = network(l, &full, net), image = layer_int(l, NET) != DENSE;
    int h = image ? l->in.h : 1, w = image ? l->in.w : 1;
    double width = seen, flops = 0, params = 0, buffers = 0;
    for (int i = 0; i < n; i++) {
        const fg_net_layer *m = &net[i];
        int k = image ? m->kernel : 1;
        double inner = m->width ? m->width : width;
        switch (m->kind) {
        case FG_NET_CONV:
        case FG_NET_DENSE:
            flops += layer_conv_flops(width, m->width, k, h, w);
            params += layer_conv_params(width, m->width, k, m->bias, 0);
            width = m->width;
            break;
        case FG_NET_ACTNORM:
            params += 2 * width;
            buffers += 1;
            break;
        case FG_NET_RESIDUAL:
            flops += 2 * layer_conv_flops(width, inner, k, h, w);
            params += layer_conv_params(width, inner, k, 1, 0) +
                      layer_conv_params(inner, width, k, 1, 0);
            break;
        case FG_NET_ZERO_CONV:
        case FG_NET_ZERO_DENSE:
            flops += layer_conv_flops(width, co, k, h, w);
            params += layer_conv_params(width, co, k, 1, m->kind == FG_NET_ZERO_CONV);
            break;
        default:
            break;
        }
    }
    if (s) {
        s->params += params;
        s->buffers += buffers;
    }
    return flops;
}

static double flops(const fg_layer_spec *l)
{
    double hid = layer_int(l, HIDDEN), seen, changed;
    halves(l, &seen, &changed);
    double co = fg_transform_width((fg_transform_kind)layer_int(l, TYPE), layer_int(l, BINS)) *
                changed;
    if (layer_int(l, CONDITIONER))
        return listed_cost(l, seen, co, NULL);
    if (layer_int(l, NET) == DENSE)
        return 2.0 * hid * (seen + (layer_int(l, LAYERS) - 1) * hid + co);
    int h = l->in.h, w = l->in.w;
    return layer_conv_flops(seen, hid, 3, h, w) + layer_conv_flops(hid, hid, 1, h, w) +
           layer_conv_flops(hid, co, 3, h, w);
}

static void size(const fg_layer_spec *l, fg_model_size *s)
{
    double h = layer_int(l, HIDDEN), seen, changed;
    halves(l, &seen, &changed);
    double co = fg_transform_width((fg_transform_kind)layer_int(l, TYPE), layer_int(l, BINS)) *
                changed;
    if (layer_int(l, CONDITIONER)) {
        listed_cost(l, seen, co, s);
        return;
    }
    if (layer_int(l, NET) == DENSE) {
        double in = seen;
        for (int i = 0; i < layer_int(l, LAYERS); i++, in = h)
            s->params += layer_linear_params(in, h);
        s->params += layer_linear_params(h, co);
        return;
    }
    /* conv3x3, actnorm, conv1x1, actnorm, zero conv3x3 */
    s->params += layer_conv_params(seen, h, 3, 0, 0) + 2 * h + layer_conv_params(h, h, 1, 0, 0) +
                 2 * h + layer_conv_params(h, co, 3, 1, 1);
    s->buffers += 2;
}

static const char *describe(const fg_layer_spec *l, char *buf, size_t n)
{
    char transform[64], layers[32] = "", net[512];
    layer_transform_str(l, TYPE, SCALE, BINS, BOUND, transform, sizeof transform);
    if (layer_int(l, NET) == DENSE)
        snprintf(layers, sizeof layers, " layers=%d", layer_int(l, LAYERS));
    if (layer_int(l, CONDITIONER))
        snprintf(buf, n, "coupling %s%s mask=%s%s conditioner=%s",
                 layer_transform_names[layer_int(l, TYPE)],
                 layer_int(l, NET) == DENSE ? " net=dense" : "", mask_names[layer_int(l, MASK)],
                 transform, layer_network_str(l, CONDITIONER, net, sizeof net));
    else
        snprintf(buf, n, "coupling %s%s hidden=%d%s mask=%s%s",
                 layer_transform_names[layer_int(l, TYPE)],
                 layer_int(l, NET) == DENSE ? " net=dense" : "", layer_int(l, HIDDEN), layers,
                 mask_names[layer_int(l, MASK)], transform);
    return buf;
}

const fg_layer_kind fg_layer_coupling = {
    .name = "coupling",
    .doc = "affine, additive or spline coupling; channel masks need an even channel count",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .shape = shape,
    .create = create,
    .flops = flops,
    .size = size,
    .describe = describe,
};
