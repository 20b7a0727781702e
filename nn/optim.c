/* Optimizer state shared by Adam and Adamax: one pair of moment tensors per
 * parameter, named after it so a checkpoint restores them by name. */
#include <string.h>
#include <stdlib.h>
#include "nn/io.h"

void fg_optim_init(fg_optim *o, fg_optim_kind kind, const fg_state_list *l,
                   double beta1, double beta2, double eps)
{
    FG_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps >= 0,
             "fg_optim_init", "beta1 %g, beta2 %g, eps %g", beta1, beta2, eps);
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    for (int i = 0; i < l->n; i++)
        o->n += l->items[i].kind == FG_PARAM;
    o->params = fg_xcalloc((size_t)o->n + 1, sizeof *o->params, "optimizer");
    o->m = fg_xcalloc((size_t)o->n + 1, sizeof *o->m, "optimizer");
    o->v = fg_xcalloc((size_t)o->n + 1, sizeof *o->v, "optimizer");
    o->names = fg_xcalloc((size_t)o->n + 1, sizeof *o->names, "optimizer");
    int j = 0;
    for (int i = 0; i < l->n; i++) {
        const fg_state_entry *e = &l->items[i];
        if (e->kind != FG_PARAM)
            continue;
        o->params[j] = e->var;
        o->m[j] = fg_leaf_new(e->var->t.ndim, e->var->t.shape, 0);
        o->v[j] = fg_leaf_new(e->var->t.ndim, e->var->t.shape, 0);
        strcpy(o->names[j], e->name);
        j++;
    }
}

void fg_optim_free(fg_optim *o)
{
    for (int i = 0; i < o->n; i++) {
        fg_leaf_free(o->m[i]);
        fg_leaf_free(o->v[i]);
    }
    free(o->params);
    free(o->m);
    free(o->v);
    free(o->names);
    memset(o, 0, sizeof *o);
}

void fg_optim_step(fg_optim *o, double lr)
{
    double t0 = fg_profile_enabled() ? fg_profile_now() : 0.0;
    o->step++;
    for (int i = 0; i < o->n; i++) {
        fg_var *p = o->params[i];
        FG_CHECK(p->grad != NULL, "fg_optim_step", "parameter '%s' has no gradient",
                 o->names[i]);
        size_t n = fg_numel(&p->t);
        if (o->kind == FG_ADAM)
            fg_adam_update(n, p->t.data, p->grad, o->m[i]->t.data, o->v[i]->t.data,
                           lr, o->beta1, o->beta2, o->eps, o->step);
        else
            fg_adamax_update(n, p->t.data, p->grad, o->m[i]->t.data, o->v[i]->t.data,
                             lr, o->beta1, o->beta2, o->eps, o->step);
    }
    if (t0 != 0.0) fg_profile_add("optimizer", fg_profile_now() - t0);
}

void fg_optim_visit(fg_optim *o, fg_visit_fn fn, void *ctx)
{
    char buf[FG_NAME_LEN];
    for (int i = 0; i < o->n; i++) {
        fn(ctx, fg_name_join(buf, sizeof buf, "optim.m", o->names[i]), o->m[i], FG_BUFFER);
        fn(ctx, fg_name_join(buf, sizeof buf, "optim.v", o->names[i]), o->v[i], FG_BUFFER);
    }
}

const char *fg_optim_kind_name(fg_optim_kind k)
{
    return k == FG_ADAM ? "adam" : "adamax";
}

int fg_optim_kind_parse(const char *s, fg_optim_kind *k)
{
    if (strcmp(s, "adam") == 0)
        *k = FG_ADAM;
    else if (strcmp(s, "adamax") == 0)
        *k = FG_ADAMAX;
    else
        return fg_error("optimizer '%s': expected adam or adamax", s);
    return FG_OK;
}

void fg_optim_save(fg_optim *o, fg_safetensors *st)
{
    fg_state_list l;
    fg_state_list_init(&l);
    fg_optim_visit(o, fg_state_list_add, &l);
    fg_st_add_state(st, &l);
    fg_state_list_free(&l);
    int64_t step = o->step;
    fg_st_add_i64(st, "optim.step", &step, 1);
}

int fg_optim_load(fg_optim *o, const fg_safetensors *st)
{
    int64_t step;
    if (fg_st_get_i64(st, "optim.step", &step, 1) != FG_OK)
        return FG_ERR;
    if (step < 0)
        return fg_error("%s: optim.step is %lld", st->path ? st->path : "safetensors",
                        (long long)step);
    fg_state_list l;
    fg_state_list_init(&l);
    fg_optim_visit(o, fg_state_list_add, &l);
    /* All moments are checked before any is copied, so a bad file leaves
     * the optimizer as it was. Only the moments are ours to check here; the model's own entries and
     * anything else in the file belong to other loaders. */
    int rc = FG_OK;
    for (int i = 0; i < l.n && rc == FG_OK; i++)
        rc = fg_st_check_tensor(st, l.items[i].name, &l.items[i].var->t);
    for (int i = 0; i < l.n && rc == FG_OK; i++)
        rc = fg_st_get_tensor(st, l.items[i].name, &l.items[i].var->t);
    fg_state_list_free(&l);
    if (rc == FG_OK)
        o->step = (long)step;
    return rc;
}
