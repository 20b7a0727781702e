/* The graph: a per-step arena, the tape, and the reverse pass. */
#include "autograd/internal.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRAPH_CHUNK (64u << 20)
#define SCRATCH_CHUNK (16u << 20)

fg_graph *fg_graph_create(void)
{
    fg_graph *g = fg_xcalloc(1, sizeof *g, "graph");
    g->arena = fg_arena_create(GRAPH_CHUNK);
    g->scratch = fg_arena_create(SCRATCH_CHUNK);
    g->grad_enabled = 1;
    return g;
}

void fg_graph_destroy(fg_graph *g)
{
    if (!g) return;
    fg_leaf_grads_free(g->kept);
    fg_arena_destroy(g->arena);
    fg_arena_destroy(g->scratch);
    free(g);
}

void fg_graph_reset(fg_graph *g)
{
    fg_arena_reset(g->arena);
    fg_arena_reset(g->scratch);
    g->tail = NULL;
    g->n_nodes = 0;
    if (g->kept)
        fg_leaf_grads_new_step(g->kept);
}

void fg_graph_trim(fg_graph *g)
{
    fg_graph_reset(g);
    fg_arena_trim(g->arena);
    fg_arena_trim(g->scratch);
}

fg_arena *fg_graph_arena(fg_graph *g) { return g->arena; }
fg_arena *fg_graph_scratch(fg_graph *g) { return g->scratch; }
size_t fg_graph_nodes(const fg_graph *g) { return g->n_nodes; }
int fg_grad_enabled(const fg_graph *g) { return g->grad_enabled; }

int fg_set_grad_enabled(fg_graph *g, int enabled)
{
    int old = g->grad_enabled;
    g->grad_enabled = enabled != 0;
    return old;
}

fg_var *fg_var_new(fg_graph *g, int ndim, const int *shape)
{
    FG_CHECK(ndim >= 1 && ndim <= FG_MAX_DIMS, "var", "%d dimensions (1 to %d allowed)",
             ndim, FG_MAX_DIMS);
    fg_var *v = fg_arena_calloc(g->arena, sizeof *v);
    v->t.ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        FG_CHECK(shape[i] >= 0, "var", "negative dimension %d", shape[i]);
        v->t.shape[i] = shape[i];
    }
    v->t.data = fg_arena_alloc(g->arena, fg_numel(&v->t) * sizeof(float));
    return v;
}

fg_var *fg_var_like(fg_graph *g, const fg_var *v)
{
    return fg_var_new(g, v->t.ndim, v->t.shape);
}

/* Profile counter names need stable storage: one pair per op name, made on
 * first use and kept for the life of the process. */
#define MAX_PROFILED_OPS 96
static struct { const char *op; char fwd[64], bwd[80]; } prof_names[MAX_PROFILED_OPS];
static int n_prof_names;
static pthread_mutex_t prof_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *prof_name(const char *op, int backward)
{
    pthread_mutex_lock(&prof_lock);
    int i = 0;
    while (i < n_prof_names && prof_names[i].op != op) i++;
    if (i == n_prof_names && i < MAX_PROFILED_OPS) {
        prof_names[i].op = op;
        snprintf(prof_names[i].fwd, sizeof prof_names[i].fwd, "op:%s", op);
        snprintf(prof_names[i].bwd, sizeof prof_names[i].bwd, "op:%s (backward)", op);
        n_prof_names++;
    }
    const char *name = i < n_prof_names ? (backward ? prof_names[i].bwd : prof_names[i].fwd)
                                        : "op:(too many to name)";
    pthread_mutex_unlock(&prof_lock);
    return name;
}

fg_node *fg_record_n(fg_graph *g, const char *op, fg_backward_fn bw, fg_var *out,
                     int nin, fg_var *const *ins)
{
    if (g->op_start != 0.0) {
        fg_profile_add_shared(prof_name(op, 0), fg_profile_now() - g->op_start);
        g->op_start = 0.0;
    }
    FG_CHECK(nin >= 0 && nin <= 4, "record", "%s: %d inputs, at most 4", op, nin);
    int need = 0;
    for (int i = 0; i < nin; i++) need |= ins[i] && ins[i]->requires_grad;
    if (!g->grad_enabled || !need) return NULL;
    fg_node *n = fg_arena_calloc(g->arena, sizeof *n);
    n->op = op;
    n->backward = bw;
    n->out = out;
    n->nin = nin;
    for (int i = 0; i < nin; i++) n->in[i] = ins[i];
    n->prev = g->tail;
    g->tail = n;
    g->n_nodes++;
    out->node = n;
    out->requires_grad = 1;
    return n;
}

fg_node *fg_record(fg_graph *g, const char *op, fg_backward_fn bw, fg_var *out,
                   int nin, fg_var *a, fg_var *b, fg_var *c)
{
    fg_var *ins[3] = {a, b, c};
    return fg_record_n(g, op, bw, out, nin, ins);
}

float *fg_grad(fg_graph *g, fg_var *v)
{
    if (v->is_leaf && g->kept)
        return fg_kept_leaf_grad(g, v);
    if (!v->grad) v->grad = fg_arena_calloc(g->arena, fg_var_numel(v) * sizeof(float));
    return v->grad;
}

