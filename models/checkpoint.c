/* Loading a checkpoint from outside: every check that needs no model runs
 * before the model is built, so a hostile file costs at most its own size
 * in memory (see models/checkpoint.h). */
#include "models/checkpoint.h"
#include "models/checkpoint_format.h"

#include <stdio.h>
#include <string.h>

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

int fg_model_check_state(fg_model *m)
{
    return fg_flow_check_invertible(m->flow->body, "flow");
}

/* Prefixes path to the message of a check that does not know it. */
static int in_file(const char *path)
{
    return fg_error("%s: %s", path, fg_last_error());
}

static int load(const char *path, double max_bytes, fg_checkpoint *out)
{
    int version;
    if (fg_st_read(&out->st, path) != FG_OK || fg_checkpoint_check_values(&out->st) != FG_OK ||
        fg_checkpoint_format_version(&out->st, &version) != FG_OK)
        return FG_ERR;
    /* A model alone (exported weights) has no train state; a malformed one
     * is still an error. */
    if (fg_st_find(&out->st, "train.step") || fg_st_find(&out->st, "train.state")) {
        if (fg_checkpoint_get_state(&out->st, &out->state) != FG_OK)
            return FG_ERR;
        out->has_state = 1;
    }
    const char *text = fg_st_get_meta(&out->st, "config");
    if (!text)
        return fg_error("%s: no 'config' entry in the __metadata__; expected a flowgrad "
                        "checkpoint written by 'flowgrad train'", path);
    char name[4096 + 16];
    snprintf(name, sizeof name, "%s:config", path);
    if (fg_config_load_string(text, strlen(text), name, &out->cfg) != FG_OK ||
        fg_checkpoint_check_size(&out->st, &out->cfg->model, max_bytes) != FG_OK)
        return FG_ERR;
    if (fg_model_build(&out->cfg->model, out->cfg->train.seed, &out->model) != FG_OK)
        return in_file(name);
    /* Model entries must all be there; optimizer, EMA and run state are
     * extras the model ignores. */
    for (int i = 0; i < out->st.n; i++) {
        const char *n = out->st.t[i].name;
        if (!fg_state_list_find(&out->model->state, n) && !has_prefix(n, "optim.") &&
            !has_prefix(n, "ema.") && !has_prefix(n, "train."))
            return fg_error("%s: unexpected tensor '%s' that the model does not have", path, n);
    }
    if (fg_st_load_state(&out->st, &out->model->state, "") != FG_OK)
        return FG_ERR;
    for (int i = 0; i < out->model->state.n; i++) {
        fg_state_entry *e = &out->model->state.items[i];
        char ema[FG_NAME_LEN + 8];
        snprintf(ema, sizeof ema, "ema.%s", e->name);
        if (e->kind == FG_PARAM && fg_st_find(&out->st, ema) &&
            fg_st_get_tensor(&out->st, ema, &e->var->t) != FG_OK)
            return FG_ERR;
    }
    if (fg_model_check_state(out->model) != FG_OK)
        return in_file(path);
    return FG_OK;
}

int fg_checkpoint_load(const char *path, double max_bytes, fg_checkpoint *out)
{
    memset(out, 0, sizeof *out);
    fg_st_init(&out->st);
    if (load(path, max_bytes, out) != FG_OK) {
        fg_checkpoint_free(out);
        return FG_ERR;
    }
    return FG_OK;
}

void fg_checkpoint_free(fg_checkpoint *c)
{
    fg_model_free(c->model);
    fg_config_free(c->cfg);
    fg_st_free(&c->st);
    memset(c, 0, sizeof *c);
}
