/* What a model holds once built, counted from its spec alone, so that a
 * config from outside (a checkpoint's) is sized before anything of that
 * size is allocated. Mirrors the layers' create functions and the state
 * names of flows/flow.h; tests/test_config.c compares it with built models
 * for every config of the project. */
#include "models/model.h"

/* A conv of co x ci x k x k, with bias and (zero conv) logs. */
static double conv(double ci, double co, int k, int bias, int logs)
{
    return co * ci * k * k + (bias ? co : 0) + (logs ? co : 0);
}

/* A linear map in -> out with bias. */
static double linear(double in, double out)
{
    return in * out + out;
}

static void layer(const fg_layer_spec *l, fg_model_size *s)
{
    double c = l->in.c;
    switch (l->kind) {
    case FG_LAYER_SQUEEZE:
    case FG_LAYER_FLATTEN:
        break;
    case FG_LAYER_ACTNORM:
        s->params += 2 * c;
        s->buffers += 1;
        break;
    case FG_LAYER_SCALE_DIAG:
        s->params += c;
        break;
    case FG_LAYER_PERMUTE:
        if (l->u.permute.type == FG_PERMUTE_SHUFFLE)
            s->buffers += c;
        break;
    case FG_LAYER_INVCONV:
        if (l->u.invconv.lu) {
            s->params += 2 * c * c + c;
            s->buffers += 2 * c;
            s->extra_bytes += 3 * c * c * sizeof(float);   /* the constant masks */
        } else {
            s->params += c * c;
        }
        break;
    case FG_LAYER_SPLIT:
        if (l->u.split.prior == FG_SPLIT_LEARNED) {
            double half = (double)(l->in.c / 2);
            s->params += conv(half, 2 * (c - half), 3, 1, 1);
        }
        break;
    case FG_LAYER_COUPLING: {
        double h = l->u.coupling.hidden;
        double width = fg_coupling_kind_width(l->u.coupling.type, l->u.coupling.bins);
        if (l->u.coupling.dense) {
            double half = (double)(l->in.c / 2), in = half;
            for (int i = 0; i < l->u.coupling.layers; i++, in = h)
                s->params += linear(in, h);
            s->params += linear(h, width * (c - half));
            break;
        }
        int checker = l->u.coupling.mask == FG_MASK_CHECKERBOARD ||
                      l->u.coupling.mask == FG_MASK_CHECKERBOARD_FLIP;
        double seen = checker ? c : (double)(l->in.c / 2);
        double changed = checker ? c : c - (double)(l->in.c / 2);
        /* conv3x3, actnorm, conv1x1, actnorm, zero conv3x3 */
        s->params += conv(seen, h, 3, 0, 0) + 2 * h + conv(h, h, 1, 0, 0) + 2 * h +
                     conv(h, width * changed, 3, 1, 1);
        s->buffers += 2;
        break;
    }
    case FG_LAYER_MAF:
    case FG_LAYER_IAF: {
        double h = l->u.autoregressive.hidden, in = c;
        for (int i = 0; i < l->u.autoregressive.layers; i++, in = h) {
            s->params += linear(in, h);
            s->extra_bytes += in * h * sizeof(float);   /* the mask */
        }
        double out = c * fg_coupling_kind_width(l->u.autoregressive.type,
                                                l->u.autoregressive.bins);
        s->params += linear(h, out);
        s->extra_bytes += h * out * sizeof(float);
        break;
    }
    }
}

void fg_model_spec_size(const fg_model_spec *spec, fg_model_size *s)
{
    s->params = s->buffers = s->extra_bytes = 0;
    for (int i = 0; i < spec->n_layers; i++)
        layer(&spec->layers[i], s);
    double top = spec->top.c;
    if (spec->learn_top)
        s->params += conv(2 * top, 2 * top, 3, 1, 1);
    if (spec->y_condition) {
        s->params += linear(spec->classes, 2 * top);   /* the prior's project_y */
        s->params += linear(top, spec->classes);       /* the class head */
    }
    /* Every parameter has a gradient next to its value. */
    s->build_bytes = (2 * s->params + s->buffers) * sizeof(float) + s->extra_bytes;
}
