/* actnorm: per-channel affine map, initialized from the first batch. */
#include "models/layer_internal.h"

enum { SCALE };

static const fg_layer_option options[] = {
    [SCALE] = { .key = "scale", .type = FG_OPTION_REAL, .def = 1.0, .lo = 0, .lo_open = 1,
                .hi = 1e6, .doc = "the std the first batch is scaled to" },
};

static fg_flow *create(const fg_layer_spec *l, const fg_flow_shape *in, const fg_layer_build *b)
{
    (void)b;
    fg_actnorm_options o = { in->dim[1], (float)l->opt[SCALE] };
    return fg_actnorm_create(&o);
}

static void size(const fg_layer_spec *l, fg_model_size *s)
{
    s->params += 2.0 * l->in.c;
    s->buffers += 1;
}

const fg_layer_kind fg_layer_actnorm = {
    .name = "actnorm",
    .doc = "per-channel (x + bias) * exp(logs), initialized from the first batch",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .create = create,
    .size = size,
};
