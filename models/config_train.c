/* The `train:` mapping: data, optimizer, schedule and intervals, with the
 * dataset checked against the model's image shape. */
#include <math.h>
#include <string.h>

#include "nn/io.h"
#include "models/config_internal.h"

static const char *const train_keys[] = {
    "dataset", "batch", "optimizer", "lr", "warmup", "grad_clip", "ema", "epochs",
    "steps", "seed", "checkpoint_every", "sample_every", "test_every", "temperature",
    "schedule", "guard", "guard_window", "guard_threshold", "clip_factor", "memory", NULL
};
static const char *const dataset_keys[] = {
    "name", "path", "flip", "test_path", "resize", "on_bad_file", "cache", NULL
};
/* Keys that only an image folder takes. */
static const char *const folder_keys[] = { "test_path", "resize", "on_bad_file", "cache", NULL };
/* Indexed by fg_dataset_kind. */
static const char *const dataset_names[] = {
    "none", "fashion-mnist", "mnist", "cifar10", "synthetic", "folder", NULL
};
/* Indexed by fg_resize_kind and fg_bad_file_policy. */
static const char *const resize_names[] = { "area", "bilinear", NULL };
static const char *const bad_file_names[] = { "refuse", "skip", NULL };
_Static_assert(FG_RESIZE_AREA == 0 && FG_RESIZE_BILINEAR == 1, "resize_names order");
_Static_assert(FG_BAD_FILE_REFUSE == 0 && FG_BAD_FILE_SKIP == 1, "bad_file_names order");
static const char *const optim_names[] = { "adam", "adamax", NULL };
/* Indexed by fg_schedule_kind. */
static const char *const schedule_names[] = { "constant", "cosine", "linear", NULL };
/* Indexed by fg_memory_mode. */
static const char *const memory_names[] = { "store", "invert", NULL };
_Static_assert(FG_ADAM == 0 && FG_ADAMAX == 1, "optim_names order");

#define MAX_STEPS FG_CONFIG_MAX_STEPS

const char *fg_memory_mode_name(fg_memory_mode m)
{
    return (unsigned)m <= FG_MEMORY_INVERT ? memory_names[m] : "?";
}

int fg_memory_mode_parse(const char *s, fg_memory_mode *out)
{
    for (int i = 0; memory_names[i]; i++)
        if (strcmp(s, memory_names[i]) == 0) {
            *out = (fg_memory_mode)i;
            return FG_OK;
        }
    return fg_error("memory mode '%s': expected store or invert", s);
}

const char *fg_dataset_kind_name(fg_dataset_kind d)
{
    return (unsigned)d <= FG_DATASET_FOLDER ? dataset_names[d] : "?";
}

static char *copy_text(const char *s, const char *what)
{
    size_t n = strlen(s) + 1;
    return memcpy(fg_xmalloc(n, what), s, n);
}

/* The folder's own keys: refused for other datasets, read for folders. */
static int read_folder_keys(const cfg_ctx *ctx, const cfg_node *d, const fg_model_spec *m,
                            fg_train_spec *t)
{
    if (t->dataset != FG_DATASET_FOLDER) {
        for (int i = 0; folder_keys[i]; i++)
            if (cfg_get(d, folder_keys[i]))
                return cfg_fail(ctx, cfg_get_key(d, folder_keys[i]), "'%s' is an option of "
                                "image folders only (expected it with name: folder, or not "
                                "at all)", folder_keys[i]);
        return FG_OK;
    }
    int resize = FG_RESIZE_AREA, bad = FG_BAD_FILE_REFUSE;
    const char *test_path = NULL;
    t->cache = 1;
    if (cfg_string(ctx, d, "dataset", "test_path", &test_path)
        || cfg_enum(ctx, d, "dataset", "resize", resize_names, &resize)
        || cfg_enum(ctx, d, "dataset", "on_bad_file", bad_file_names, &bad)
        || cfg_bool(ctx, d, "dataset", "cache", &t->cache))
        return FG_ERR;
    t->resize = (fg_resize_kind)resize;
    t->on_bad_file = (fg_bad_file_policy)bad;
    if (test_path)
        t->test_path = copy_text(test_path, "dataset test path");
    if (m->input.c != 1 && m->input.c != 3)
        return cfg_fail(ctx, cfg_get(d, "name"), "an image folder gives gray or RGB images "
                        "but the model has %d channels (expected model channels: 1 or 3)",
                        m->input.c);
    return FG_OK;
}

