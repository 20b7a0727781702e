/* YAML model configs: the zoo loads, the glow preset expands to the layer
 * sequence and shapes worked out by hand, the generic list matches the
 * preset it imitates, and every bad input is reported at the right line
 * and column. */
#define _POSIX_C_SOURCE 200809L   /* open_memstream */
#include <stdlib.h>
#include <string.h>

#include "models/config.h"
#include "models/layer_kind.h"
#include "models/model.h"
#include "check_main.h"

/* A registered kind by name. */
static const fg_layer_kind *K(const char *name)
{
    const fg_layer_kind *k = fg_layer_kind_find(name);
    ck_assert_msg(k != NULL, "no layer kind '%s'", name);
    return k;
}

/* The name of a choice option's value, as YAML writes it. */
static const char *choice(const fg_layer_spec *l, const char *key)
{
    int i = fg_layer_option_index(l->kind, key);
    ck_assert_msg(i >= 0 && l->kind->options[i].choices, "%s has no choice '%s'",
                  l->kind->name, key);
    return l->kind->options[i].choices[(int)l->opt[i]];
}

static double opt(const fg_layer_spec *l, const char *key)
{
    return fg_layer_spec_get(l, key);
}

static fg_config *load_ok(const char *rel)
{
    char path[1024];
    fg_config *cfg = NULL;
    int rc = fg_config_load_file(fg_test_path(rel, path, sizeof path), &cfg);
    ck_assert_msg(rc == FG_OK, "%s: %s", rel, fg_last_error());
    ck_assert_ptr_nonnull(cfg);
    return cfg;
}

static fg_config *load_str_ok(const char *text)
{
    fg_config *cfg = NULL;
    int rc = fg_config_load_string(text, strlen(text), "inline", &cfg);
    ck_assert_msg(rc == FG_OK, "%s", fg_last_error());
    return cfg;
}

static void assert_shape(fg_chw s, int c, int h, int w)
{
    ck_assert_msg(s.c == c && s.h == h && s.w == w, "shape %dx%dx%d, expected %dx%dx%d",
                  s.c, s.h, s.w, c, h, w);
}

