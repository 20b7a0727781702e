/* Checkpoints that are well-formed but mean something else: the input is a
 * program of mutations applied to a valid checkpoint made at start-up (a
 * tiny model trained for a step, with Adam moments, EMA averages and run
 * state), on tensor values, shapes, dtypes, names and the metadata,
 * embedded YAML included. The result is serialized, loaded as a file
 * (fg_checkpoint_load) and, when accepted, evaluated, sampled and stepped
 * by the optimizer as train --resume would. Any stop is a finding: what
 * the library accepted must run, and what it refuses must say why. */
#include "flowgrad.h"
#include "fuzz_mem.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Two bases: Glow with LU invconv and a class-conditional learned prior,
 * and a generic list with plain invconv, a shuffle and a standard split. */
static const char *const yaml[2] = {
    "model: {type: glow, height: 8, width: 8, channels: 1, levels: 2, steps: 1,\n"
    "        hidden: 4, coupling: affine, permutation: invconv, lu: true,\n"
    "        learn_top: true, y_condition: true, classes: 4, n_bits: 5}\n"
    "train: {dataset: {name: synthetic}, batch: 2, ema: 0.9, steps: 1}\n",
    "model:\n"
    "  type: flow\n"
    "  height: 4\n"
    "  width: 4\n"
    "  channels: 1\n"
    "  learn_top: false\n"
    "  flow:\n"
    "    - squeeze\n"
    "    - actnorm\n"
    "    - invconv: {lu: false}\n"
    "    - permute: {type: shuffle}\n"
    "    - coupling: {type: additive, hidden: 4, mask: checkerboard}\n"
    "    - split: {prior: standard}\n"
    "    - scale_diag\n"
    "    - coupling: {type: affine, hidden: 4, scale: tanh}\n"
    "train: {dataset: {name: synthetic}, batch: 2, optimizer: adamax, steps: 1}\n",
};
static fg_safetensors base[2];

/* Bounds that keep one input fast: the mutated checkpoint is small, and a
 * model whose images grew large (image size is no parameter) is loaded but
 * not run. */
#define MAX_NEW_ELEMENTS 4096
#define MAX_RUN_VALUES 4096
#define BUILD_LIMIT (64.0 * 1024 * 1024)

static void random_batch(fg_graph *g, const fg_model *m, int n, fg_var **x)
{
    int shape[4] = {n, m->c, m->h, m->w};
    *x = fg_const(g, 4, shape);
    fg_rng rng;
    fg_rng_seed(&rng, 5);
    size_t count = fg_numel(&(*x)->t);
    fg_rng_uniform(&rng, (*x)->t.data, count);
    for (size_t i = 0; i < count; i++)
        (*x)->t.data[i] -= 0.5f;
}

static void make_base(int k)
{
    fg_config *cfg;
    fg_model *m;
    if (fg_config_load_string(yaml[k], strlen(yaml[k]), "base", &cfg) != FG_OK ||
        fg_model_build(&cfg->model, 1, &m) != FG_OK)
        __builtin_trap();
    fg_optim o;
    fg_ema e;
    fg_optim_init(&o, cfg->train.optimizer, &m->state, 0.9, 0.999, 1e-8);
    fg_ema_init(&e, &m->state, 0.9);
    fg_graph *g = fg_graph_create();
    fg_var *x;
    random_batch(g, m, 2, &x);
    int y[2] = {1, 3};
    fg_state_list_zero_grad(&m->state);
    fg_backward(g, fg_model_loss(m, g, x, y, NULL));
    fg_optim_step(&o, 1e-3);
    fg_ema_update(&e);
    fg_graph_destroy(g);

    fg_safetensors *st = &base[k];
    fg_st_init(st);
    for (int i = 0; i < m->state.n; i++)
        fg_st_add_tensor(st, m->state.items[i].name, &m->state.items[i].var->t, 1);
    fg_state_list l;
    fg_state_list_init(&l);
    fg_optim_visit(&o, fg_state_list_add, &l);
    if (cfg->train.ema > 0)
        fg_ema_visit(&e, fg_state_list_add, &l);
    for (int i = 0; i < l.n; i++)
        fg_st_add_tensor(st, l.items[i].name, &l.items[i].var->t, 1);
    fg_state_list_free(&l);
    int64_t step = o.step, s[4] = {1, 0, 2, 3};
    fg_st_add_i64(st, "optim.step", &step, 1);
    fg_st_add_i64(st, "train.state", s, 4);
    fg_st_set_meta(st, "config", cfg->text);
    fg_st_set_meta(st, "elapsed_seconds", "0.5");
    fg_st_set_meta(st, "format", "flowgrad-checkpoint-1");
    fg_ema_free(&e);
    fg_optim_free(&o);
    fg_model_free(m);
    fg_config_free(cfg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fg_set_threads(1);
    make_base(0);
    make_base(1);
    return 0;
}

/* The input, read a byte or a word at a time; zeros once it runs out. */
typedef struct input { const uint8_t *p; size_t n; } input;

static unsigned byte(input *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static uint32_t word(input *in)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | byte(in);
    return v;
}

static void copy_st(fg_safetensors *dst, const fg_safetensors *src)
{
    fg_st_init(dst);
    for (int i = 0; i < src->n; i++)
        fg_st_add(dst, src->t[i].name, src->t[i].dtype, src->t[i].ndim, src->t[i].shape,
                  src->t[i].data, 1);
    for (int i = 0; i < src->n_meta; i++)
        fg_st_set_meta(dst, src->meta_key[i], src->meta_val[i]);
}

static float special(input *in)
{
    static const float table[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1.0f, -1.0f, 0.5f,
                                  2.0f, 3.0f, 4.0f, 1e30f, -1e30f, 3e38f, -3e38f, 1e-40f,
                                  100.0f, -100.0f, 88.0f, -104.0f};
    unsigned k = byte(in);
    if (k < sizeof table / sizeof table[0])
        return table[k];
    uint32_t bits = word(in);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static int64_t special_i64(input *in)
{
    static const int64_t table[] = {0, 1, -1, 2, INT64_MAX, INT64_MIN, 1LL << 40,
                                    (1LL << 40) + 1, INT32_MAX, (int64_t)INT32_MAX + 1, 1024};
    unsigned k = byte(in);
    if (k < sizeof table / sizeof table[0])
        return table[k];
    return (int64_t)((uint64_t)word(in) << 32 | word(in));
}

static void set_data(fg_st_tensor *t, fg_dtype dt, int ndim, const int64_t *shape, input *in)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)shape[d];
    if (t->owns)
        free(t->data);
    t->dtype = dt;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->nbytes = n * fg_dtype_size(dt);
    t->data = calloc(t->nbytes ? t->nbytes : 1, 1);
    t->owns = 1;
    unsigned char *p = t->data;
    for (size_t i = 0; i < t->nbytes && in->n; i++)
        p[i] = (unsigned char)byte(in);
}

