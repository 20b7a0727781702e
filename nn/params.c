/* Flat lists of a model's named state, and what optimizers, checkpoints and
 * numerical guards do over all of it at once. */
#include <math.h>
#include <string.h>
#include <stdlib.h>
#include "nn/nn.h"

void fg_state_list_init(fg_state_list *l)
{
    l->items = NULL;
    l->n = l->cap = 0;
}

void fg_state_list_free(fg_state_list *l)
{
    free(l->items);
    fg_state_list_init(l);
}

void fg_state_list_add(void *list, const char *name, fg_var *v, fg_state_kind kind)
{
    fg_state_list *l = list;
    FG_CHECK(strlen(name) < FG_NAME_LEN, "fg_state_list_add", "name '%s' too long", name);
    FG_CHECK(fg_state_list_find(l, name) == NULL, "fg_state_list_add",
             "state name '%s' visited twice", name);
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->items = fg_xrealloc(l->items, (size_t)l->cap * sizeof *l->items, "state list");
    }
    fg_state_entry *e = &l->items[l->n++];
    strcpy(e->name, name);
    e->var = v;
    e->kind = kind;
}

/* Linear search: lists hold hundreds of entries and lookups happen at load
 * time, not per step. */
fg_state_entry *fg_state_list_find(const fg_state_list *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->items[i].name, name) == 0)
            return &l->items[i];
    return NULL;
}

size_t fg_state_list_param_count(const fg_state_list *l)
{
    size_t total = 0;
    for (int i = 0; i < l->n; i++)
        if (l->items[i].kind == FG_PARAM)
            total += fg_numel(&l->items[i].var->t);
    return total;
}

void fg_state_list_zero_grad(const fg_state_list *l)
{
    for (int i = 0; i < l->n; i++)
        if (l->items[i].kind == FG_PARAM)
            fg_zero_grad(l->items[i].var);
}

double fg_state_list_grad_norm(const fg_state_list *l)
{
    double ss = 0.0;
    for (int i = 0; i < l->n; i++) {
        const fg_var *v = l->items[i].var;
        if (l->items[i].kind == FG_PARAM && v->grad)
            ss += fg_k_dot(fg_numel(&v->t), v->grad, v->grad);
    }
    return sqrt(ss);
}

double fg_state_list_clip_grad_norm(const fg_state_list *l, double max_norm)
{
    double norm = fg_state_list_grad_norm(l);
    /* A non-finite norm is left for the finiteness guard to report; scaling
     * by it would only turn every gradient into NaN. */
    if (max_norm > 0.0 && isfinite(norm) && norm > max_norm) {
        float s = (float)(max_norm / norm);
        for (int i = 0; i < l->n; i++) {
            fg_var *v = l->items[i].var;
            if (l->items[i].kind == FG_PARAM && v->grad)
                fg_k_scale(fg_numel(&v->t), s, v->grad, v->grad);
        }
    }
    return norm;
}

int fg_state_list_copy_values(const fg_state_list *dst, const fg_state_list *src)
{
    for (int i = 0; i < dst->n; i++) {
        const fg_state_entry *d = &dst->items[i];
        const fg_state_entry *s = fg_state_list_find(src, d->name);
        if (!s)
            return fg_error("copy state: '%s' missing in the source", d->name);
        if (!fg_same_shape(&d->var->t, &s->var->t)) {
            char a[FG_SHAPE_STR_LEN], b[FG_SHAPE_STR_LEN];
            return fg_error("copy state: '%s' has shape %s, source has %s", d->name,
                            fg_shape_str(&d->var->t, a, sizeof a),
                            fg_shape_str(&s->var->t, b, sizeof b));
        }
    }
    for (int i = 0; i < dst->n; i++)
        fg_tensor_copy(&dst->items[i].var->t,
                       &fg_state_list_find(src, dst->items[i].name)->var->t);
    return FG_OK;
}

int fg_state_list_check_finite(const fg_state_list *l, int grads)
{
    for (int i = 0; i < l->n; i++) {
        const fg_state_entry *e = &l->items[i];
        size_t n = fg_numel(&e->var->t);
        if (!fg_k_all_finite(n, e->var->t.data))
            return fg_error("non-finite value in '%s'", e->name);
        if (grads && e->kind == FG_PARAM && e->var->grad && !fg_k_all_finite(n, e->var->grad))
            return fg_error("non-finite gradient in '%s'", e->name);
    }
    return FG_OK;
}
