/* Exponential moving average of weights: evaluation and sampling with the
 * averaged weights are usually smoother than with the last iterate. */
#include <string.h>
#include <stdlib.h>
#include "nn/nn.h"

void fg_ema_init(fg_ema *e, const fg_state_list *l, double decay)
{
    FG_CHECK(decay >= 0 && decay <= 1, "fg_ema_init", "decay %g", decay);
    memset(e, 0, sizeof *e);
    e->decay = decay;
    for (int i = 0; i < l->n; i++)
        e->n += l->items[i].kind == FG_PARAM;
    e->params = fg_xcalloc((size_t)e->n + 1, sizeof *e->params, "ema");
    e->shadow = fg_xcalloc((size_t)e->n + 1, sizeof *e->shadow, "ema");
    e->names = fg_xcalloc((size_t)e->n + 1, sizeof *e->names, "ema");
    int j = 0;
    for (int i = 0; i < l->n; i++) {
        const fg_state_entry *s = &l->items[i];
        if (s->kind != FG_PARAM)
            continue;
        e->params[j] = s->var;
        e->shadow[j] = fg_leaf_new(s->var->t.ndim, s->var->t.shape, 0);
        fg_tensor_copy(&e->shadow[j]->t, &s->var->t);
        strcpy(e->names[j], s->name);
        j++;
    }
}

void fg_ema_free(fg_ema *e)
{
    for (int i = 0; i < e->n; i++)
        fg_leaf_free(e->shadow[i]);
    free(e->params);
    free(e->shadow);
    free(e->names);
    memset(e, 0, sizeof *e);
}

void fg_ema_update(fg_ema *e)
{
    FG_CHECK(!e->swapped, "fg_ema_update", "averages are swapped into the model");
    const float d = (float)e->decay, w = (float)(1.0 - e->decay);
    for (int i = 0; i < e->n; i++) {
        size_t n = fg_numel(&e->params[i]->t);
        float *s = e->shadow[i]->t.data;
        const float *p = e->params[i]->t.data;
        for (size_t k = 0; k < n; k++)
            s[k] = d * s[k] + w * p[k];
    }
}

void fg_ema_swap(fg_ema *e)
{
    for (int i = 0; i < e->n; i++) {
        /* Values are exchanged, not pointers: modules may hold the data
         * pointers, and each buffer stays with the allocation that frees it. */
        size_t n = fg_numel(&e->params[i]->t);
        float *a = e->params[i]->t.data, *b = e->shadow[i]->t.data;
        for (size_t k = 0; k < n; k++) {
            float t = a[k];
            a[k] = b[k];
            b[k] = t;
        }
    }
    e->swapped = !e->swapped;
}

void fg_ema_visit(fg_ema *e, fg_visit_fn fn, void *ctx)
{
    char buf[FG_NAME_LEN];
    for (int i = 0; i < e->n; i++)
        fn(ctx, fg_name_join(buf, sizeof buf, "ema", e->names[i]), e->shadow[i], FG_BUFFER);
}
