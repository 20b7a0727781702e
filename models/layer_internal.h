/* Shared by the layer kinds' entries (models/layer_*.c) and the models/
 * code that names a kind itself (the glow preset); not installed. */
#ifndef FLOWGRAD_MODELS_LAYER_INTERNAL_H
#define FLOWGRAD_MODELS_LAYER_INTERNAL_H

#include "models/layer_kind.h"

/* Entries the glow preset and the reduced builds name. */
extern const fg_layer_kind fg_layer_squeeze, fg_layer_actnorm, fg_layer_invconv,
    fg_layer_permute, fg_layer_coupling, fg_layer_split;

/* Option i of l as an int (ints, bools and choices are whole numbers). */
static inline int layer_int(const fg_layer_spec *l, int i)
{
    return (int)l->opt[i];
}

/* hidden capped by a reduced build's max_hidden. */
static inline int layer_hidden(int hidden, const fg_layer_build *b)
{
    return b->max_hidden > 0 && hidden > b->max_hidden ? b->max_hidden : hidden;
}

/* Sets choice option key of l to the choice called name; a key or name the
 * kind does not have stops (a caller's bug). */
void layer_set_choice(fg_layer_spec *l, const char *key, const char *name);

/* "4x14x14" (CxHxW), as every shape message shows it. */
void layer_shape_str(fg_chw s, char *buf, size_t n);

/* Multiply-adds x 2 of a k x k convolution ci -> co over h x w. */
static inline double layer_conv_flops(double ci, double co, int k, int h, int w)
{
    return 2.0 * ci * co * k * k * (double)h * w;
}

/* Values of a co x ci x k x k conv, with bias and (zero conv) logs. */
static inline double layer_conv_params(double ci, double co, int k, int bias, int logs)
{
    return co * ci * k * k + (bias ? co : 0) + (logs ? co : 0);
}

/* Values of a linear map in -> out with bias. */
static inline double layer_linear_params(double in, double out)
{
    return in * out + out;
}

/* Names of the shared choices, indexed by the flows/ enums they stand for. */
extern const char *const layer_transform_names[];   /* fg_transform_kind */
extern const char *const layer_scale_names[];       /* fg_coupling_scale */

/* "[conv width=64 kernel=3 bias=true, relu, zero_conv kernel=3]": the
 * list of l's network option (index option), each module with its options
 * that apply; "" for the default network. */
const char *layer_network_str(const fg_layer_spec *l, int option, char *buf, size_t n);

/* " scale=sigmoid", " bins=8 bound=3" or "": the options of l's transform
 * that apply, given the indices of its type, scale, bins and bound. */
const char *layer_transform_str(const fg_layer_spec *l, int type, int scale, int bins,
                                int bound, char *buf, size_t n);

#endif
