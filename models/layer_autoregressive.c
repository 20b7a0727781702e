/* maf and iaf: autoregressive flows on vectors with a MADE conditioner,
 * two kinds that differ only in which direction takes one network pass. */
#include <stdio.h>

#include "models/layer_internal.h"

enum { TYPE, HIDDEN, LAYERS, SCALE, BINS, BOUND };

static const fg_layer_option options[] = {
    [TYPE] = { .key = "type", .type = FG_OPTION_CHOICE, .choices = layer_transform_names,
               .def = FG_TRANSFORM_AFFINE, .bare = 1,
               .doc = "the map of each entry, as for coupling" },
    [HIDDEN] = { .key = "hidden", .type = FG_OPTION_INT, .def = 512, .lo = 1, .hi = 65536,
                 .doc = "width of the MADE's hidden layers" },
    [LAYERS] = { .key = "layers", .type = FG_OPTION_INT, .def = 2, .lo = 1, .hi = 64,
                 .doc = "masked hidden layers" },
    [SCALE] = { .key = "scale", .type = FG_OPTION_CHOICE, .choices = layer_scale_names,
                .def = FG_COUPLING_SCALE_SIGMOID, .when_key = "type",
                .when_value = FG_TRANSFORM_AFFINE, .when_what = "affine transforms",
                .doc = "bound on the scale, as for coupling" },
    [BINS] = { .key = "bins", .type = FG_OPTION_INT, .def = 8, .lo = 2, .hi = FG_RQ_MAX_BINS,
               .when_key = "type", .when_value = FG_TRANSFORM_SPLINE,
               .when_what = "spline transforms", .doc = "bins of the spline" },
    [BOUND] = { .key = "bound", .type = FG_OPTION_REAL, .def = 3, .lo = 0, .lo_open = 1,
                .hi = 1e4, .when_key = "type", .when_value = FG_TRANSFORM_SPLINE,
                .when_what = "spline transforms",
                .doc = "the spline covers [-bound, bound] in and out" },
};

extern const fg_layer_kind fg_layer_iaf;

static int is_iaf(const fg_layer_spec *l)
{
    return l->kind == &fg_layer_iaf;
}

static int shape(const fg_layer_spec *l, fg_chw in, fg_chw *out)
{
    char s[64];
    layer_shape_str(in, s, sizeof s);
    *out = in;
    if (in.h != 1 || in.w != 1)
        return fg_error("%s is an autoregressive flow on vectors of at least 2 entries, but "
                        "the shape here is %s (CxHxW; add a flatten first: images are not "
                        "supported)", l->kind->name, s);
    if (in.c < 2)
        return fg_error("%s needs vectors of at least 2 entries, but the shape here is %s "
                        "(CxHxW)", l->kind->name, s);
    return FG_OK;
}

static fg_flow *create(const fg_layer_spec *l, const fg_flow_shape *in, const fg_layer_build *b)
{
    fg_autoregressive_options o = {
        in->dim[1], layer_hidden(layer_int(l, HIDDEN), b), layer_int(l, LAYERS), is_iaf(l),
        (fg_transform_kind)layer_int(l, TYPE), (fg_coupling_scale)layer_int(l, SCALE),
        layer_int(l, BINS), (float)l->opt[BOUND], b->rng };
    return fg_autoregressive_create(&o);
}

/* The MADE's outputs: the transform's parameters of every entry. */
static double outputs(const fg_layer_spec *l)
{
    return (double)l->in.c * fg_transform_width((fg_transform_kind)layer_int(l, TYPE),
                                                layer_int(l, BINS));
}

static double flops(const fg_layer_spec *l)
{
    /* The density direction: one network pass for maf, D for iaf. */
    double c = l->in.c, hid = layer_int(l, HIDDEN);
    double pass = 2.0 * hid * (c + (layer_int(l, LAYERS) - 1) * hid + outputs(l));
    return is_iaf(l) ? c * pass : pass;
}

static void size(const fg_layer_spec *l, fg_model_size *s)
{
    double h = layer_int(l, HIDDEN), in = l->in.c;
    for (int i = 0; i < layer_int(l, LAYERS); i++, in = h) {
        s->params += layer_linear_params(in, h);
        s->extra_bytes += in * h * sizeof(float);   /* the mask */
    }
    s->params += layer_linear_params(h, outputs(l));
    s->extra_bytes += h * outputs(l) * sizeof(float);
}

static const char *describe(const fg_layer_spec *l, char *buf, size_t n)
{
    char transform[64];
    layer_transform_str(l, TYPE, SCALE, BINS, BOUND, transform, sizeof transform);
    /* Which direction costs one pass of the network and which D. */
    snprintf(buf, n, "%s %s hidden=%d layers=%d%s (%s 1 pass, %s %d passes)", l->kind->name,
             layer_transform_names[layer_int(l, TYPE)], layer_int(l, HIDDEN),
             layer_int(l, LAYERS), transform, is_iaf(l) ? "sampling" : "density",
             is_iaf(l) ? "density" : "sampling", l->in.c);
    return buf;
}

const fg_layer_kind fg_layer_maf = {
    .name = "maf",
    .doc = "masked autoregressive flow on vectors: density in 1 pass, sampling in D",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .shape = shape,
    .create = create,
    .flops = flops,
    .size = size,
    .describe = describe,
};

const fg_layer_kind fg_layer_iaf = {
    .name = "iaf",
    .doc = "inverse autoregressive flow on vectors: sampling in 1 pass, density in D",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .shape = shape,
    .create = create,
    .flops = flops,
    .size = size,
    .describe = describe,
};
