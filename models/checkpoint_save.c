/* Writing a run's checkpoint and continuing a run from one (see
 * models/checkpoint.h). */
#include "models/checkpoint.h"
#include "models/checkpoint_format.h"

#include <stdio.h>
#include <string.h>

static void add_ema(fg_safetensors *st, fg_ema *ema, fg_state_list *el)
{
    fg_state_list_init(el);
    if (!ema)
        return;
    fg_ema_visit(ema, fg_state_list_add, el);
    fg_st_add_state(st, el);
}

int fg_checkpoint_save(const char *path, const fg_config *cfg, const fg_model *model,
                       fg_trainer *tr, const fg_train_state *s)
{
    fg_optim *optim = &tr->optim;
    fg_ema *ema = tr->has_ema ? &tr->ema : NULL;
    if (fg_state_list_check_finite(&model->state, 0) != FG_OK)
        return FG_ERR;
    fg_safetensors st;
    fg_st_init(&st);
    fg_st_add_state(&st, &model->state);
    fg_optim_save(optim, &st);
    /* The averages stay listed until the write: the entries borrow them. */
    fg_state_list el;
    add_ema(&st, ema, &el);
    fg_checkpoint_add_state(&st, s);
    if (tr->guard)
        fg_guarded_save(tr->guard, &st);
    fg_st_set_meta(&st, "config", cfg->text);
    int rc = fg_st_write(&st, path);
    if (rc == FG_OK && tr->guard)
        fg_guarded_checkpointed(tr->guard);
    fg_state_list_free(&el);
    fg_st_free(&st);
    return rc;
}

static int load_ema(const fg_safetensors *st, fg_ema *ema)
{
    if (!ema)
        return FG_OK;
    fg_state_list el;
    fg_state_list_init(&el);
    fg_ema_visit(ema, fg_state_list_add, &el);
    int rc = fg_st_load_state(st, &el, "");
    fg_state_list_free(&el);
    return rc;
}

static int resume(const fg_safetensors *st, fg_model *model, fg_trainer *tr, int dataset_n,
                  fg_train_state *s)
{
    fg_optim *optim = &tr->optim;
    fg_ema *ema = tr->has_ema ? &tr->ema : NULL;
    const char *path = st->path;
    if (fg_checkpoint_check_values(st) != FG_OK || fg_checkpoint_get_state(st, s) != FG_OK)
        return FG_ERR;
    if (s->position > dataset_n)
        return fg_error("%s: train state (step %ld, epoch %ld, position %d) does not fit a "
                        "dataset of %d images", path, s->step, s->epoch, s->position,
                        dataset_n);
    if (fg_st_load_state(st, &model->state, "") != FG_OK || fg_optim_load(optim, st) != FG_OK ||
        load_ema(st, ema) != FG_OK || (tr->guard && fg_guarded_load(tr->guard, st) != FG_OK))
        return FG_ERR;
    if (fg_model_check_state(model) != FG_OK)
        return fg_error("%s: %s", path, fg_last_error());
    return FG_OK;
}

int fg_checkpoint_resume(const char *path, fg_model *model, fg_trainer *tr, int dataset_n,
                         fg_train_state *s)
{
    fg_safetensors st;
    fg_st_init(&st);
    int rc = fg_st_read(&st, path) == FG_OK ? resume(&st, model, tr, dataset_n, s)
                                            : FG_ERR;
    fg_st_free(&st);
    return rc;
}