static long file_size(const char *rel)
{
    char path[1024];
    FILE *f = fopen(fg_test_path(rel, path, sizeof path), "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* ------------------------------------------------------------------ zoo */

/* fg_model_spec_size counts what a build holds, from the spec alone: a
 * checkpoint's config is sized with it before anything is allocated, so a
 * count that differs from the build would refuse good checkpoints. Every
 * config of the project, coupling widths capped at 16 to build fast (the
 * count reads the same layer list the build does). */
START_TEST(spec_size_matches_built_models)
{
    static const char *const configs[] = {
        "models/fmnist-quick.yaml", "models/mnist.yaml", "models/cifar10.yaml",
        "models/generic-example.yaml", "models/realnvp-fmnist.yaml",
        "models/nice-fmnist.yaml", "models/ablation-fmnist.yaml", "models/icons.yaml",
        "tests/configs/good-generic.yaml", "tests/configs/cli-tiny.yaml",
        "models/glow-spline-fmnist.yaml", "tests/configs/good-spline-maf.yaml",
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        fg_config *cfg = load_ok(configs[i]);
        for (int k = 0; k < cfg->model.n_layers; k++) {
            fg_layer_spec *l = &cfg->model.layers[k];
            int hidden = fg_layer_option_index(l->kind, "hidden");
            if (hidden >= 0 && l->opt[hidden] > 16)
                l->opt[hidden] = 16;
        }
        fg_model_size size;
        fg_model_spec_size(&cfg->model, &size);
        fg_model *m;
        ck_assert_msg(fg_model_build(&cfg->model, 1, &m) == FG_OK, "%s: %s", configs[i],
                      fg_last_error());
        double params = 0, buffers = 0;
        for (int k = 0; k < m->state.n; k++) {
            double n = (double)fg_numel(&m->state.items[k].var->t);
            if (m->state.items[k].kind == FG_PARAM)
                params += n;
            else
                buffers += n;
        }
        ck_assert_msg(size.params == params && size.buffers == buffers,
                      "%s: counted %.0f parameters and %.0f buffers, built %.0f and %.0f",
                      configs[i], size.params, size.buffers, params, buffers);
        ck_assert(size.build_bytes >= (2 * params + buffers) * sizeof(float));
        fg_model_free(m);
        fg_config_free(cfg);
    }
}
END_TEST

/* Which state entries of two builds of one spec hold the same values:
 * *orders_same for every permute and invconv entry, *nets_differ when any
 * coupling entry differs. */
static void compare_builds(const fg_model_spec *spec, uint64_t seed_a, uint64_t seed_b,
                           int *orders_same, int *nets_differ)
{
    fg_model *a, *b;
    ck_assert_msg(fg_model_build(spec, seed_a, &a) == FG_OK, "%s", fg_last_error());
    ck_assert_msg(fg_model_build(spec, seed_b, &b) == FG_OK, "%s", fg_last_error());
    int orders = 0;
    *orders_same = 1;
    *nets_differ = 0;
    for (int k = 0; k < a->state.n; k++) {
        const fg_state_entry *ea = &a->state.items[k];
        const fg_state_entry *eb = fg_state_list_find(&b->state, ea->name);
        ck_assert_ptr_nonnull(eb);
        size_t bytes = fg_numel(&ea->var->t) * sizeof(float);
        int same = memcmp(ea->var->t.data, eb->var->t.data, bytes) == 0;
        if (strstr(ea->name, "invconv") || strstr(ea->name, "permute")) {
            orders++;
            *orders_same &= same;
        } else if (strstr(ea->name, "coupling")) {
            *nets_differ |= !same;
        }
    }
    ck_assert_int_gt(orders, 0);
    fg_model_free(a);
    fg_model_free(b);
}

START_TEST(permutation_seed_fixes_channel_orders)
{
    static const char *const kinds[] = {"invconv", "shuffle"};
    for (int i = 0; i < 2; i++) {
        char text[512];
        snprintf(text, sizeof text, "model: {type: glow, height: 4, width: 4, channels: 1, "
                 "levels: 2, steps: 2, hidden: 8, permutation: %s}\n", kinds[i]);
        fg_config *cfg = load_str_ok(text);
        ck_assert_int_eq(cfg->model.permutation_seed, -1);
        int orders_same, nets_differ;
        compare_builds(&cfg->model, 1, 2, &orders_same, &nets_differ);
        ck_assert_msg(!orders_same && nets_differ, "%s: without permutation_seed the orders "
                      "follow the training seed", kinds[i]);
        fg_config_free(cfg);

        snprintf(text, sizeof text, "model: {type: glow, height: 4, width: 4, channels: 1, "
                 "levels: 2, steps: 2, hidden: 8, permutation: %s, permutation_seed: 7}\n",
                 kinds[i]);
        cfg = load_str_ok(text);
        ck_assert_int_eq(cfg->model.permutation_seed, 7);
        compare_builds(&cfg->model, 1, 2, &orders_same, &nets_differ);
        ck_assert_msg(orders_same && nets_differ, "%s: with permutation_seed the orders are "
                      "the same for both training seeds, the networks are not", kinds[i]);
        /* Another permutation_seed, another order. */
        fg_model_spec other = cfg->model;
        other.permutation_seed = 8;
        fg_model *a, *b;
        ck_assert(fg_model_build(&cfg->model, 1, &a) == FG_OK);
        ck_assert(fg_model_build(&other, 1, &b) == FG_OK);
        int differ = 0;
        for (int k = 0; k < a->state.n; k++) {
            const fg_state_entry *ea = &a->state.items[k];
            if (strstr(ea->name, "invconv") || strstr(ea->name, "permute"))
                differ |= memcmp(ea->var->t.data, fg_state_list_find(&b->state, ea->name)
                                 ->var->t.data, fg_numel(&ea->var->t) * sizeof(float)) != 0;
        }
        ck_assert_msg(differ, "%s: permutation_seed 7 and 8 drew the same orders", kinds[i]);
        fg_model_free(a);
        fg_model_free(b);
        fg_config_free(cfg);
    }
}
END_TEST

START_TEST(zoo_configs_load)
{
    static const char *const zoo[] = {
        "models/fmnist-quick.yaml", "models/mnist.yaml", "models/cifar10.yaml",
        "models/generic-example.yaml", "models/icons.yaml"
    };
    for (int i = 0; i < 5; i++) {
        fg_config *cfg = load_ok(zoo[i]);
        ck_assert_int_gt(cfg->model.n_layers, 0);
        ck_assert_int_eq(cfg->has_train, 1);
        ck_assert_int_ne(cfg->train.dataset, FG_DATASET_NONE);
        /* the text is kept verbatim for checkpoint metadata */
        ck_assert_int_eq((long)cfg->text_len, file_size(zoo[i]));
        ck_assert_uint_eq(strlen(cfg->text), cfg->text_len);
        /* every layer hands its output shape to the next one */
        const fg_model_spec *m = &cfg->model;
        assert_shape(m->layers[0].in, m->input.c, m->input.h, m->input.w);
        for (int k = 1; k < m->n_layers; k++)
            assert_shape(m->layers[k].in, m->layers[k - 1].out.c, m->layers[k - 1].out.h,
                         m->layers[k - 1].out.w);
        fg_chw last = m->layers[m->n_layers - 1].out;
        assert_shape(m->top, last.c, last.h, last.w);
        fg_config_free(cfg);
    }
}
END_TEST

/* The yardstick's architecture with a floor under the split prior's
 * log-std; the training was chosen for the README job, from the runs in
 * BENCHMARKS.md ("Defaults chosen from these runs"). */
START_TEST(quick_config_is_the_yardstick_glow)
{
    fg_config *cfg = load_ok("models/fmnist-quick.yaml");
    const fg_model_spec *m = &cfg->model;
    ck_assert_int_eq(m->type, FG_MODEL_GLOW);
    assert_shape(m->input, 1, 28, 28);
    ck_assert_int_eq(m->levels, 2);
    ck_assert_int_eq(m->steps, 8);
    ck_assert_int_eq(m->hidden, 128);
    ck_assert_int_eq(m->coupling, FG_TRANSFORM_AFFINE);
    ck_assert_int_eq(m->permutation, FG_PERMUTATION_INVCONV);
    ck_assert_int_eq(m->lu, 1);
    ck_assert_int_eq(m->learn_top, 1);
    ck_assert_int_eq(m->n_bits, 8);
    ck_assert_float_eq(m->split_logs_floor, 4.0f);
    ck_assert_int_eq(cfg->train.dataset, FG_DATASET_FASHION_MNIST);
    ck_assert_int_eq(cfg->train.batch, 16);
    ck_assert_int_eq(cfg->train.optimizer, FG_ADAM);
    ck_assert_double_eq(cfg->train.lr, 2e-3);
    ck_assert_int_eq(cfg->train.warmup, 200);
    ck_assert_int_eq(cfg->train.schedule, FG_SCHEDULE_COSINE);
    ck_assert_int_eq(cfg->train.guard, 1);
    ck_assert_double_eq(cfg->train.clip_factor, 4);
    ck_assert_int_eq(cfg->train.steps, 3600);
    ck_assert_int_eq(cfg->train.test_every, 3600);
    fg_config_free(cfg);
}
END_TEST

/* The README's job is the quick Glow above given the class: the same
 * architecture and training, the label everywhere. */
START_TEST(readme_config_is_the_quick_glow_given_the_class)
{
    fg_config *q = load_ok("models/fmnist-quick.yaml");
    fg_config *c = load_ok("models/fmnist-quick-cond.yaml");
    const fg_model_spec *a = &q->model, *b = &c->model;
    ck_assert_int_eq(b->type, a->type);
    ck_assert_int_eq(b->levels, a->levels);
    ck_assert_int_eq(b->steps, a->steps);
    ck_assert_int_eq(b->hidden, a->hidden);
    ck_assert_int_eq(b->coupling, a->coupling);
    ck_assert_int_eq(b->permutation, a->permutation);
    ck_assert_int_eq(b->lu, a->lu);
    ck_assert_int_eq(b->learn_top, a->learn_top);
    ck_assert_int_eq(b->n_bits, a->n_bits);
    ck_assert_float_eq(b->split_logs_floor, a->split_logs_floor);
    ck_assert_int_eq(a->condition, FG_CONDITION_NONE);
    ck_assert_int_eq(b->condition, FG_CONDITION_CLASS);
    ck_assert_int_eq(b->classes, 10);
    ck_assert_int_eq(b->y_condition, 0);
    const fg_train_spec *ta = &q->train, *tb = &c->train;
    ck_assert_int_eq(tb->dataset, ta->dataset);
    ck_assert_int_eq(tb->batch, ta->batch);
    ck_assert_int_eq(tb->optimizer, ta->optimizer);
    ck_assert_double_eq(tb->lr, ta->lr);
    ck_assert_int_eq(tb->warmup, ta->warmup);
    ck_assert_int_eq(tb->schedule, ta->schedule);
    ck_assert_int_eq(tb->guard, ta->guard);
    ck_assert_double_eq(tb->clip_factor, ta->clip_factor);
    ck_assert_double_eq(tb->temperature, ta->temperature);
    ck_assert_int_eq(tb->steps, ta->steps);
    ck_assert_int_eq(tb->test_every, ta->test_every);
    fg_config_free(q);
    fg_config_free(c);
}
END_TEST

/* ------------------------------------------------------------------ preset */

/* Expected glow sequence written out directly: level 0 on 4x14x14, split
 * to 2x14x14, level 1 on 8x7x7. */
START_TEST(glow_preset_expands_fmnist)
{
    fg_config *cfg = load_ok("models/fmnist-quick.yaml");
    const fg_model_spec *m = &cfg->model;
    ck_assert_int_eq(m->n_layers, 51);   /* 2 squeezes, 16 x 3 step layers, 1 split */
    int i = 0;
    for (int level = 0; level < 2; level++) {
        int c = level == 0 ? 4 : 8, hw = level == 0 ? 14 : 7;
        const fg_layer_spec *l = &m->layers[i++];
        ck_assert_ptr_eq(l->kind, K("squeeze"));
        ck_assert_int_eq(l->level, level);
        assert_shape(l->in, level == 0 ? 1 : 2, 2 * hw, 2 * hw);
        assert_shape(l->out, c, hw, hw);
        for (int k = 0; k < 8; k++) {
            static const char *const step[3] = { "actnorm", "invconv", "coupling" };
            for (int j = 0; j < 3; j++) {
                l = &m->layers[i++];
                ck_assert_ptr_eq(l->kind, K(step[j]));
                ck_assert_int_eq(l->level, level);
                assert_shape(l->in, c, hw, hw);
                assert_shape(l->out, c, hw, hw);
            }
            ck_assert_double_eq(opt(&m->layers[i - 3], "scale"), 1.0);
            ck_assert_double_eq(opt(&m->layers[i - 2], "lu"), 1);
            ck_assert_str_eq(choice(&m->layers[i - 1], "type"), "affine");
            ck_assert_double_eq(opt(&m->layers[i - 1], "hidden"), 128);
            ck_assert_str_eq(choice(&m->layers[i - 1], "mask"), "channel");
            ck_assert_str_eq(choice(&m->layers[i - 1], "scale"), "sigmoid");
        }
        if (level == 0) {
            l = &m->layers[i++];
            ck_assert_ptr_eq(l->kind, K("split"));
            ck_assert_str_eq(choice(l, "prior"), "learned");
            assert_shape(l->in, 4, 14, 14);
            assert_shape(l->out, 2, 14, 14);
        }
    }
    ck_assert_int_eq(i, m->n_layers);
    assert_shape(m->top, 8, 7, 7);
    /* preset layers point at the 'type: glow' line of the file, found here
     * independently of the parser so that edits to the file's comments do
     * not break the test */
    int type_line = 0, line = 1;
    for (const char *p = cfg->text; *p; p++) {
        if (strncmp(p, "  type: glow", 12) == 0 && (p == cfg->text || p[-1] == '\n')) {
            type_line = line;
            break;
        }
        if (*p == '\n') line++;
    }
    ck_assert_int_gt(type_line, 0);
    ck_assert_int_eq(m->layers[0].line, type_line);
    ck_assert_int_eq(m->layers[0].column, 9);
    fg_config_free(cfg);
}
END_TEST

START_TEST(glow_preset_expands_cifar10)
{
    fg_config *cfg = load_ok("models/cifar10.yaml");
    const fg_model_spec *m = &cfg->model;
    ck_assert_int_eq(m->levels, 3);
    ck_assert_int_eq(m->steps, 32);
    ck_assert_int_eq(m->hidden, 512);
    ck_assert_int_eq(cfg->train.optimizer, FG_ADAMAX);
    ck_assert_int_eq(m->n_layers, 3 * (1 + 3 * 32) + 2);
    /* 3x32x32 -> 12x16x16 -> split 6x16x16 -> 24x8x8 -> split 12x8x8 -> 48x4x4 */
    static const int split_out[2][3] = { { 6, 16, 16 }, { 12, 8, 8 } };
    int splits = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == K("split")) {
            ck_assert_int_lt(splits, 2);
            assert_shape(m->layers[i].out, split_out[splits][0], split_out[splits][1],
                         split_out[splits][2]);
            splits++;
        }
    ck_assert_int_eq(splits, 2);
    assert_shape(m->top, 48, 4, 4);
    fg_config_free(cfg);
}
END_TEST

START_TEST(glow_preset_options)
{
    fg_config *cfg = load_str_ok(
        "model: {type: glow, height: 4, width: 6, channels: 2, levels: 1, steps: 2,\n"
        "        hidden: 7, coupling: additive, permutation: shuffle,\n"
        "        actnorm_scale: 0.5, learn_top: false, y_condition: true,\n"
        "        classes: 3, weight_y: 2.5, n_bits: 5}\n");
    const fg_model_spec *m = &cfg->model;
    static const char *const want[] = {
        "squeeze", "actnorm", "permute", "coupling", "actnorm", "permute", "coupling"
    };
    ck_assert_int_eq(m->n_layers, 7);
    for (int i = 0; i < 7; i++)
        ck_assert_ptr_eq(m->layers[i].kind, K(want[i]));
    assert_shape(m->layers[0].out, 8, 2, 3);
    ck_assert_double_eq(opt(&m->layers[1], "scale"), 0.5);
    ck_assert_str_eq(choice(&m->layers[2], "type"), "shuffle");
    ck_assert_str_eq(choice(&m->layers[3], "type"), "additive");
    ck_assert_double_eq(opt(&m->layers[3], "hidden"), 7);
    assert_shape(m->top, 8, 2, 3);
    ck_assert_int_eq(m->learn_top, 0);
    ck_assert_int_eq(m->y_condition, 1);
    ck_assert_int_eq(m->classes, 3);
    ck_assert_float_eq(m->weight_y, 2.5f);
    ck_assert_int_eq(m->n_bits, 5);
    ck_assert_int_eq(cfg->has_train, 0);
    fg_config_free(cfg);

    cfg = load_str_ok("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1,\n"
                      "        steps: 1, permutation: reverse}\n");
    ck_assert_ptr_eq(cfg->model.layers[2].kind, K("permute"));
    ck_assert_str_eq(choice(&cfg->model.layers[2], "type"), "reverse");
    fg_config_free(cfg);

    cfg = load_str_ok("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1,\n"
                      "        steps: 1, lu: false}\n");
    ck_assert_ptr_eq(cfg->model.layers[2].kind, K("invconv"));
    ck_assert_double_eq(opt(&cfg->model.layers[2], "lu"), 0);
    fg_config_free(cfg);

    /* split_logs_floor reaches every split; unset, the splits are Glow's. */
    for (int floor = 0; floor < 2; floor++) {
        cfg = load_str_ok(floor ? "model: {type: glow, height: 8, width: 8, channels: 1, "
                                  "levels: 3, steps: 1, split_logs_floor: 6.5}\n"
                                : "model: {type: glow, height: 8, width: 8, channels: 1, "
                                  "levels: 3, steps: 1}\n");
        int splits = 0;
        for (int i = 0; i < cfg->model.n_layers; i++)
            if (cfg->model.layers[i].kind == K("split")) {
                ck_assert_double_eq(opt(&cfg->model.layers[i], "logs_floor"), floor ? 6.5 : 0);
                splits++;
            }
        ck_assert_int_eq(splits, 2);
        ck_assert_float_eq(cfg->model.split_logs_floor, floor ? 6.5f : 0.0f);
        fg_config_free(cfg);
    }
    /* The layer list names it per split. */
    cfg = load_str_ok("model: {type: flow, height: 2, width: 2, channels: 1,\n"
                      "        flow: [squeeze, split: {logs_floor: 4}, actnorm]}\n");
    ck_assert_double_eq(opt(&cfg->model.layers[1], "logs_floor"), 4);
    fg_config_free(cfg);
}
END_TEST

START_TEST(defaults_fill_optional_keys)
{
    fg_config *cfg = load_str_ok(
        "model: {type: glow, height: 8, width: 8, channels: 1, levels: 2, steps: 1}\n"
        "train: {dataset: {name: synthetic}}\n");
    const fg_model_spec *m = &cfg->model;
    ck_assert_int_eq(m->hidden, 512);
    ck_assert_int_eq(m->coupling, FG_TRANSFORM_AFFINE);
    ck_assert_int_eq(m->permutation, FG_PERMUTATION_INVCONV);
    ck_assert_int_eq(m->lu, 1);
    ck_assert_float_eq(m->actnorm_scale, 1.0f);
    ck_assert_int_eq(m->learn_top, 1);
    ck_assert_int_eq(m->y_condition, 0);
    ck_assert_int_eq(m->classes, 0);
    ck_assert_int_eq(m->n_bits, 8);
    const fg_train_spec *t = &cfg->train;
    ck_assert_int_eq(cfg->has_train, 1);
    ck_assert_int_eq(t->dataset, FG_DATASET_SYNTHETIC);
    ck_assert_ptr_null(t->data_path);
    ck_assert_int_eq(t->batch, 64);
    ck_assert_int_eq(t->optimizer, FG_ADAM);
    ck_assert_double_eq(t->lr, 1e-3);
    ck_assert_int_eq(t->warmup, 0);
    ck_assert_double_eq(t->grad_clip, 0);
    ck_assert_double_eq(t->ema, 0);
    ck_assert_int_eq(t->epochs, 1);
    ck_assert_int_eq(t->steps, 0);
    ck_assert_uint_eq(t->seed, 0);
    ck_assert_int_eq(t->checkpoint_every, 0);
    ck_assert_int_eq(t->test_every, 0);
    ck_assert_double_eq(t->temperature, 0.7);
    ck_assert_int_eq(t->schedule, FG_SCHEDULE_COSINE);
    ck_assert_int_eq(t->guard, 1);
    ck_assert_int_eq(t->guard_window, 100);
    ck_assert_double_eq(t->guard_threshold, 8);
    ck_assert_double_eq(t->clip_factor, 4);
    fg_config_free(cfg);

    /* Debian's dataset-fashion-mnist location is the one default path */
    cfg = load_ok("models/generic-example.yaml");
    ck_assert_str_eq(cfg->train.data_path, "/usr/share/datasets/fashion-mnist");
    fg_config_free(cfg);
    cfg = load_ok("models/mnist.yaml");
    ck_assert_str_eq(cfg->train.data_path, "data/mnist");
    fg_config_free(cfg);
}
END_TEST

/* ------------------------------------------------------------------ generic */

START_TEST(generic_list_expands)
{
    fg_config *cfg = load_ok("tests/configs/good-generic.yaml");
    const fg_model_spec *m = &cfg->model;
    ck_assert_int_eq(m->type, FG_MODEL_FLOW);
    static const struct { const char *kind; int in[3], out[3], level; } want[] = {
        { "coupling", { 3, 8, 8 }, { 3, 8, 8 }, 0 },
        { "coupling", { 3, 8, 8 }, { 3, 8, 8 }, 0 },
        { "squeeze", { 3, 8, 8 }, { 12, 4, 4 }, 0 },
        { "actnorm", { 12, 4, 4 }, { 12, 4, 4 }, 0 },
        { "permute", { 12, 4, 4 }, { 12, 4, 4 }, 0 },
        { "coupling", { 12, 4, 4 }, { 12, 4, 4 }, 0 },
        { "actnorm", { 12, 4, 4 }, { 12, 4, 4 }, 0 },
        { "permute", { 12, 4, 4 }, { 12, 4, 4 }, 0 },
        { "coupling", { 12, 4, 4 }, { 12, 4, 4 }, 0 },
        { "split", { 12, 4, 4 }, { 6, 4, 4 }, 0 },
        { "invconv", { 6, 4, 4 }, { 6, 4, 4 }, 1 },
        { "invconv", { 6, 4, 4 }, { 6, 4, 4 }, 1 },
        { "squeeze", { 6, 4, 4 }, { 24, 2, 2 }, 1 },
        { "permute", { 24, 2, 2 }, { 24, 2, 2 }, 1 },
        { "coupling", { 24, 2, 2 }, { 24, 2, 2 }, 1 },
    };
    int n = (int)(sizeof want / sizeof want[0]);
    ck_assert_int_eq(m->n_layers, n);
    for (int i = 0; i < n; i++) {
        const fg_layer_spec *l = &m->layers[i];
        ck_assert_msg(l->kind == K(want[i].kind), "layer %d is %s", i, fg_layer_kind_name(l->kind));
        assert_shape(l->in, want[i].in[0], want[i].in[1], want[i].in[2]);
        assert_shape(l->out, want[i].out[0], want[i].out[1], want[i].out[2]);
        ck_assert_int_eq(l->level, want[i].level);
    }
    const fg_layer_spec *L = m->layers;
    ck_assert_str_eq(choice(&L[0], "mask"), "checkerboard");
    ck_assert_str_eq(choice(&L[0], "scale"), "tanh");
    ck_assert_double_eq(opt(&L[0], "hidden"), 16);
    ck_assert_str_eq(choice(&L[1], "mask"), "checkerboard_flip");
    ck_assert_double_eq(opt(&L[3], "scale"), 2.0);
    ck_assert_str_eq(choice(&L[4], "type"), "reverse");
    ck_assert_str_eq(choice(&L[5], "type"), "additive");
    ck_assert_double_eq(opt(&L[5], "hidden"), 8);
    ck_assert_str_eq(choice(&L[5], "mask"), "channel_flip");
    ck_assert_str_eq(choice(&L[9], "prior"), "standard");
    ck_assert_double_eq(opt(&L[10], "lu"), 0);
    ck_assert_double_eq(opt(&L[11], "lu"), 1);
    ck_assert_str_eq(choice(&L[13], "type"), "shuffle");
    ck_assert_str_eq(choice(&L[14], "type"), "affine");
    ck_assert_double_eq(opt(&L[14], "hidden"), 512);
    ck_assert_str_eq(choice(&L[14], "mask"), "channel");
    /* repeated layers point at their declaration, both passes alike */
    ck_assert_int_eq(L[5].line, 20);
    ck_assert_int_eq(L[5].column, 11);
    ck_assert_int_eq(L[8].line, 20);
    assert_shape(m->top, 24, 2, 2);
    ck_assert_int_eq(m->n_bits, 5);
    ck_assert_int_eq(m->learn_top, 0);
    ck_assert_int_eq(m->y_condition, 1);
    ck_assert_int_eq(m->classes, 10);
    ck_assert_float_eq(m->weight_y, 0.5f);

    const fg_train_spec *t = &cfg->train;
    ck_assert_int_eq(t->dataset, FG_DATASET_SYNTHETIC);
    ck_assert_int_eq(t->batch, 16);
    ck_assert_int_eq(t->optimizer, FG_ADAMAX);
    ck_assert_double_eq(t->lr, 5e-4);
    ck_assert_int_eq(t->warmup, 10);
    ck_assert_double_eq(t->grad_clip, 100.0);
    ck_assert_double_eq(t->ema, 0.999);
    ck_assert_int_eq(t->steps, 50);
    ck_assert_int_eq(t->epochs, 0);
    ck_assert_uint_eq(t->seed, 12345);
    ck_assert_int_eq(t->checkpoint_every, 25);
    ck_assert_int_eq(t->sample_every, 20);
    ck_assert_int_eq(t->test_every, 10);
    ck_assert_double_eq(t->temperature, 0.5);
    fg_config_free(cfg);
}
END_TEST

/* The preset and the list it stands for give identical layer specs. */
START_TEST(generic_list_equals_preset)
{
    fg_config *preset = load_str_ok(
        "model: {type: glow, height: 8, width: 8, channels: 1, levels: 2, steps: 3,\n"
        "        hidden: 32, actnorm_scale: 0.7}\n");
    fg_config *list = load_str_ok(
        "model:\n"
        "  type: flow\n"
        "  height: 8\n"
        "  width: 8\n"
        "  channels: 1\n"
        "  flow:\n"
        "    - squeeze\n"
        "    - repeat: 3\n"
        "      flow: [actnorm: {scale: 0.7}, invconv, coupling: {hidden: 32}]\n"
        "    - split\n"
        "    - squeeze\n"
        "    - repeat: 3\n"
        "      flow:\n"
        "        - actnorm: {scale: 0.7}\n"
        "        - invconv: {lu: true}\n"
        "        - coupling: {type: affine, hidden: 32, mask: channel, scale: sigmoid}\n");
    const fg_model_spec *a = &preset->model, *b = &list->model;
    ck_assert_int_eq(a->n_layers, 2 * 10 + 1);
    ck_assert_int_eq(a->n_layers, b->n_layers);
    for (int i = 0; i < a->n_layers; i++) {
        fg_layer_spec x = a->layers[i], y = b->layers[i];
        x.line = y.line = x.column = y.column = 0;
        ck_assert_msg(memcmp(&x, &y, sizeof x) == 0, "layer %d differs", i);
    }
    assert_shape(b->top, 8, 2, 2);
    fg_config_free(preset);
    fg_config_free(list);
}
END_TEST

/* ------------------------------------------------------------------ text */

START_TEST(string_load_keeps_name_and_text)
{
    fg_config *cfg = load_ok("models/generic-example.yaml");
    fg_config *again = NULL;
    ck_assert_int_eq(fg_config_load_string(cfg->text, cfg->text_len, "ckpt:config",
                                           &again), FG_OK);
    ck_assert_str_eq(again->name, "ckpt:config");
    ck_assert_str_eq(again->text, cfg->text);
    ck_assert_int_eq(again->model.n_layers, cfg->model.n_layers);
    ck_assert_int_eq(memcmp(again->model.layers, cfg->model.layers,
                            (size_t)cfg->model.n_layers * sizeof(fg_layer_spec)), 0);
    fg_config_free(again);
    fg_config_free(cfg);

    /* text needs no terminator: the length bounds it */
    const char *text = "model: {type: glow, height: 2, width: 2, channels: 1, levels: 1, "
                       "steps: 1}\nGARBAGE: [";
    ck_assert_int_eq(fg_config_load_string(text, strlen(text) - 10, "n", &cfg), FG_OK);
    ck_assert_uint_eq(cfg->text_len, strlen(text) - 10);
    fg_config_free(cfg);
    ck_assert_int_eq(fg_config_load_string(text, strlen(text), "ckpt:config", &cfg), FG_ERR);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strncmp(fg_last_error(), "ckpt:config:", 12) == 0, "%s", fg_last_error());
}
END_TEST