static void rename_to(fg_st_tensor *t, const fg_safetensors *st, const char *name)
{
    if (fg_st_find(st, name) || !strcmp(name, "__metadata__"))
        return;
    free(t->name);
    t->name = strdup(name);
}

static void edit_yaml(fg_safetensors *st, input *in)
{
    const char *text = fg_st_get_meta(st, "config");
    if (!text)
        return;
    static const char *const keys[] = {"hidden: ", "levels: ", "steps: ", "channels: ",
                                       "height: ", "width: ", "classes: ", "n_bits: ",
                                       "lu: ", "learn_top: ", "y_condition: ", "type: "};
    static const char *const values[] = {"0", "1", "2", "3", "4", "16", "65536", "100000",
                                         "true", "false", "-1", "1e9", "additive", "reverse"};
    size_t len = strlen(text);
    char *out = malloc(len + 64);
    unsigned op = byte(in) % 3;
    if (op == 0) {
        /* A value of a known key replaced. */
        const char *key = keys[byte(in) % (sizeof keys / sizeof keys[0])];
        const char *v = values[byte(in) % (sizeof values / sizeof values[0])];
        const char *at = strstr(text, key);
        if (!at) {
            free(out);
            return;
        }
        const char *end = at + strlen(key);
        end += strcspn(end, ",}\n");
        snprintf(out, len + 64, "%.*s%s%s%s", (int)(at - text), text, key, v, end);
    } else {
        /* A byte changed or removed at a position. */
        size_t at = len ? word(in) % len : 0;
        memcpy(out, text, len + 1);
        if (op == 1 && len)
            out[at] = (char)(byte(in) & 0x7f ? byte(in) & 0x7f : ' ');
        else if (len)
            memmove(out + at, out + at + 1, len - at);
    }
    fg_st_set_meta(st, "config", out);
    free(out);
}

