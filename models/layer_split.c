/* split: half the channels leave the chain as a latent of this level. */
#include "models/layer_internal.h"

enum { PRIOR, LOGS_FLOOR };
enum { LEARNED, STANDARD };

static const char *const prior_names[] = { [LEARNED] = "learned", [STANDARD] = "standard", NULL };

static const fg_layer_option options[] = {
    [PRIOR] = { .key = "prior", .type = FG_OPTION_CHOICE, .choices = prior_names,
                .def = LEARNED,
                .doc = "the latent's Gaussian from a zero conv of the kept half, or N(0, 1)" },
    [LOGS_FLOOR] = { .key = "logs_floor", .type = FG_OPTION_REAL, .def = 0, .lo = 0,
                     .hi = 30, .when_key = "prior", .when_value = LEARNED,
                     .when_what = "a learned prior",
                     .doc = "0, or F: the learned log-std is kept above -F (softplus)" },
};

static int shape(const fg_layer_spec *l, fg_chw in, fg_chw *out)
{
    (void)l;
    char s[64];
    layer_shape_str(in, s, sizeof s);
    if (in.c < 2 || in.c % 2)
        return fg_error("split needs an even number of channels to cut in halves, but the "
                        "shape here is %s (CxHxW; add a squeeze first)", s);
    *out = (fg_chw){ in.c / 2, in.h, in.w };
    return FG_OK;
}

static fg_flow *create(const fg_layer_spec *l, const fg_flow_shape *in, const fg_layer_build *b)
{
    (void)b;
    fg_split_options o = { in->dim[1], layer_int(l, PRIOR) == STANDARD, l->cond_channels,
                           (float)l->opt[LOGS_FLOOR] };
    return fg_split_create(&o);
}

static double flops(const fg_layer_spec *l)
{
    /* The standard prior has no conv. */
    int c = l->in.c, half = c / 2;
    if (layer_int(l, PRIOR) != LEARNED)
        return 0;
    return layer_conv_flops(half + l->cond_channels, 2 * (c - half), 3, l->in.h, l->in.w);
}

static void size(const fg_layer_spec *l, fg_model_size *s)
{
    double c = l->in.c, half = (double)(l->in.c / 2);
    if (layer_int(l, PRIOR) == LEARNED)
        s->params += layer_conv_params(half + l->cond_channels, 2 * (c - half), 3, 1, 1);
}

const fg_layer_kind fg_layer_split = {
    .name = "split",
    .doc = "half the channels leave as this level's latent; even channel count, never last",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .roles = FG_FLOW_ROLE_SPLIT,
    .shape = shape,
    .create = create,
    .flops = flops,
    .size = size,
};
