/* The multi-scale chain one unit at a time (see flows/units.h).
 *
 * Without a tape, a forward or inverse pass still allocates every op's
 * output from the graph's arena, and the arena frees nothing before the
 * step ends: a no-grad pass over a Glow holds every coupling network's
 * hidden activations at once, nearly what a recorded pass holds. Here each
 * unit runs between an arena mark and a rewind: its output (and a split's
 * latent) is copied into buffers allocated before the loop, and everything
 * else it made is given back, so a pass needs the largest unit's
 * intermediates plus a few tensors of the chain's width. The values are
 * those of the plain pass: the same ops run on the same inputs. */
#include "flows/units.h"

#include <string.h>

size_t fg_flow_shape_numel(const fg_flow_shape *s)
{
    size_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= (size_t)s->dim[i];
    return n;
}

static int count_units(fg_flow *f)
{
    if (!(f->ops->roles & FG_FLOW_ROLE_SEQUENCE))
        return 1;
    int n = 0;
    for (int i = 0; i < fg_sequence_length(f); i++)
        n += count_units(fg_sequence_layer(f, i));
    return n;
}

static void add_units(fg_flow *f, fg_flow_shape *cur, fg_unit_plan *p)
{
    if (f->ops->roles & FG_FLOW_ROLE_SEQUENCE) {
        for (int i = 0; i < fg_sequence_length(f); i++)
            add_units(fg_sequence_layer(f, i), cur, p);
        return;
    }
    fg_unit *u = &p->units[p->n++];
    u->f = f;
    u->in = *cur;
    if (fg_flow_out_shape(f, cur, &u->out) != FG_OK)
        fg_fatal("multiscale", "%s", fg_last_error());
    u->latent = -1;
    if (f->ops->roles & FG_FLOW_ROLE_SPLIT) {
        FG_CHECK(p->n_latents < FG_FLOW_MAX_LATENTS, "multiscale", "more than %d latents",
                 FG_FLOW_MAX_LATENTS);
        /* x -> (z1, z2): z2 holds the channels z1 does not. */
        fg_flow_shape z2 = u->in;
        z2.dim[1] = u->in.dim[1] - u->out.dim[1];
        u->latent = p->n_latents;
        p->latent[p->n_latents++] = z2;
    }
    size_t a = fg_flow_shape_numel(&u->in), b = fg_flow_shape_numel(&u->out);
    if (a > p->max_numel)
        p->max_numel = a;
    if (b > p->max_numel)
        p->max_numel = b;
    *cur = u->out;
}

void fg_unit_plan_make(fg_graph *g, fg_flow *body, const fg_flow_shape *in, fg_unit_plan *p)
{
    memset(p, 0, sizeof *p);
    int n = count_units(body);
    p->units = fg_arena_alloc(fg_graph_arena(g), (size_t)(n ? n : 1) * sizeof *p->units);
    fg_flow_shape cur = *in;
    p->max_numel = fg_flow_shape_numel(in);
    add_units(body, &cur, p);
}

static fg_var *wrap(fg_graph *g, float *data, const fg_flow_shape *s)
{
    return fg_const_wrap(g, data, s->ndim, s->dim);
}

static void copy_into(float *dst, const fg_var *v, const fg_flow_shape *s, const char *what)
{
    size_t n = fg_flow_shape_numel(s);
    FG_CHECK(fg_numel(&v->t) == n, "multiscale", "%s has %zu values, its shape says %zu",
             what, fg_numel(&v->t), n);
    if (dst != v->t.data)
        memcpy(dst, v->t.data, n * sizeof *dst);
}

static void add_into(fg_var *sum, const fg_var *term)
{
    if (!term)
        return;
    size_t n = fg_numel(&sum->t);
    FG_CHECK(fg_numel(&term->t) == n, "multiscale", "a per-sample term has %zu values, "
             "expected %zu", fg_numel(&term->t), n);
    for (size_t i = 0; i < n; i++)
        sum->t.data[i] += term->t.data[i];
}

static int needs_init(fg_flow *f)
{
    return fg_flow_init_pending(f) > 0;
}

void fg_units_forward(fg_graph *g, const fg_unit_plan *p, fg_var *x, int init_actnorm,
                      fg_unit_values *out)
{
    fg_units_forward_probed(g, p, x, init_actnorm, out, NULL);
}

void fg_units_forward_probed(fg_graph *g, const fg_unit_plan *p, fg_var *x, int init_actnorm,
                             fg_unit_values *out, float *probes)
{
    fg_arena *a = fg_graph_arena(g);
    float *buf[2];
    for (int i = 0; i < 2; i++)
        buf[i] = fg_arena_alloc(a, p->max_numel * sizeof(float));
    for (int k = 0; k < p->n_latents; k++)
        out->latents[k] = fg_const(g, p->latent[k].ndim, p->latent[k].dim);
    int n[1] = {x->t.shape[0]};
    out->logdet = fg_const(g, 1, n);
    out->logp = fg_const(g, 1, n);
    fg_var *cur = x;
    for (int i = 0; i < p->n; i++) {
        const fg_unit *u = &p->units[i];
        fg_graph_mark m = fg_graph_mark_now(g);
        int was = fg_set_grad_enabled(g, init_actnorm && fg_grad_enabled(g) && needs_init(u->f));
        fg_flow_ctx ctx;
        fg_flow_ctx_init(&ctx);
        ctx.condition = p->condition;
        fg_var *ld = NULL;
        fg_var *y = fg_flow_forward(u->f, g, cur, &ld, &ctx);
        fg_set_grad_enabled(g, was);
        FG_CHECK(ctx.n_latents == (u->latent >= 0), "multiscale",
                 "unit %d (%s) split off %d latents", i, fg_flow_kind(u->f), ctx.n_latents);
        add_into(out->logdet, ld);
        add_into(out->logp, ctx.logp);
        if (u->latent >= 0)
            copy_into(out->latents[u->latent]->t.data, ctx.latents[0], &p->latent[u->latent],
                      "a split-off latent");
        float *dst = buf[i % 2];
        copy_into(dst, y, &u->out, "a unit's output");
        size_t numel = fg_flow_shape_numel(&u->out);
        for (int k = 0; probes && k < FG_UNIT_PROBES; k++)
            probes[(size_t)i * FG_UNIT_PROBES + k] = dst[fg_unit_probe_index(k, numel)];
        fg_graph_rewind(g, &m);
        cur = wrap(g, dst, &u->out);
    }
    out->top = cur;
}

fg_var *fg_units_inverse(fg_graph *g, const fg_unit_plan *p, fg_var *top, fg_flow_ctx *ctx)
{
    fg_arena *a = fg_graph_arena(g);
    float *buf[2];
    for (int i = 0; i < 2; i++)
        buf[i] = fg_arena_alloc(a, p->max_numel * sizeof(float));
    int was = fg_set_grad_enabled(g, 0);
    fg_var *cur = top;
    for (int i = p->n - 1, j = 0; i >= 0; i--, j++) {
        const fg_unit *u = &p->units[i];
        fg_graph_mark m = fg_graph_mark_now(g);
        fg_var *x = fg_flow_inverse(u->f, g, cur, NULL, ctx);
        float *dst = buf[j % 2];
        copy_into(dst, x, &u->in, "a unit's input");
        fg_graph_rewind(g, &m);
        cur = wrap(g, dst, &u->in);
    }
    fg_set_grad_enabled(g, was);
    return cur;
}
