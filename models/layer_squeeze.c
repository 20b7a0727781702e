/* squeeze: space-to-depth by 2, CxHxW -> 4C x H/2 x W/2. The smallest
 * entry, and the one to copy for a new kind: name, docs, options (none
 * here), the shape rule, create; the costs are left NULL because a
 * squeeze only moves values. Then one line in models/layer_registry.c. */
#include "models/layer_internal.h"

static int shape(const fg_layer_spec *l, fg_chw in, fg_chw *out)
{
    (void)l;
    char s[64];
    layer_shape_str(in, s, sizeof s);
    if (in.h % 2 || in.w % 2)
        return fg_error("squeeze needs an even height and width, but the shape here is %s "
                        "(CxHxW)", s);
    *out = (fg_chw){ in.c * 4, in.h / 2, in.w / 2 };
    return FG_OK;
}

static fg_flow *create(const fg_layer_spec *l, const fg_flow_shape *in, const fg_layer_build *b)
{
    (void)l, (void)in, (void)b;
    return fg_squeeze_create();
}

const fg_layer_kind fg_layer_squeeze = {
    .name = "squeeze",
    .doc = "space to depth by 2: CxHxW -> 4C x H/2 x W/2; height and width must be even",
    .shape = shape,
    .create = create,
};
