/* What a model holds once built, counted from its spec alone, so that a
 * config from outside (a checkpoint's) is sized before anything of that
 * size is allocated. Each layer kind counts its own (models/layer_*.c,
 * mirroring the layers' create functions and the state names of
 * flows/flow.h); tests/test_config.c compares the counts with built models
 * for every config of the project. */
#include "models/model.h"
#include "models/layer_internal.h"

void fg_model_spec_size(const fg_model_spec *spec, fg_model_size *s)
{
    s->params = s->buffers = s->extra_bytes = 0;
    for (int i = 0; i < spec->n_layers; i++)
        fg_layer_spec_size(&spec->layers[i], s);
    double top = spec->top.c;
    if (spec->learn_top)
        s->params += layer_conv_params(2 * top + spec->cond_channels, 2 * top, 3, 1, 1);
    if (spec->y_condition) {
        s->params += layer_linear_params(spec->classes, 2 * top);   /* the prior's project_y */
        s->params += layer_linear_params(top, spec->classes);       /* the class head */
    }
    /* Every parameter has a gradient next to its value. */
    s->build_bytes = (2 * s->params + s->buffers) * sizeof(float) + s->extra_bytes;
}
