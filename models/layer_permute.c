/* permute: a fixed channel permutation, reversed or shuffled. */
#include "models/layer_internal.h"

enum { TYPE };
enum { REVERSE, SHUFFLE };

static const char *const type_names[] = { [REVERSE] = "reverse", [SHUFFLE] = "shuffle", NULL };

static const fg_layer_option options[] = {
    [TYPE] = { .key = "type", .type = FG_OPTION_CHOICE, .choices = type_names,
               .required = 1, .bare = 1,
               .doc = "reverse the channels, or a shuffle drawn at creation and saved" },
};

static fg_flow *create(const fg_layer_spec *l, const fg_flow_shape *in, const fg_layer_build *b)
{
    fg_permute_options o = { in->dim[1], layer_int(l, TYPE) == SHUFFLE,
                             b->order_rng ? b->order_rng : b->rng };
    return fg_permute_create(&o);
}

static void size(const fg_layer_spec *l, fg_model_size *s)
{
    if (layer_int(l, TYPE) == SHUFFLE)
        s->buffers += l->in.c;
}

const fg_layer_kind fg_layer_permute = {
    .name = "permute",
    .doc = "fixed channel permutation",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .create = create,
    .size = size,
};