START_TEST(print_lists_layers_with_shapes)
{
    fg_config *cfg = load_ok("models/fmnist-quick.yaml");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    fg_config_print(cfg, f);
    fclose(f);
    /* one line per layer, plus the headers and the prior and three train lines */
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    ck_assert_int_eq(lines, 51 + 7);
    ck_assert_ptr_nonnull(strstr(buf, "squeeze"));
    ck_assert_ptr_nonnull(strstr(buf, "1x28x28 -> 4x14x14"));
    ck_assert_ptr_nonnull(strstr(buf, "4x14x14 -> 2x14x14"));
    ck_assert_ptr_nonnull(strstr(buf, "2x14x14 -> 8x7x7"));
    ck_assert_ptr_nonnull(strstr(buf, "coupling affine hidden=128 mask=channel scale=sigmoid"));
    ck_assert_ptr_nonnull(strstr(buf, "top prior: learned, shape 8x7x7"));
    free(buf);
    fg_config_free(cfg);
}
END_TEST

/* ------------------------------------------------------------------ errors */

static void expect_error_at(const char *name, int rc, fg_config *cfg, int line, int column,
                            const char *phrase)
{
    char prefix[1100];
    ck_assert_msg(rc == FG_ERR, "%s: accepted", name);
    ck_assert_ptr_null(cfg);
    const char *msg = fg_last_error();
    snprintf(prefix, sizeof prefix, "%s:%d:%d: ", name, line, column);
    ck_assert_msg(strncmp(msg, prefix, strlen(prefix)) == 0, "expected '%s...', got '%s'",
                  prefix, msg);
    ck_assert_msg(strstr(msg, phrase) != NULL, "expected '%s' in '%s'", phrase, msg);
}