static void mutate(fg_safetensors *st, input *in)
{
    if (!st->n)
        return;
    fg_st_tensor *t = &st->t[byte(in) % (unsigned)st->n];
    switch (byte(in) % 9) {
    case 0: { /* one value */
        size_t n = t->nbytes / fg_dtype_size(t->dtype);
        if (!n)
            break;
        size_t i = word(in) % n;
        if (t->dtype == FG_DT_F32)
            ((float *)t->data)[i] = special(in);
        else if (t->dtype == FG_DT_I64)
            ((int64_t *)t->data)[i] = special_i64(in);
        break;
    }
    case 1: { /* every value */
        float v = special(in);
        if (t->dtype == FG_DT_F32)
            for (size_t i = 0; i < t->nbytes / sizeof(float); i++)
                ((float *)t->data)[i] = v;
        break;
    }
    case 2: { /* a new shape, data from the input */
        int ndim = byte(in) % 5;
        int64_t shape[4];
        size_t n = 1;
        for (int d = 0; d < ndim; d++) {
            shape[d] = byte(in) % 17;
            n *= (size_t)shape[d];
        }
        if (n <= MAX_NEW_ELEMENTS)
            set_data(t, t->dtype, ndim, shape, in);
        break;
    }
    case 3: { /* another dtype, same shape when it stays small */
        fg_dtype dt = (fg_dtype)(byte(in) % 5);
        size_t n = t->nbytes / fg_dtype_size(t->dtype);
        if (n <= MAX_NEW_ELEMENTS)
            set_data(t, dt, t->ndim, t->shape, in);
        break;
    }
    case 4: { /* renamed: to a prefix, another tensor's name, or cut */
        static const char *const prefix[] = {"ema.", "optim.m.", "optim.v.", "train.", ""};
        char name[FG_NAME_LEN + 16];
        unsigned how = byte(in) % 3;
        if (how == 0)
            snprintf(name, sizeof name, "%s%s", prefix[byte(in) % 5], t->name);
        else if (how == 1)
            snprintf(name, sizeof name, "%s", st->t[byte(in) % (unsigned)st->n].name);
        else
            snprintf(name, sizeof name, "%.*s", (int)(byte(in) % (strlen(t->name) + 1)),
                     t->name);
        rename_to(t, st, name);
        break;
    }
    case 5: { /* removed */
        free(t->name);
        if (t->owns)
            free(t->data);
        size_t i = (size_t)(t - st->t);
        memmove(t, t + 1, (size_t)(st->n - 1 - (int)i) * sizeof *t);
        st->n--;
        break;
    }
    case 6:
        edit_yaml(st, in);
        break;
    case 7: { /* the counters */
        fg_st_tensor *c = (fg_st_tensor *)fg_st_find(st, byte(in) & 1 ? "optim.step"
                                                                      : "train.state");
        if (c && c->dtype == FG_DT_I64 && c->nbytes >= 8)
            ((int64_t *)c->data)[byte(in) % (c->nbytes / 8)] = special_i64(in);
        break;
    }
    default: { /* other metadata */
        static const char *const v[] = {"nan", "-1", "1e999", "", "x", "3"};
        fg_st_set_meta(st, byte(in) & 1 ? "elapsed_seconds" : "format", v[byte(in) % 6]);
        break;
    }
    }
}

/* What the commands do with an accepted checkpoint: bits/dim, samples,
 * and for train --resume the optimizer's next step from its saved state. */
static void run(fg_checkpoint *c)
{
    fg_model *m = c->model;
    if ((long)m->c * m->h * m->w > MAX_RUN_VALUES)
        return;
    /* The commands refuse a model conditioned on a tensor they cannot give. */
    if (fg_model_spec_check_data_condition(&c->cfg->model, "fuzz", "a command") != FG_OK)
        return;
    /* Labels 0 and 1 suit every class-conditional model (classes >= 2). */
    int y[2] = {0, m->n_classes > 1 || m->cond_classes > 1 ? 1 : 0};
    fg_graph *g = fg_graph_create();
    fg_set_grad_enabled(g, 0);
    fg_var *x;
    random_batch(g, m, 2, &x);
    fg_model_bits_per_dim(m, g, x, y);
    fg_graph_reset(g);
    fg_rng rng;
    fg_rng_seed(&rng, 9);
    fg_model_sample(m, g, 2, m->n_classes || m->cond_classes ? y : NULL, NULL, 0.7f, &rng);
    fg_graph_reset(g);
    fg_set_grad_enabled(g, 1);

    fg_optim o;
    fg_optim_init(&o, c->cfg->train.optimizer, &m->state, 0.9, 0.999, 1e-8);
    if (fg_optim_load(&o, &c->st) == FG_OK) {
        random_batch(g, m, 2, &x);
        fg_state_list_zero_grad(&m->state);
        fg_backward(g, fg_model_loss(m, g, x, y, NULL));
        fg_optim_step(&o, 1e-3);
    }
    fg_optim_free(&o);
    fg_graph_destroy(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size};
    fg_safetensors st;
    copy_st(&st, &base[byte(&in) & 1]);
    unsigned ops = byte(&in) % 8;
    for (unsigned i = 0; i < ops; i++)
        mutate(&st, &in);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int written = f && fg_st_write_stream(&st, f, "fuzz") == FG_OK;
    if (f)
        fclose(f);
    fg_st_free(&st);
    char path[64];
    int fd = written ? fuzz_mem_file((const unsigned char *)buf, len, path, sizeof path) : -1;
    free(buf);
    if (fd < 0)
        return 0;
    fg_checkpoint c;
    fg_clear_error();
    if (fg_checkpoint_load(path, BUILD_LIMIT, &c) == FG_OK) {
        run(&c);
        fg_checkpoint_free(&c);
    } else if (c.model || fg_last_error()[0] == '\0') {
        __builtin_trap(); /* a refusal leaves nothing and says why */
    }
    close(fd);
    return 0;
}
