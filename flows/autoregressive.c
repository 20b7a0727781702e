/* Masked autoregressive (MAF) and inverse autoregressive (IAF) flows on
 * vectors (N, D), or (N, D, 1, 1) as flatten gives them: the transform of
 * the couplings (coupling_map.c), each entry's parameters from a MADE
 * network of the entries before it (flow.h has the definitions).
 *
 * Both directions come from two procedures on the side u that the network
 * reads (x for MAF, z for IAF) and the other side w = t(u; MADE(u)):
 *   one pass   u -> w: the network once, then the transform;
 *   D passes   w -> u: start from u = 0; each pass u <- t^-1(w; MADE(u))
 *              makes one more entry exact, since entry i's parameters
 *              depend only on entries before i. After D passes u is exact
 *              and so are the last pass's parameters, hence its
 *              log-derivative sum.
 * MAF's forward and IAF's inverse are the one pass; the others take D.
 * The log-derivative sum is log|dw/du|, added going u -> w in the layer's
 * own direction convention and subtracted going back. */
#include "flows/layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct masked {
    fg_linear lin;
    float *mask;            /* (out, in), 1 where a connection may exist */
} masked;

typedef struct autoregressive {
    fg_flow base;
    int dim, hidden, layers, inverse;
    fg_coupling_map map;
    masked *hid;            /* hidden.<i> */
    masked out;             /* out: D x the map's width */
} autoregressive;

static const char kind_maf[] = "maf", kind_iaf[] = "iaf";

static const char *kind_of(const autoregressive *a)
{
    return a->inverse ? kind_iaf : kind_maf;
}

/* Degree of hidden unit k: 1..D-1 in turn, so every degree has units. */
static int hidden_degree(int k, int dim)
{
    return k % (dim - 1) + 1;
}

/* The masks of Germain et al. (2015): input i has degree i + 1; a hidden
 * unit of degree m sees inputs and units of degree <= m; the outputs of
 * entry j (width consecutive units) see units of degree <= j, i.e. < j + 1. */
static void make_masks(autoregressive *a, int width)
{
    const int D = a->dim, H = a->hidden;
    for (int l = 0; l < a->layers; l++) {
        int in = l ? H : D;
        masked *m = &a->hid[l];
        for (int k = 0; k < H; k++)
            for (int i = 0; i < in; i++) {
                int from = l ? hidden_degree(i, D) : i + 1;
                m->mask[(size_t)k * in + i] = hidden_degree(k, D) >= from ? 1.0f : 0.0f;
            }
    }
    for (int o = 0; o < D * width; o++)
        for (int k = 0; k < H; k++)
            a->out.mask[(size_t)o * H + k] = hidden_degree(k, D) < o / width + 1 ? 1.0f : 0.0f;
}

static void masked_init(masked *m, int in, int out, float std, fg_rng *rng, const char *kind)
{
    fg_linear_init(&m->lin, in, out, 1, std, rng);
    m->mask = fg_xcalloc((size_t)in * out, sizeof *m->mask, kind);
}

/* Zeroes the weights the mask removes, so the stored weights are the ones
 * in use; masked entries get no gradient and stay zero. */
static void apply_mask_to_weights(masked *m)
{
    size_t n = fg_numel(&m->lin.weight->t);
    fg_k_mul(n, m->lin.weight->t.data, m->mask, m->lin.weight->t.data);
}

static fg_var *masked_apply(fg_graph *g, masked *m, fg_var *x)
{
    int shape[2] = {m->lin.out, m->lin.in};
    fg_var *w = fg_mul(g, m->lin.weight, fg_const_wrap(g, m->mask, 2, shape));
    return fg_add_channel(g, fg_matmul(g, x, w, 0, 1), m->lin.bias);
}

/* (N, D) -> (N, D width), in u's rank: (N, D, 1, 1) -> (N, D width, 1, 1). */
static fg_var *made(autoregressive *a, fg_graph *g, fg_var *u)
{
    const int n = u->t.shape[0];
    int flat[2] = {n, a->dim};
    fg_var *h = u->t.ndim == 2 ? u : fg_reshape(g, u, 2, flat);
    for (int i = 0; i < a->layers; i++)
        h = fg_relu(g, masked_apply(g, &a->hid[i], h));
    h = masked_apply(g, &a->out, h);
    int vec[4] = {n, a->out.lin.out, 1, 1};
    return u->t.ndim == 2 ? h : fg_reshape(g, h, 4, vec);
}

static fg_var *one_pass(autoregressive *a, fg_graph *g, fg_var *u, fg_var **lsum)
{
    return fg_coupling_map_apply(g, &a->map, u, made(a, g, u), NULL, +1, lsum);
}

static fg_var *d_passes(autoregressive *a, fg_graph *g, fg_var *w, fg_var **lsum)
{
    fg_var *u = fg_const(g, w->t.ndim, w->t.shape);   /* zeros */
    for (int i = 0; i < a->dim; i++)
        u = fg_coupling_map_apply(g, &a->map, w, made(a, g, u), NULL, -1, lsum);
    return u;
}