static const struct bad_file {
    const char *file;
    int line, column;
    const char *phrase;
} bad_files[] = {
    { "bad-unknown-key.yaml", 8, 3, "unknown key 'hiden' in 'model' (expected one of: type," },
    { "bad-wrong-type.yaml", 7, 10, "'steps' in 'model' must be a whole number from 1 to 4096 (got 'eight')" },
    { "bad-out-of-range.yaml", 8, 11, "'n_bits' in 'model' is out of range (expected 1..8, got 9)" },
    { "bad-missing-required.yaml", 3, 5, "missing required key 'levels' in 'model'" },
    { "bad-too-many-levels.yaml", 6, 13, "28x28 image cannot be squeezed 3 times" },
    { "bad-odd-split.yaml", 8, 7, "split needs an even number of channels" },
    { "bad-odd-coupling.yaml", 6, 19, "coupling with a channel mask needs an even number of channels" },
    { "bad-squeeze-in-repeat.yaml", 9, 11, "shape here is 16x3x3 (CxHxW) (in pass 3 of 3 of the repeat at line 7)" },
    { "bad-split-last.yaml", 9, 9, "split is the last layer" },
    { "bad-duplicate-key.yaml", 8, 3, "duplicate key 'width' (first given at line 4, column 3" },
    { "bad-alias-bomb.yaml", 1, 4, "anchor '&a' is not supported" },
    { "bad-deep-nesting.yaml", 1, 71, "nesting deeper than 64 levels" },
    { "bad-two-documents.yaml", 8, 1, "a second YAML document" },
    { "bad-syntax.yaml", 5, 11, "YAML syntax error: did not find expected ',' or ']'" },
    { "bad-dataset-shape.yaml", 9, 19, "dataset 'fashion-mnist' has 28x28x1 images but the model expects 32x32x3" },
    { "bad-epochs-and-steps.yaml", 5, 3, "give either 'epochs' or 'steps'" },
    { "bad-quoted-number.yaml", 1, 73, "'steps' in 'model' must be a whole number" },
    { "bad-tag.yaml", 1, 73, "tag 'tag:yaml.org,2002:int' is not supported" },
    { "bad-unknown-layer.yaml", 8, 7, "unknown layer 'conv' (expected one of: squeeze," },
    { "bad-additive-scale.yaml", 7, 34, "'scale' only applies to affine couplings" },
    { "bad-lr.yaml", 4, 7, "'lr' in 'train' must be a number (0, 1] (got 'nan')" },
};