static int read_dataset(const cfg_ctx *ctx, const cfg_node *d, const fg_model_spec *m,
                        fg_train_spec *t)
{
    if (cfg_expect_map(ctx, d, "dataset")
        || cfg_check_keys(ctx, d, "dataset", dataset_keys)
        || cfg_require(ctx, d, "dataset", "name", "fashion-mnist, mnist, cifar10, "
                       "synthetic or folder"))
        return FG_ERR;
    /* "none" is the absent state, not a choice: offer the rest. */
    int kind = 0;
    if (cfg_enum(ctx, d, "dataset", "name", dataset_names + 1, &kind))
        return FG_ERR;
    t->dataset = (fg_dataset_kind)(kind + 1);
    const char *path = NULL;
    if (cfg_string(ctx, d, "dataset", "path", &path)
        || cfg_bool(ctx, d, "dataset", "flip", &t->flip))
        return FG_ERR;
    if (!path && t->dataset == FG_DATASET_FASHION_MNIST)
        path = FG_FASHION_MNIST_DIR;
    if (!path && t->dataset == FG_DATASET_FOLDER)
        return cfg_fail(ctx, d, "missing required key 'path' in 'dataset' (expected path: "
                        "the folder of your images, e.g. path: data/faces)");
    if (!path && (t->dataset == FG_DATASET_MNIST || t->dataset == FG_DATASET_CIFAR10))
        return cfg_fail(ctx, d, "missing required key 'path' in 'dataset' (expected path: "
                        "the directory holding the %s files; only fashion-mnist has a "
                        "default)", fg_dataset_kind_name(t->dataset));
    if (path)
        t->data_path = copy_text(path, "dataset path");
    if (read_folder_keys(ctx, d, m, t) != FG_OK)
        return FG_ERR;

    fg_chw want;
    const cfg_node *name = cfg_get(d, "name");
    switch (t->dataset) {
    case FG_DATASET_FASHION_MNIST:
    case FG_DATASET_MNIST: want = (fg_chw){ 1, 28, 28 }; break;
    case FG_DATASET_CIFAR10: want = (fg_chw){ 3, 32, 32 }; break;
    default: return FG_OK;   /* synthetic data and folders take the model's shape */
    }
    if (want.c != m->input.c || want.h != m->input.h || want.w != m->input.w)
        return cfg_fail(ctx, name, "dataset '%s' has %dx%dx%d images but the model expects "
                        "%dx%dx%d (expected model height: %d, width: %d, channels: %d)",
                        fg_dataset_kind_name(t->dataset), want.h, want.w, want.c, m->input.h,
                        m->input.w, m->input.c, want.h, want.w, want.c);
    if (m->classes && m->classes != 10)
        return cfg_fail(ctx, name, "dataset '%s' has 10 classes but the model says "
                        "classes: %d", fg_dataset_kind_name(t->dataset), m->classes);
    return FG_OK;
}

/* Synthetic data takes the model's shape, but its shapes need room and its
 * labels must be classes the model has; checked after the other keys, so
 * their own errors come first. */
static int check_synthetic(const cfg_ctx *ctx, const cfg_node *d, const fg_model_spec *m)
{
    const cfg_node *name = cfg_get(d, "name");
    if (m->input.h < FG_SYNTHETIC_MIN_SIZE || m->input.w < FG_SYNTHETIC_MIN_SIZE)
        return cfg_fail(ctx, name, "dataset 'synthetic' draws shapes of at least %dx%d "
                        "pixels but the model's images are %dx%d (expected height and "
                        "width >= %d)", FG_SYNTHETIC_MIN_SIZE, FG_SYNTHETIC_MIN_SIZE,
                        m->input.h, m->input.w, FG_SYNTHETIC_MIN_SIZE);
    if (fg_model_spec_needs_labels(m) && m->classes < FG_SYNTHETIC_CLASSES)
        return cfg_fail(ctx, name, "dataset 'synthetic' has %d classes but the model says "
                        "classes: %d (expected classes >= %d)", FG_SYNTHETIC_CLASSES,
                        m->classes, FG_SYNTHETIC_CLASSES);
    return FG_OK;
}

