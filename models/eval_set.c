/* The data sets a model is evaluated on (see models/eval.h): its own, other
 * built-in ones, and its own made out of distribution by a transform. */
#include "models/eval.h"

#include <stdio.h>
#include <string.h>

static const char split_names[2][6] = {"test", "train"};

/* Images the model cannot take would fail deep inside the flow: refused
 * here, naming both shapes. */
static int check_fits(const fg_config *cfg, const char *name, const fg_dataset *d)
{
    const fg_chw *in = &cfg->model.input;
    if (d->c != in->c || d->h != in->h || d->w != in->w)
        return fg_error("data set '%s' has %dx%dx%d images but the model of %s takes "
                        "%dx%dx%d: choose a data set of the model's image size", name, d->h,
                        d->w, d->c, cfg->name, in->h, in->w, in->c);
    int classes = fg_model_spec_needs_labels(&cfg->model) ? cfg->model.classes : 0;
    for (int i = 0; classes && i < d->n; i++)
        if (d->labels[i] >= classes)
            return fg_error("data set '%s': image %d has label %d but the class-conditional "
                            "model of %s has %d classes", name, i, d->labels[i], cfg->name,
                            classes);
    return FG_OK;
}

/* A built-in set other than the config's own. */
static int load_named(const fg_config *cfg, const char *name, int train, double max_bytes,
                      fg_dataset *d)
{
    const fg_dataset_kind own = cfg->has_train ? cfg->train.dataset : FG_DATASET_NONE;
    if (!strcmp(name, fg_dataset_kind_name(own)))
        return fg_config_load_split(cfg, train, max_bytes, d);
    if (!strcmp(name, "fashion-mnist"))
        return fg_dataset_load_mnist_dir(d, FG_FASHION_MNIST_DIR, train);
    if (!strcmp(name, "synthetic")) {
        /* The config's own synthetic split, sized and seeded the same way. */
        fg_config synthetic = *cfg;
        synthetic.has_train = 1;
        synthetic.train.dataset = FG_DATASET_SYNTHETIC;
        return fg_config_load_split(&synthetic, train, max_bytes, d);
    }
    if (!strcmp(name, "mnist") || !strcmp(name, "cifar10"))
        return fg_error("data set '%s': it has no default folder, and the config of %s trains "
                        "on %s, not on %s, so it names none", name, cfg->name,
                        fg_dataset_kind_name(own), name);
    return fg_error("unknown data set '%s': expected fashion-mnist, mnist, cifar10, "
                    "synthetic, or a transform of the model's own data: flipped-vertical, "
                    "inverted or noise", name);
}

int fg_eval_set_load(const fg_config *cfg, const char *name, int train, double max_bytes,
                     fg_eval_set *out)
{
    memset(out, 0, sizeof *out);
    fg_dataset *d = &out->data;
    const char *own = fg_dataset_kind_name(cfg->has_train ? cfg->train.dataset
                                                          : FG_DATASET_NONE);
    fg_image_transform t;
    int transformed = name && fg_image_transform_parse(name, &t) == FG_OK;
    int rc = !name || transformed ? fg_config_load_split(cfg, train, max_bytes, d)
                                  : load_named(cfg, name, train, max_bytes, d);
    if (rc == FG_OK)
        rc = check_fits(cfg, name && !transformed ? name : own, d);
    if (rc != FG_OK) {
        fg_dataset_free(d);
        return FG_ERR;
    }
    if (transformed) {
        /* From the config's seed: the same noise set on every run. */
        fg_dataset_transform(d, t, cfg->train.seed ^ 0x6f6f64ULL);
        snprintf(out->title, sizeof out->title, "%s %s %s", name, own, split_names[train != 0]);
    } else {
        snprintf(out->title, sizeof out->title, "%s %s", name ? name : own,
                 split_names[train != 0]);
    }
    return FG_OK;
}

int fg_eval_set_load_folder(const fg_config *cfg, const char *dir, double max_bytes,
                            fg_eval_set *out)
{
    memset(out, 0, sizeof *out);
    const fg_chw *in = &cfg->model.input;
    fg_folder_options o = {.c = in->c, .h = in->h, .w = in->w, .resize = FG_RESIZE_AREA,
                           .on_bad_file = FG_BAD_FILE_REFUSE, .max_bytes = max_bytes,
                           .log = stderr};
    fg_dataset *d = &out->data;
    if (fg_dataset_load_folder(d, dir, &o, FG_FOLDER_ALL) != FG_OK)
        return FG_ERR;
    int rc = check_fits(cfg, dir, d);
    /* Label 0 for every image would evaluate each under class 0's prior. */
    if (rc == FG_OK && fg_model_spec_needs_labels(&cfg->model) && d->n_classes == 0)
        rc = fg_error("%s: the model of %s is class-conditional (%d classes) but the folder "
                      "has no class subfolders; put each class's images in a subfolder named "
                      "for it", dir, cfg->name, cfg->model.classes);
    if (rc != FG_OK) {
        fg_dataset_free(d);
        return FG_ERR;
    }
    snprintf(out->title, sizeof out->title, "%s", dir);
    return FG_OK;
}

void fg_eval_set_free(fg_eval_set *s)
{
    fg_dataset_free(&s->data);
    memset(s, 0, sizeof *s);
}
