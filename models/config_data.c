/* The data a config's train: section names (see models/train.h). */
#include "models/train_memory.h"
#include "models/train.h"

#include <string.h>

/* Synthetic data sizes: enough for a loss to fall, small enough for tests. */
#define SYNTH_TRAIN 1024
#define SYNTH_TEST 256

/* The user's images at the model's shape. Their classes come from the
 * folder, so only here can they be checked against the model's. */
static int load_folder(const fg_config *cfg, int train, double max_bytes, fg_dataset *d)
{
    const fg_train_spec *t = &cfg->train;
    const fg_model_spec *m = &cfg->model;
    fg_folder_options o = {.c = m->input.c, .h = m->input.h, .w = m->input.w,
                           .resize = t->resize, .on_bad_file = t->on_bad_file,
                           .test_dir = t->test_path, .no_cache = !t->cache,
                           .max_bytes = max_bytes, .log = fg_dist_rank() == 0 ? stderr : NULL};
    if (fg_dataset_load_folder(d, t->data_path, &o, train ? FG_FOLDER_TRAIN : FG_FOLDER_TEST)
        != FG_OK)
        return FG_ERR;
    if (!fg_model_spec_needs_labels(m))
        return FG_OK;
    if (d->n_classes == 0 || d->n_classes != m->classes) {
        int have = d->n_classes;
        fg_dataset_free(d);
        if (have == 0)
            return fg_error("%s: %s needs labels but %s has no class subfolders; "
                            "put the images into one subfolder per class, or set "
                            "%s", cfg->name,
                            m->y_condition ? "y_condition" : "condition: class",
                            t->data_path,
                            m->y_condition ? "y_condition: false" : "condition: none");
        return fg_error("%s: %s has %d class subfolders but the model says classes: %d "
                        "(expected classes: %d)", cfg->name, t->data_path, have, m->classes,
                        have);
    }
    return FG_OK;
}

int fg_config_load_split(const fg_config *cfg, int train, double max_bytes, fg_dataset *d)
{
    memset(d, 0, sizeof *d);
    const fg_train_spec *t = &cfg->train;
    const fg_chw *s = &cfg->model.input;
    switch (cfg->has_train ? t->dataset : FG_DATASET_NONE) {
    case FG_DATASET_FASHION_MNIST:
    case FG_DATASET_MNIST:
        return fg_dataset_load_mnist_dir(d, t->data_path, train);
    case FG_DATASET_CIFAR10:
        return fg_dataset_load_cifar10_dir(d, t->data_path, train);
    case FG_DATASET_SYNTHETIC: {
        /* Generated in memory at the config's image size, which a config
         * (or a checkpoint's) may make far larger than the machine. */
        int n = train ? SYNTH_TRAIN : SYNTH_TEST;
        double D = (double)s->c * s->h * s->w;
        double bytes = n * D + n + D * sizeof(float);
        char need[32], have[32];
        if (max_bytes >= 0 && bytes > max_bytes)
            return fg_error("%s: %d synthetic %dx%dx%d images need about %s, more than the %s "
                            "available: lower height, width or channels", cfg->name, n, s->h,
                            s->w, s->c, fg_train_memory_human(bytes, need, sizeof need),
                            fg_train_memory_human(max_bytes, have, sizeof have));
        fg_dataset_synthetic(d, n, s->c, s->h, s->w, t->seed * 2 + (train ? 0 : 1));
        return FG_OK;
    }
    case FG_DATASET_FOLDER:
        return load_folder(cfg, train, max_bytes, d);
    default:
        return fg_error("%s: the config has no train: dataset to load data from", cfg->name);
    }
}
