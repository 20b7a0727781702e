/* Leaf gradients a graph keeps for itself (fg_graph_keep_leaf_grads), so
 * that graphs on different threads can differentiate one model at once.
 *
 * The buffers live on the heap, not in the graph's arena: a step that
 * rewinds the arena (memory by inversion rebuilds segments) must not take
 * a leaf's gradient with it. They are kept from step to step, found by the
 * leaf's address, and a step counter tells which were reached this step. */
#include "autograd/internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct kept_grad {
    fg_var *leaf;
    float *grad;
    size_t numel;
    unsigned long step;   /* the step that last zeroed it */
} kept_grad;

struct fg_leaf_grads {
    kept_grad *entries;   /* in the order the leaves were first reached */
    int n, cap;
    int *slots;           /* open addressing: entry index + 1, 0 empty */
    int n_slots;          /* a power of two, at least twice n */
    unsigned long step;
};

static unsigned slot_of(const fg_leaf_grads *k, const fg_var *leaf)
{
    uintptr_t h = (uintptr_t)leaf;
    h ^= h >> 17;
    h *= (uintptr_t)0x9e3779b97f4a7c15ULL;
    return (unsigned)(h >> 7) & (unsigned)(k->n_slots - 1);
}

static void rehash(fg_leaf_grads *k, int n_slots)
{
    free(k->slots);
    k->slots = fg_xcalloc((size_t)n_slots, sizeof *k->slots, "leaf gradient index");
    k->n_slots = n_slots;
    for (int e = 0; e < k->n; e++) {
        unsigned s = slot_of(k, k->entries[e].leaf);
        while (k->slots[s])
            s = (s + 1) & (unsigned)(n_slots - 1);
        k->slots[s] = e + 1;
    }
}

static kept_grad *find_or_add(fg_leaf_grads *k, fg_var *leaf)
{
    unsigned s = slot_of(k, leaf);
    for (; k->slots[s]; s = (s + 1) & (unsigned)(k->n_slots - 1))
        if (k->entries[k->slots[s] - 1].leaf == leaf)
            return &k->entries[k->slots[s] - 1];
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 64;
        k->entries = fg_xrealloc(k->entries, (size_t)k->cap * sizeof *k->entries,
                                 "leaf gradients");
    }
    kept_grad *e = &k->entries[k->n++];
    memset(e, 0, sizeof *e);
    e->leaf = leaf;
    e->step = k->step - 1;
    if (2 * k->n > k->n_slots)
        rehash(k, 2 * k->n_slots);
    else
        k->slots[s] = k->n;
    return e;
}

float *fg_kept_leaf_grad(fg_graph *g, fg_var *leaf)
{
    kept_grad *e = find_or_add(g->kept, leaf);
    size_t numel = fg_var_numel(leaf);
    if (e->numel != numel) {
        /* A leaf freed and another made at its address. */
        fg_aligned_free(e->grad);
        e->grad = fg_aligned_alloc((numel ? numel : 1) * sizeof(float), "kept leaf gradient");
        e->numel = numel;
        e->step = g->kept->step - 1;
    }
    if (e->step != g->kept->step) {
        memset(e->grad, 0, numel * sizeof(float));
        e->step = g->kept->step;
    }
    return e->grad;
}

void fg_leaf_grads_new_step(fg_leaf_grads *k)
{
    k->step++;
}

void fg_leaf_grads_free(fg_leaf_grads *k)
{
    if (!k)
        return;
    for (int e = 0; e < k->n; e++)
        fg_aligned_free(k->entries[e].grad);
    free(k->entries);
    free(k->slots);
    free(k);
}

void fg_graph_keep_leaf_grads(fg_graph *g, int on)
{
    if (!on) {
        fg_leaf_grads_free(g->kept);
        g->kept = NULL;
        return;
    }
    if (g->kept)
        return;
    g->kept = fg_xcalloc(1, sizeof *g->kept, "leaf gradients");
    g->kept->step = 1;
    rehash(g->kept, 128);
}

void fg_graph_add_leaf_grads(fg_graph *g)
{
    fg_leaf_grads *k = g->kept;
    if (!k)
        return;
    for (int e = 0; e < k->n; e++) {
        kept_grad *kg = &k->entries[e];
        if (kg->step == k->step && kg->leaf->grad)
            fg_k_add(kg->numel, kg->leaf->grad, kg->grad, kg->leaf->grad);
    }
}