float *fg_grad_for_write(fg_graph *g, fg_var *v, int *fresh)
{
    if (v->is_leaf && g->kept) {
        /* Zeroed, so that adding gives what storing would. */
        *fresh = 0;
        return fg_kept_leaf_grad(g, v);
    }
    *fresh = v->grad == NULL;
    if (*fresh) v->grad = fg_arena_alloc(g->arena, fg_var_numel(v) * sizeof(float));
    return v->grad;
}

static void custom_backward(fg_graph *g, fg_node *n);

/* The reverse walk from the tape's end down to (not including) stop. A
 * custom op is not timed as a whole: the ops its rule runs are. */
static void walk(fg_graph *g, const fg_node *stop)
{
    int was = fg_set_grad_enabled(g, 0);
    /* Nodes appended after the seeded outputs cannot influence them; their
     * out->grad stays NULL and they are skipped. */
    for (fg_node *n = g->tail; n != stop; n = n->prev) {
        if (!n->out->grad) continue;
        if (fg_profile_enabled() && n->backward != custom_backward) {
            double t0 = fg_profile_now();
            n->backward(g, n);
            fg_profile_add_shared(prof_name(n->op, 1), fg_profile_now() - t0);
        } else {
            n->backward(g, n);
        }
    }
    fg_set_grad_enabled(g, was);
}

void fg_backward_with(fg_graph *g, fg_var *out, const float *seed)
{
    FG_CHECK(out->requires_grad, "backward", "the output does not depend on any variable that requires a gradient");
    float *go = fg_grad(g, out);
    fg_k_add(fg_var_numel(out), go, seed, go);
    walk(g, NULL);
}

fg_graph_mark fg_graph_mark_now(const fg_graph *g)
{
    return (fg_graph_mark){fg_arena_mark_now(g->arena), g->tail, g->n_nodes};
}

void fg_graph_rewind(fg_graph *g, const fg_graph_mark *m)
{
    fg_arena_rewind(g->arena, &m->arena);
    g->tail = m->tail;
    g->n_nodes = m->n_nodes;
}

void fg_backward_since(fg_graph *g, const fg_graph_mark *m, fg_var **outs,
                       const float **seeds, int n)
{
    for (int i = 0; i < n; i++) {
        if (!seeds[i] || !outs[i]->requires_grad)
            continue;
        float *go = fg_grad(g, outs[i]);
        fg_k_add(fg_var_numel(outs[i]), go, seeds[i], go);
    }
    walk(g, m->tail);
}

typedef struct custom_op {
    fg_custom_backward_fn bw;
    void *ctx;
    fg_var **outs;
    int n_outs;
} custom_op;

static void custom_backward(fg_graph *g, fg_node *n)
{
    custom_op *c = n->saved;
    c->bw(g, c->ctx, c->outs, c->n_outs);
}

void fg_custom_op(fg_graph *g, const char *op, fg_var **outs, int n_outs,
                  fg_custom_backward_fn bw, void *ctx)
{
    FG_CHECK(n_outs >= 1, "custom_op", "%s: needs at least one output", op);
    if (!g->grad_enabled)
        return;
    custom_op *c = fg_arena_alloc(g->arena, sizeof *c);
    c->bw = bw;
    c->ctx = ctx;
    c->n_outs = n_outs;
    c->outs = fg_arena_alloc(g->arena, (size_t)n_outs * sizeof *c->outs);
    for (int i = 0; i < n_outs; i++) {
        c->outs[i] = outs[i];
        outs[i]->requires_grad = 1;
    }
    /* One node stands for the op; its out is outs[0], whose gradient buffer
     * exists from the start, so the reverse walk always reaches the rule,
     * whichever outs the rest of the graph used. The other outs need no node
     * of their own: ops after this one accumulate into them by
     * requires_grad, and the rule reads what they got. */
    fg_node *nd = fg_arena_calloc(g->arena, sizeof *nd);
    nd->op = op;
    nd->backward = custom_backward;
    nd->out = outs[0];
    nd->saved = c;
    nd->prev = g->tail;
    g->tail = nd;
    g->n_nodes++;
    outs[0]->node = nd;
    fg_grad(g, outs[0]);
}

void fg_backward(fg_graph *g, fg_var *loss)
{
    FG_CHECK(fg_var_numel(loss) == 1, "backward", "the loss must have one element, it has %zu",
             fg_var_numel(loss));
    const float one = 1.0f;
    fg_backward_with(g, loss, &one);
}

void fg_require_same_shape(const char *op, const fg_var *a, const fg_var *b)
{
    if (fg_same_shape(&a->t, &b->t)) return;
    char sa[FG_SHAPE_STR_LEN], sb[FG_SHAPE_STR_LEN];
    fg_fatal(op, "shapes differ: %s and %s", fg_shape_str(&a->t, sa, sizeof sa),
             fg_shape_str(&b->t, sb, sizeof sb));
}

void fg_require_ndim(const char *op, const fg_var *a, int ndim)
{
    if (a->t.ndim == ndim) return;
    char sa[FG_SHAPE_STR_LEN];
    fg_fatal(op, "expected %d dimensions, got %s", ndim, fg_shape_str(&a->t, sa, sizeof sa));
}