START_TEST(bad_file_reported_at_line_and_column)
{
    const struct bad_file *b = &bad_files[_i];
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "tests/configs/%s", b->file);
    fg_test_path(rel, path, sizeof path);
    fg_config *cfg = (fg_config *)1;
    int rc = fg_config_load_file(path, &cfg);
    expect_error_at(path, rc, cfg, b->line, b->column, b->phrase);
}
END_TEST

static void expect_string_error(const char *text, size_t len, int line, int column,
                                const char *phrase)
{
    fg_config *cfg = (fg_config *)1;
    int rc = fg_config_load_string(text, len, "t.yaml", &cfg);
    expect_error_at("t.yaml", rc, cfg, line, column, phrase);
}

#define BAD(text, line, column, phrase) \
    expect_string_error(text, sizeof(text) - 1, line, column, phrase)

START_TEST(bad_bytes_are_refused)
{
    /* NUL inside a value: offset 17 is line 2, column 11 */
    BAD("model:\n  type: gl\0ow\n", 2, 11, "control characters are not allowed (byte 0x00");
    BAD("model:\n  type: \xff\n", 2, 9, "invalid leading UTF-8 octet (byte 0xFF");
    /* an unfinished sequence is reported at the byte that breaks it */
    BAD("model:\n  type: \xc3\n", 2, 10, "invalid trailing UTF-8 octet (byte 0x0A; expected valid UTF-8");
    /* UTF-16 with a BOM is not taken as another encoding */
    BAD("\xff\xfem\0", 1, 1, "invalid input");
    /* a multi-byte character counts as one column */
    BAD("model:\n  bad: \xc3\xa9\xc3\xa9\x01\n", 2, 10, "control characters");
}
END_TEST

