/* scale_diag: NICE's diagonal scaling. */
#include "models/layer_internal.h"

static fg_flow *create(const fg_layer_spec *l, const fg_flow_shape *in, const fg_layer_build *b)
{
    (void)l, (void)b;
    return fg_scale_diag_create(in->dim[1]);
}

static void size(const fg_layer_spec *l, fg_model_size *s)
{
    s->params += l->in.c;
}

const fg_layer_kind fg_layer_scale_diag = {
    .name = "scale_diag",
    .doc = "NICE's diagonal scaling, x * exp(logs) with logs per channel",
    .create = create,
    .size = size,
};
