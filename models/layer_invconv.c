/* invconv: the invertible 1x1 convolution, plain or LU-factored. */
#include "models/layer_internal.h"

enum { LU };

static const fg_layer_option options[] = {
    [LU] = { .key = "lu", .type = FG_OPTION_BOOL, .def = 1,
             .doc = "keep W as its LU factors (log-determinant in O(C))" },
};

static fg_flow *create(const fg_layer_spec *l, const fg_flow_shape *in, const fg_layer_build *b)
{
    fg_invconv_options o = { in->dim[1], layer_int(l, LU), NULL,
                             b->order_rng ? b->order_rng : b->rng };
    return fg_invconv_create(&o);
}

static double flops(const fg_layer_spec *l)
{
    return layer_conv_flops(l->in.c, l->in.c, 1, l->in.h, l->in.w);
}

static void size(const fg_layer_spec *l, fg_model_size *s)
{
    double c = l->in.c;
    if (layer_int(l, LU)) {
        s->params += 2 * c * c + c;
        s->buffers += 2 * c;
        s->extra_bytes += 3 * c * c * sizeof(float);   /* the constant masks */
    } else {
        s->params += c * c;
    }
}

const fg_layer_kind fg_layer_invconv = {
    .name = "invconv",
    .doc = "invertible 1x1 convolution, a learned mix of the channels",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .create = create,
    .flops = flops,
    .size = size,
};