START_TEST(bad_structures_are_refused)
{
    BAD("model: *x\n", 1, 8, "alias is not supported");
    /* Synthetic data: these stopped the program in the data generator or
     * at the first class-conditional step before the config said so. */
    BAD("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1, steps: 1}\n"
        "train: {dataset: {name: synthetic}}\n", 2, 25,
        "dataset 'synthetic' draws shapes of at least 4x4 pixels but the model's images are "
        "2x2 (expected height and width >= 4)");
    BAD("model: {type: glow, height: 8, width: 8, channels: 1, levels: 1, steps: 1,\n"
        "        y_condition: true, classes: 3}\n"
        "train: {dataset: {name: synthetic}}\n", 3, 25,
        "dataset 'synthetic' has 4 classes but the model says classes: 3 (expected classes >= 4)");
    BAD("", 1, 1, "empty config");
    BAD("# only a comment\n", 1, 1, "empty config");
    BAD("- model\n", 1, 1, "the config must be a mapping");
    BAD("model: 3\n", 1, 8, "'model' must be a mapping");
    BAD("train: {}\n", 1, 1, "missing required key 'model'");
    BAD("model: {type: glow}\nmodel2: 1\n", 2, 1, "unknown key 'model2' in 'config'");
    BAD("model: {type: resnet}\n", 1, 15, "'type' in 'model' must be one of: glow, flow (got 'resnet')");
    BAD("model: {height: 2}\n", 1, 8, "missing required key 'type' in 'model'");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, levels: 1}\n", 1, 55,
        "unknown key 'levels' in 'model' (expected one of:");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2}\n", 1, 8,
        "missing required key 'flow' in 'model'");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: []}\n", 1, 61,
        "'flow' in 'model' is empty");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: actnorm}\n", 1, 61,
        "'flow' in 'model' must be a list");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [{actnorm: {}, invconv: {}}]}\n",
        1, 76, "a flow entry is one layer");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [actnorm: 3]}\n", 1, 71,
        "options of 'actnorm' must be a mapping");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [squeeze: {x: 1}]}\n", 1, 72,
        "squeeze takes no options");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [permute]}\n", 1, 62,
        "missing required key 'type' in 'permute'");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [coupling: {hiden: 3}]}\n",
        1, 73, "unknown key 'hiden' in 'coupling' (expected one of: type, hidden, mask, scale, net, layers, "
        "bins, bound, conditioner)");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [{repeat: 0, flow: [actnorm]}]}\n",
        1, 71, "'repeat' in 'repeat' is out of range (expected 1..100000, got 0)");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [{repeat: 2}]}\n",
        1, 62, "missing required key 'flow' in 'repeat'");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, permutation_seed: -1,\n"
        "        flow: [actnorm]}\n", 1, 73,
        "'permutation_seed' in 'model' is out of range (expected 0..2147483647, got -1)");
    BAD("model: {type: flow, height: 1, width: 1, channels: 2,\n"
        "        flow: [coupling: {mask: checkerboard}]}\n", 2, 16,
        "checkerboard mask needs at least 2 pixels");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [coupling: {type: spline, "
        "bins: 1}]}\n", 1, 93, "'bins' in 'coupling' is out of range (expected 2..64, got 1)");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [coupling: {type: spline, "
        "bound: 0}]}\n", 1, 94, "'bound' in 'coupling' is out of range (expected (0, 10000], got 0)");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [coupling: {type: spline, "
        "bound: -3}]}\n", 1, 94, "'bound' in 'coupling' is out of range");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [coupling: {bins: 8}]}\n",
        1, 73, "'bins' only applies to spline transforms (expected type: spline with it)");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [coupling: {type: spline, "
        "scale: tanh}]}\n", 1, 87, "'scale' only applies to affine couplings");
    BAD("model: {type: glow, height: 8, width: 8, channels: 1, levels: 1, steps: 1,\n"
        "        coupling: spline, bins: 0}\n", 2, 33, "'bins' in 'model' is out of range");
    BAD("model: {type: glow, height: 8, width: 8, channels: 1, levels: 1, steps: 1, bound: 2}\n",
        1, 76, "'bound' only applies to spline transforms (expected coupling: spline with it)");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [maf]}\n", 1, 62,
        "maf is an autoregressive flow on vectors of at least 2 entries, but the shape here is "
        "2x2x2 (CxHxW; add a flatten first: images are not supported)");
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [flatten, iaf: {type: spline, "
        "bins: 65}]}\n", 1, 97, "'bins' in 'iaf' is out of range (expected 2..64, got 65)");
    BAD("model: {type: flow, height: 1, width: 1, channels: 1, flow: [iaf]}\n", 1, 62,
        "iaf needs vectors of at least 2 entries, but the shape here is 1x1x1");
    BAD("model: {type: glow, height: 8, width: 8, channels: 1, levels: 1, steps: 1,\n"
        "        permutation: shuffle, lu: true}\n", 2, 31, "'lu' only applies to permutation: invconv");
    BAD("model: {type: glow, height: 8, width: 8, channels: 1, levels: 1, steps: 1,\n"
        "        y_condition: true}\n", 1, 8, "missing required key 'classes'");
    BAD("model: {type: glow, height: 6, width: 8, channels: 1, levels: 1, steps: 1,\n"
        "        actnorm_scale: 0}\n", 2, 24, "'actnorm_scale' in 'model' is out of range (expected (0, 1e+06], got 0)");
    BAD("model: {type: glow, height: 8, width: 8, channels: 1, levels: 2, steps: 1,\n"
        "        split_logs_floor: -1}\n", 2, 27,
        "'split_logs_floor' in 'model' is out of range (expected [0, 30], got -1)");
    BAD("model: {type: flow, height: 2, width: 2, channels: 1,\n"
        "        flow: [squeeze, split: {prior: standard, logs_floor: 2}, actnorm]}\n", 2, 50,
        "'logs_floor' only applies to a learned prior (expected prior: learned with it)");
    BAD("model: {type: glow, height: 7, width: 8, channels: 1, levels: 1, steps: 1}\n", 1, 63,
        "a 7x8 image cannot be squeezed even once");
    BAD("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1, steps: 1, lu: yes}\n",
        1, 80, "'lu' in 'model' must be true or false (got 'yes')");
    BAD("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1, steps: 1}\n"
        "train: {batch: 3}\n", 2, 8, "missing required key 'dataset' in 'train'");
    /* The stability keys: schedule, guard and its clipping. */
    BAD("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1, steps: 1}\n"
        "train: {dataset: {name: synthetic}, schedule: step}\n", 2, 47,
        "'schedule' in 'train' must be one of: constant, cosine, linear (got 'step')");
    BAD("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1, steps: 1}\n"
        "train: {dataset: {name: synthetic}, guard_window: 5}\n", 2, 51,
        "'guard_window' in 'train' is out of range (expected 10..4096, got 5)");
    BAD("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1, steps: 1}\n"
        "train: {dataset: {name: synthetic}, guard_threshold: 0}\n", 2, 54,
        "'guard_threshold' in 'train' is out of range");
    BAD("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1, steps: 1}\n"
        "train: {dataset: {name: synthetic}, guard: false, clip_factor: 3}\n", 2, 51,
        "clip_factor 3 needs the guard's statistics, but guard is false (expected guard: "
        "true, or clip_factor: 0 with grad_clip for a fixed clip)");
    BAD("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1, steps: 1}\n"
        "train: {dataset: {name: imagenet}}\n", 2, 25,
        "'name' in 'dataset' must be one of: fashion-mnist, mnist, cifar10, synthetic");
    BAD("model: {type: glow, height: 28, width: 28, channels: 1, levels: 1, steps: 1, classes: 5}\n"
        "train: {dataset: {name: mnist, path: m}}\n", 2, 25, "has 10 classes but the model says classes: 5");
    BAD("model: {type: glow, height: 32, width: 32, channels: 3, levels: 1, steps: 1}\n"
        "train: {dataset: {name: cifar10}}\n", 2, 18, "missing required key 'path' in 'dataset'");
    BAD("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1, steps: 1}\n"
        "train: {dataset: {name: synthetic}, ema: 1.0}\n", 2, 42,
        "'ema' in 'train' is out of range (expected [0, 1), got 1)");
    BAD("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1, steps: 1}\n"
        "train: {dataset: {name: synthetic}, seed: -1}\n", 2, 43,
        "'seed' in 'train' is out of range");
    BAD("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1, steps: 1}\n"
        "train: {dataset: {name: synthetic}, steps: 99999999999999999999}\n", 2, 44,
        "'steps' in 'train' must be a whole number");
    BAD("model: {type: glow, height: 2, width: 2, channels: 1, levels: 1, steps: 1}\n"
        "train: {dataset: {name: synthetic}, lr: 0x10}\n", 2, 41, "'lr' in 'train' must be a number");
    BAD("model: {type: glow, height: 65536, width: 65536, channels: 4, levels: 1, steps: 1}\n",
        1, 29, "values per sample");
}
END_TEST