static int out_shape(const fg_flow *f, const fg_flow_shape *in, fg_flow_shape *out)
{
    const autoregressive *a = (const autoregressive *)f;
    if (fg_flow_expect_vectors(kind_of(a), in, a->dim) != FG_OK)
        return FG_ERR;
    *out = *in;
    return FG_OK;
}

static fg_var *run(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet, int dir)
{
    autoregressive *a = (autoregressive *)f;
    fg_flow_require_vectors(kind_of(a), x, a->dim);
    fg_coupling_map_check_input(&a->map, kind_of(a), x);
    /* MAF reads x, so its forward is the one pass; IAF reads z. */
    const int one = (dir > 0) != (a->inverse != 0);
    fg_var *lsum;
    fg_var *y = one ? one_pass(a, g, x, &lsum) : d_passes(a, g, x, &lsum);
    if (logdet)
        fg_flow_accumulate(g, logdet, lsum ? lsum : fg_const_scalar(g, 0.0f), one ? +1 : -1,
                           x->t.shape[0]);
    return y;
}

static fg_var *forward(fg_flow *f, fg_graph *g, fg_var *x, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    return run(f, g, x, logdet, +1);
}

static fg_var *inverse(fg_flow *f, fg_graph *g, fg_var *z, fg_var **logdet,
                       fg_flow_ctx *ctx)
{
    (void)ctx;
    return run(f, g, z, logdet, -1);
}

static void visit(fg_flow *f, const char *prefix, fg_visit_fn fn, void *vctx)
{
    autoregressive *a = (autoregressive *)f;
    char p[FG_NAME_LEN], name[FG_NAME_LEN], idx[32];
    fg_flow_prefix(p, sizeof p, prefix, kind_of(a));
    for (int i = 0; i < a->layers; i++) {
        snprintf(idx, sizeof idx, "hidden.%d", i);
        fg_linear_visit(&a->hid[i].lin, fg_name_join(name, sizeof name, p, idx), fn, vctx);
    }
    fg_linear_visit(&a->out.lin, fg_name_join(name, sizeof name, p, "out"), fn, vctx);
}

static void masked_free(masked *m)
{
    fg_linear_free(&m->lin);
    free(m->mask);
}

static void destroy(fg_flow *f)
{
    autoregressive *a = (autoregressive *)f;
    for (int i = 0; i < a->layers; i++)
        masked_free(&a->hid[i]);
    free(a->hid);
    masked_free(&a->out);
    free(a);
}

/* No invert_record: memory by inversion takes the general path (the
 * inverse, then a recorded forward), D passes of the network for a MAF. */
static const fg_flow_ops maf_ops = {kind_maf, out_shape, forward, inverse, visit, destroy, NULL,
                                    0, NULL, NULL};
static const fg_flow_ops iaf_ops = {kind_iaf, out_shape, forward, inverse, visit, destroy, NULL,
                                    0, NULL, NULL};

fg_flow *fg_autoregressive_create(const fg_autoregressive_options *o)
{
    const char *kind = o->inverse ? kind_iaf : kind_maf;
    if (o->dim < 2) {
        fg_error("%s: needs vectors of at least 2 entries, got %d", kind, o->dim);
        return NULL;
    }
    if (o->hidden < 1 || o->layers < 1) {
        fg_error("%s: hidden width %d and layer count %d must be positive", kind, o->hidden,
                 o->layers);
        return NULL;
    }
    if (o->inverse != 0 && o->inverse != 1) {
        fg_error("%s: inverse must be 0 (MAF) or 1 (IAF), got %d", kind, o->inverse);
        return NULL;
    }
    fg_coupling_map map;
    if (fg_coupling_map_init(&map, kind, o->transform, o->scale, o->bins, o->bound) != FG_OK)
        return NULL;
    if (!o->rng) {
        fg_error("%s: needs an RNG for its network's weights", kind);
        return NULL;
    }
    autoregressive *a = fg_xcalloc(1, sizeof *a, kind);
    a->base.ops = o->inverse ? &iaf_ops : &maf_ops;
    a->dim = o->dim;
    a->hidden = o->hidden;
    a->layers = o->layers;
    a->inverse = o->inverse;
    a->map = map;
    a->hid = fg_xcalloc((size_t)o->layers, sizeof *a->hid, kind);
    int in = o->dim;
    for (int i = 0; i < o->layers; i++) {
        /* He initialization, as the dense coupling's network. */
        masked_init(&a->hid[i], in, o->hidden, (float)sqrt(2.0 / in), o->rng, kind);
        in = o->hidden;
    }
    const int width = fg_coupling_map_width(&map);
    masked_init(&a->out, o->hidden, o->dim * width, 0.0f, NULL, kind);
    make_masks(a, width);
    for (int i = 0; i < o->layers; i++)
        apply_mask_to_weights(&a->hid[i]);
    apply_mask_to_weights(&a->out);
    return &a->base;
}