/* Schedule, step guard and adaptive clipping (see nn/step_guard.c). */
static int read_stability(const cfg_ctx *ctx, const cfg_node *train, fg_train_spec *t)
{
    const char *where = "train";
    int schedule = (int)t->schedule;
    if (cfg_enum(ctx, train, where, "schedule", schedule_names, &schedule)
        || cfg_bool(ctx, train, where, "guard", &t->guard)
        || cfg_int32(ctx, train, where, "guard_window", 10, FG_GUARD_MAX_WINDOW,
                     &t->guard_window)
        || cfg_real(ctx, train, where, "guard_threshold", 0, 1, 1000, 0, &t->guard_threshold)
        || cfg_real(ctx, train, where, "clip_factor", 0, 0, 1000, 0, &t->clip_factor))
        return FG_ERR;
    t->schedule = (fg_schedule_kind)schedule;
    if (!t->guard && cfg_get(train, "clip_factor") && t->clip_factor > 0)
        return cfg_fail(ctx, cfg_get_key(train, "clip_factor"), "clip_factor %g needs the "
                        "guard's statistics, but guard is false (expected guard: true, or "
                        "clip_factor: 0 with grad_clip for a fixed clip)", t->clip_factor);
    if (!t->guard)
        t->clip_factor = 0;
    return FG_OK;
}

int cfg_read_train(const cfg_ctx *ctx, const cfg_node *train, const fg_model_spec *m,
                   fg_train_spec *t)
{
    const char *where = "train";
    memset(t, 0, sizeof *t);
    t->batch = 64;
    t->optimizer = FG_ADAM;
    t->lr = 1e-3;
    t->temperature = 0.7;
    t->schedule = FG_SCHEDULE_COSINE;
    t->guard = 1;
    t->guard_window = 100;
    t->guard_threshold = 8;
    t->clip_factor = 4;
    if (cfg_expect_map(ctx, train, where)
        || cfg_check_keys(ctx, train, where, train_keys)
        || cfg_require(ctx, train, where, "dataset", "{name: fashion-mnist}"))
        return FG_ERR;
    int optim = FG_ADAM, memory = FG_MEMORY_STORE;
    long long warmup = 0, steps = 0, seed = 0, ckpt = 0, sample = 0, test = 0;
    if (read_dataset(ctx, cfg_get(train, "dataset"), m, t)
        || cfg_int32(ctx, train, where, "batch", 1, 65536, &t->batch)
        || cfg_enum(ctx, train, where, "optimizer", optim_names, &optim)
        || cfg_real(ctx, train, where, "lr", 0, 1, 1, 0, &t->lr)
        || cfg_int(ctx, train, where, "warmup", 0, MAX_STEPS, &warmup)
        || cfg_real(ctx, train, where, "grad_clip", 0, 0, HUGE_VAL, 0, &t->grad_clip)
        || cfg_real(ctx, train, where, "ema", 0, 0, 1, 1, &t->ema)
        || cfg_int32(ctx, train, where, "epochs", 1, 1000000, &t->epochs)
        || cfg_int(ctx, train, where, "steps", 1, MAX_STEPS, &steps)
        || cfg_int(ctx, train, where, "seed", 0, INT64_MAX, &seed)
        || cfg_int(ctx, train, where, "checkpoint_every", 0, MAX_STEPS, &ckpt)
        || cfg_int(ctx, train, where, "sample_every", 0, MAX_STEPS, &sample)
        || cfg_int(ctx, train, where, "test_every", 0, MAX_STEPS, &test)
        || cfg_real(ctx, train, where, "temperature", 0, 0, 10, 0, &t->temperature)
        || read_stability(ctx, train, t)
        || cfg_enum(ctx, train, where, "memory", memory_names, &memory))
        return FG_ERR;
    if (cfg_get(train, "epochs") && cfg_get(train, "steps"))
        return cfg_fail(ctx, cfg_get_key(train, "steps"), "give either 'epochs' or "
                        "'steps' in 'train', not both");
    if (!cfg_get(train, "epochs") && !cfg_get(train, "steps"))
        t->epochs = 1;
    if (t->dataset == FG_DATASET_SYNTHETIC &&
        check_synthetic(ctx, cfg_get(train, "dataset"), m) != FG_OK)
        return FG_ERR;
    t->optimizer = (fg_optim_kind)optim;
    t->memory = (fg_memory_mode)memory;
    t->warmup = warmup;
    t->steps = steps;
    t->seed = (uint64_t)seed;
    t->checkpoint_every = ckpt;
    t->sample_every = sample;
    t->test_every = test;
    return FG_OK;
}