START_TEST(sizes_are_bounded)
{
    /* a scalar over the limit */
    size_t n = FG_CONFIG_MAX_SCALAR + 64;
    char *text = malloc(n + 32);
    int k = sprintf(text, "description: ");
    memset(text + k, 'a', FG_CONFIG_MAX_SCALAR + 1);
    k += FG_CONFIG_MAX_SCALAR + 1;
    k += sprintf(text + k, "\n");
    expect_string_error(text, (size_t)k, 1, 14, "value longer than 4096 bytes");
    free(text);

    /* input over the limit is refused before parsing */
    n = (size_t)FG_CONFIG_MAX_BYTES + 1;
    text = malloc(n);
    memset(text, '#', n);
    expect_string_error(text, n, 1, 1, "more than the 1048576 allowed");
    free(text);

    /* repeats that multiply past the layer cap stop at the cap */
    BAD("model: {type: flow, height: 2, width: 2, channels: 2, flow: [{repeat: 100000,\n"
        "        flow: [{repeat: 100000, flow: [actnorm]}]}]}\n", 2, 40,
        "expands to more than 100000 layers");

    /* a mapping with more keys than any config needs */
    size_t cap = 300 * 16 + 32;
    text = malloc(cap);
    k = sprintf(text, "model:\n");
    for (int i = 0; i < 300; i++)
        k += sprintf(text + k, "  k%d: 1\n", i);
    expect_string_error(text, (size_t)k, 2 + 256, 3, "more than 256 keys");
    free(text);

    fg_config *cfg = (fg_config *)1;
    ck_assert_int_eq(fg_config_load_file("/nonexistent/dir/x.yaml", &cfg), FG_ERR);
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(strstr(fg_last_error(), "/nonexistent/dir/x.yaml: cannot open config"));
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = fg_tcase("good");
    tcase_add_test(tc, zoo_configs_load);
    tcase_add_test(tc, spec_size_matches_built_models);
    tcase_add_test(tc, quick_config_is_the_yardstick_glow);
    tcase_add_test(tc, readme_config_is_the_quick_glow_given_the_class);
    tcase_add_test(tc, glow_preset_expands_fmnist);
    tcase_add_test(tc, glow_preset_expands_cifar10);
    tcase_add_test(tc, glow_preset_options);
    tcase_add_test(tc, permutation_seed_fixes_channel_orders);
    tcase_add_test(tc, defaults_fill_optional_keys);
    tcase_add_test(tc, generic_list_expands);
    tcase_add_test(tc, generic_list_equals_preset);
    tcase_add_test(tc, string_load_keeps_name_and_text);
    tcase_add_test(tc, print_lists_layers_with_shapes);
    suite_add_tcase(s, tc);
    tc = fg_tcase("bad");
    tcase_add_loop_test(tc, bad_file_reported_at_line_and_column, 0,
                        (int)(sizeof bad_files / sizeof bad_files[0]));
    tcase_add_test(tc, bad_bytes_are_refused);
    tcase_add_test(tc, bad_structures_are_refused);
    tcase_add_test(tc, sizes_are_bounded);
    suite_add_tcase(s, tc);
    return s;
}
