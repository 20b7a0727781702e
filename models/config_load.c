/* Loading a config: read the bytes, parse, validate the top-level mapping,
 * and keep the text so checkpoints can store and reload it verbatim. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "models/config_internal.h"

static const char *const top_keys[] = { "description", "model", "train", NULL };

static char *copy_text(const char *s, size_t len, const char *what)
{
    char *d = fg_xmalloc(len + 1, what);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static int read_document(const cfg_ctx *ctx, const cfg_node *root, fg_config *cfg)
{
    if (root->kind != CFG_MAP)
        return cfg_fail(ctx, root, "the config must be a mapping with a 'model' key "
                        "(and optionally 'train' and 'description')");
    const char *description = NULL;
    if (cfg_check_keys(ctx, root, "config", top_keys)
        || cfg_string(ctx, root, "config", "description", &description)
        || cfg_require(ctx, root, "config", "model", "{type: glow, ...} or {type: flow, "
                       "...}"))
        return FG_ERR;
    if (cfg_read_model(ctx, cfg_get(root, "model"), &cfg->model))
        return FG_ERR;
    const cfg_node *train = cfg_get(root, "train");
    if (train) {
        cfg->has_train = 1;
        return cfg_read_train(ctx, train, &cfg->model, &cfg->train);
    }
    return FG_OK;
}

int fg_config_load_string(const char *text, size_t len, const char *name, fg_config **out)
{
    *out = NULL;
    if (!name)
        name = "<config>";
    cfg_ctx ctx = { .name = name };
    if (!text)
        return fg_error("%s: no config text given", name);
    cfg_node *root;
    if (cfg_parse(&ctx, text, len, &root))
        return FG_ERR;
    fg_config *cfg = fg_xcalloc(1, sizeof *cfg, "config");
    cfg->name = copy_text(name, strlen(name), "config name");
    ctx.name = cfg->name;
    int rc = read_document(&ctx, root, cfg);
    cfg_node_free(root);
    if (rc) {
        fg_config_free(cfg);
        return FG_ERR;
    }
    /* cfg_parse refused NUL bytes, so the text is a proper C string. */
    cfg->text = copy_text(text, len, "config text");
    cfg->text_len = len;
    *out = cfg;
    return FG_OK;
}

int fg_config_load_file(const char *path, fg_config **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fg_error("%s: cannot open config: %s", path, strerror(errno));
    /* Read one byte past the limit so an oversized file is detected without
     * trusting its reported size. */
    size_t cap = (size_t)FG_CONFIG_MAX_BYTES + 1;
    char *buf = fg_xmalloc(cap, "config file");
    size_t len = fread(buf, 1, cap, f);
    int read_error = ferror(f);
    fclose(f);
    if (read_error) {
        free(buf);
        return fg_error("%s: cannot read config", path);
    }
    if (len > (size_t)FG_CONFIG_MAX_BYTES) {
        free(buf);
        return fg_error("%s:1:1: config is larger than %d bytes (a model config is a "
                        "few kilobytes)", path, FG_CONFIG_MAX_BYTES);
    }
    int rc = fg_config_load_string(buf, len, path, out);
    free(buf);
    return rc;
}

void fg_config_free(fg_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->model.layers);
    free(cfg->train.data_path);
    free(cfg->train.test_path);
    free(cfg->name);
    free(cfg->text);
    free(cfg);
}
