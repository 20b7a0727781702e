/* flatten: an image into a vector, carried as a 1x1 image. */
#include "models/layer_internal.h"

static int shape(const fg_layer_spec *l, fg_chw in, fg_chw *out)
{
    (void)l;
    *out = (fg_chw){ in.c * in.h * in.w, 1, 1 };
    return FG_OK;
}

static fg_flow *create(const fg_layer_spec *l, const fg_flow_shape *in, const fg_layer_build *b)
{
    (void)l, (void)b;
    /* The actual input, which a reduced build makes smaller than the spec's. */
    fg_flatten_options o = { in->dim[1], in->dim[2], in->dim[3] };
    return fg_flatten_create(&o);
}

const fg_layer_kind fg_layer_flatten = {
    .name = "flatten",
    .doc = "CxHxW -> (C*H*W)x1x1: vectors carried as 1x1 images",
    .shape = shape,
    .create = create,
};
