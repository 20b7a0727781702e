/* dense_coupling: the coupling of NICE on vectors (N, D), or (N, D, 1, 1)
 * as flatten gives them: flows/coupling.c's layer with a vector network,
 * by default fully connected ReLU layers D/2 -> hidden (-> hidden)* -> D/2
 * times the map's width (1 additive, 2 affine, 3K - 1 spline), whose last
 * layer starts at zero so the layer begins as the identity (affine with
 * sigmoid scale: a scale of sigmoid(2)). The state keeps this network's
 * names, hidden.<i> and out. */
#include "flows/layer.h"

#include <stdio.h>
#include <stdlib.h>

fg_flow *fg_dense_coupling_create(const fg_dense_coupling_options *o)
{
    static const char kind[] = "dense_coupling";
    if (o->dim < 2 || o->dim % 2) {
        fg_error("dense_coupling: needs an even dimension of at least 2, got %d", o->dim);
        return NULL;
    }
    if (!o->net && (o->hidden <= 0 || o->layers < 1)) {
        fg_error("dense_coupling: hidden width %d and layer count %d must be positive",
                 o->hidden, o->layers);
        return NULL;
    }
    if (o->mask != FG_COUPLING_MASK_CHANNEL && o->mask != FG_COUPLING_MASK_CHANNEL_FLIP) {
        fg_error("dense_coupling: mask must be channel or channel_flip (halves of the "
                 "vector), got %d", (int)o->mask);
        return NULL;
    }
    fg_coupling_map map;
    if (fg_coupling_map_init(&map, kind, o->transform, o->scale, o->bins, o->bound) != FG_OK)
        return NULL;
    if (!o->rng) {
        fg_error("dense_coupling: needs an RNG for its network's weights");
        return NULL;
    }
    fg_coupling_setup s = {
        .kind = kind, .channels = o->dim, .vectors = 1, .mask = o->mask, .map = map,
        .net = o->net, .net_layers = o->net_layers, .cond_channels = o->cond_channels,
        .rng = o->rng,
    };
    if (o->net)
        return fg_coupling_build(&s);
    /* hidden.<i> with a ReLU after each, then out. */
    int n = 2 * o->layers + 1;
    fg_net_layer *mlp = fg_xcalloc((size_t)n, sizeof *mlp, kind);
    char (*names)[32] = fg_xcalloc((size_t)n, sizeof *names, kind);
    for (int i = 0; i < o->layers; i++) {
        snprintf(names[2 * i], sizeof names[0], "hidden.%d", i);
        mlp[2 * i] = (fg_net_layer){.kind = FG_NET_DENSE, .width = o->hidden, .bias = 1,
                                    .name = names[2 * i]};
        mlp[2 * i + 1] = (fg_net_layer){.kind = FG_NET_RELU};
    }
    mlp[n - 1] = (fg_net_layer){.kind = FG_NET_ZERO_DENSE, .name = "out"};
    s.net = mlp;
    s.net_layers = n;
    fg_flow *f = fg_coupling_build(&s);
    free(names);
    free(mlp);
    return f;
}
