/* coupling: one part of the input conditions an invertible map of the
 * rest, through Glow's three convolutions or, on vectors, a dense net. */
#include <stdio.h>

#include "models/layer_internal.h"

enum { TYPE, HIDDEN, MASK, SCALE, NET, LAYERS, BINS, BOUND };
enum { CONV, DENSE };

static const char *const mask_names[] = {
    [FG_COUPLING_MASK_CHANNEL] = "channel",
    [FG_COUPLING_MASK_CHANNEL_FLIP] = "channel_flip",
    [FG_COUPLING_MASK_CHECKERBOARD] = "checkerboard",
    [FG_COUPLING_MASK_CHECKERBOARD_FLIP] = "checkerboard_flip",
    NULL
};
static const char *const net_names[] = { [CONV] = "conv", [DENSE] = "dense", NULL };

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

static fg_flow *create(const fg_layer_spec *l, const fg_flow_shape *in, const fg_layer_build *b)
{
    int c = in->dim[1], hidden = layer_hidden(layer_int(l, HIDDEN), b);
    fg_transform_kind type = (fg_transform_kind)layer_int(l, TYPE);
    fg_coupling_mask mask = (fg_coupling_mask)layer_int(l, MASK);
    fg_coupling_scale scale = (fg_coupling_scale)layer_int(l, SCALE);
    if (layer_int(l, NET) == DENSE) {
        fg_dense_coupling_options o = { c, hidden, layer_int(l, LAYERS), type, mask, scale,
                                        b->rng, layer_int(l, BINS), (float)l->opt[BOUND],
                                        l->cond_channels };
        return fg_dense_coupling_create(&o);
    }
    fg_coupling_options o = { c, hidden, type, b->rng, mask, scale, layer_int(l, BINS),
                              (float)l->opt[BOUND], l->cond_channels };
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

static double flops(const fg_layer_spec *l)
{
    double hid = layer_int(l, HIDDEN), seen, changed;
    halves(l, &seen, &changed);
    double co = fg_transform_width((fg_transform_kind)layer_int(l, TYPE), layer_int(l, BINS)) *
                changed;
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
    char transform[64], layers[32] = "";
    layer_transform_str(l, TYPE, SCALE, BINS, BOUND, transform, sizeof transform);
    if (layer_int(l, NET) == DENSE)
        snprintf(layers, sizeof layers, " layers=%d", layer_int(l, LAYERS));
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
