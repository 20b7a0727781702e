/* The layer kinds' registry: every entry's option schema holds together,
 * every shape rule gives the shape the built layer really produces (and
 * what the kind counts is what the layer holds), bad options of a
 * registry-driven kind are reported exactly, and the flows/ roles and
 * data-dependent init the chain walks by. An entry written here, outside
 * the registry, passes the same checks: an entry is all a kind needs. */
#include <math.h>
#include <string.h>

#include "check_main.h"
#include "flowgrad.h"

/* ------------------------------------------------------------------ an entry
 * The reverse permutation as a kind of its own, written as a new kind is:
 * name, doc, no options, no shape rule (shape unchanged), create. It is not
 * in the table, which needs only its one line to take it. */

static fg_flow *reverse_create(const fg_layer_spec *l, const fg_flow_shape *in,
                               const fg_layer_build *b)
{
    (void)l;
    fg_permute_options o = {in->dim[1], 0, b->rng};
    return fg_permute_create(&o);
}

static const fg_layer_kind reverse_kind = {
    .name = "reverse",
    .doc = "the channels in reverse order",
    .create = reverse_create,
};

/* ------------------------------------------------------------------ schemas */

static int n_choices(const fg_layer_option *o)
{
    int n = 0;
    while (o->choices[n])
        n++;
    return n;
}

/* value is one option o can hold. */
static int holds(const fg_layer_option *o, double v)
{
    switch (o->type) {
    case FG_OPTION_INT:
        return v == floor(v) && v >= o->lo && v <= o->hi;
    case FG_OPTION_REAL:
        return v >= o->lo && v <= o->hi && !(o->lo_open && v == o->lo) &&
               !(o->hi_open && v == o->hi);
    case FG_OPTION_BOOL:
        return v == 0 || v == 1;
    case FG_OPTION_CHOICE:
        return v == floor(v) && v >= 0 && v < n_choices(o);
    case FG_OPTION_NETWORK:
        return v == floor(v) && v >= 0 && v <= FG_LAYER_MAX_MODULES;
    }
    return 0;
}

/* A network option's module kinds: named, documented, with options a
 * module can hold, applying by options the layer has, and an output that
 * fits every case. */
static void check_modules(const fg_layer_kind *k, const fg_layer_option *o)
{
    ck_assert_msg(o->modules && o->n_modules > 0, "%s.%s: no modules", k->name, o->key);
    ck_assert_msg(o->def == 0, "%s.%s: the default is the kind's own network", k->name,
                  o->key);
    int outputs = 0;
    for (int i = 0; i < o->n_modules; i++) {
        const fg_layer_module *m = &o->modules[i];
        ck_assert_msg(m->name && *m->name && m->doc && *m->doc, "%s.%s: module %d unnamed or "
                      "undocumented", k->name, o->key, i);
        ck_assert_msg(m->n_options <= FG_MODULE_MAX_OPTIONS, "%s: %d options", m->name,
                      m->n_options);
        outputs += m->output;
        const char *when[FG_MODULE_MAX_OPTIONS + 1] = {m->when_key};
        double value[FG_MODULE_MAX_OPTIONS + 1] = {m->when_value};
        for (int j = 0; j < m->n_options; j++) {
            const fg_layer_option *mo = &m->options[j];
            ck_assert_msg(mo->key && mo->doc && *mo->doc, "%s: option %d", m->name, j);
            ck_assert_msg(mo->type != FG_OPTION_NETWORK, "%s.%s: networks do not nest",
                          m->name, mo->key);
            ck_assert_msg(mo->required || holds(mo, mo->def), "%s.%s: default %g outside "
                          "what it takes", m->name, mo->key, mo->def);
            when[j + 1] = mo->when_key;
            value[j + 1] = mo->when_value;
        }
        for (int j = 0; j <= m->n_options; j++)
            if (when[j]) {
                int w = fg_layer_option_index(k, when[j]);
                ck_assert_msg(w >= 0 && holds(&k->options[w], value[j]), "%s: applies by "
                              "%s = %g, which the layer cannot hold", m->name, when[j],
                              value[j]);
            }
    }
    ck_assert_msg(outputs > 0, "%s.%s: no output module", k->name, o->key);
}

static void check_schema(const fg_layer_kind *k)
{
    ck_assert_msg(k->name && *k->name, "a kind without a name");
    ck_assert_msg(k->doc && *k->doc, "%s: no doc", k->name);
    ck_assert_msg(k->create != NULL, "%s: no create", k->name);
    ck_assert_msg(k->n_options >= 0 && k->n_options <= FG_LAYER_MAX_OPTIONS,
                  "%s: %d options", k->name, k->n_options);
    ck_assert_msg(k->n_options == 0 || k->options, "%s: options missing", k->name);
    fg_layer_spec l;
    fg_layer_spec_init(&l, k);
    ck_assert_ptr_eq(l.kind, k);
    for (int i = 0; i < k->n_options; i++) {
        const fg_layer_option *o = &k->options[i];
        ck_assert_msg(o->key && *o->key, "%s: option %d has no key", k->name, i);
        ck_assert_msg(o->doc && *o->doc, "%s.%s: no doc", k->name, o->key);
        ck_assert_msg(fg_layer_option_index(k, o->key) == i, "%s.%s: key given twice",
                      k->name, o->key);
        ck_assert_msg((o->type == FG_OPTION_CHOICE) == (o->choices != NULL),
                      "%s.%s: choices belong to choice options", k->name, o->key);
        if (o->type == FG_OPTION_CHOICE)
            ck_assert_msg(n_choices(o) >= 2, "%s.%s: a choice of one", k->name, o->key);
        if (o->type == FG_OPTION_INT || o->type == FG_OPTION_REAL)
            ck_assert_msg(o->lo <= o->hi, "%s.%s: empty range", k->name, o->key);
        if (o->type == FG_OPTION_INT)
            ck_assert_msg(o->lo == floor(o->lo) && o->hi == floor(o->hi),
                          "%s.%s: an int range of fractions", k->name, o->key);
        ck_assert_msg(holds(o, o->def), "%s.%s: default %g outside what it takes",
                      k->name, o->key, o->def);
        ck_assert_msg((o->type == FG_OPTION_NETWORK) == (o->modules != NULL),
                      "%s.%s: modules belong to network options", k->name, o->key);
        if (o->type == FG_OPTION_NETWORK)
            check_modules(k, o);
        ck_assert_msg(!o->bare || o->type == FG_OPTION_CHOICE,
                      "%s.%s: only a choice reads alone", k->name, o->key);
        if (o->when_key) {
            int w = fg_layer_option_index(k, o->when_key);
            ck_assert_msg(w >= 0 && w < i, "%s.%s: applies by '%s', which must come before",
                          k->name, o->key, o->when_key);
            ck_assert_msg(holds(&k->options[w], o->when_value), "%s.%s: applies when %s "
                          "holds %g, which it cannot", k->name, o->key, o->when_key,
                          o->when_value);
            ck_assert_msg(o->when_what && *o->when_what, "%s.%s: no when_what", k->name,
                          o->key);
        }
        /* The spec at its defaults: the default where it applies, else 0. */
        ck_assert_double_eq(l.opt[i], fg_layer_option_applies(&l, i) ? o->def : 0);
    }
}

START_TEST(every_schema_is_consistent)
{
    int n = fg_layer_kind_count();
    ck_assert_int_ge(n, 10);
    for (int i = 0; i < n; i++) {
        const fg_layer_kind *k = fg_layer_kind_at(i);
        check_schema(k);
        ck_assert_ptr_eq(fg_layer_kind_find(k->name), k);
        ck_assert_msg(strcmp(k->name, "repeat") != 0, "repeat is a flow entry of its own");
    }
    ck_assert_ptr_null(fg_layer_kind_at(n));
    ck_assert_ptr_null(fg_layer_kind_find("conv"));
    check_schema(&reverse_kind);
}
END_TEST

/* ------------------------------------------------------------------ shapes */

static void count_state(void *ctx, const char *name, fg_var *v, fg_state_kind kind)
{
    (void)name;
    double *n = ctx;
    n[kind == FG_PARAM ? 0 : 1] += (double)fg_numel(&v->t);
}

/* Shapes that some rule takes and some refuses. */
static const fg_chw shapes[] = {
    {4, 4, 4}, {3, 4, 4}, {4, 3, 3}, {2, 2, 2}, {6, 2, 4}, {1, 1, 1}, {2, 1, 1}, {5, 1, 1},
    {8, 1, 1},
};

/* l's rule against its built layer on every shape above; returns how many
 * shapes the rule took. */
static int check_rule(fg_layer_spec *l, fg_rng *rng)
{
    const fg_layer_kind *k = l->kind;
    int taken = 0;
    char what[256];
    fg_layer_spec_describe(l, what, sizeof what);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        fg_chw in = shapes[s], out;
        if (fg_layer_spec_shape(l, in, &out) != FG_OK) {
            /* A refusal names the kind and the shape as messages show it. */
            char shape[32];
            snprintf(shape, sizeof shape, "%dx%dx%d (CxHxW", in.c, in.h, in.w);
            ck_assert_msg(strstr(fg_last_error(), k->name) && strstr(fg_last_error(), shape),
                          "%s on %s: %s", what, shape, fg_last_error());
            continue;
        }
        taken++;
        l->in = in;
        l->out = out;
        fg_flow_shape fin = fg_flow_shape4(2, in.c, in.h, in.w), fout;
        fg_layer_build b = {rng, 0};
        fg_flow *f = fg_layer_spec_create(l, &fin, &b);
        ck_assert_msg(f != NULL, "%s on %dx%dx%d: %s", what, in.c, in.h, in.w, fg_last_error());
        ck_assert_msg(fg_flow_out_shape(f, &fin, &fout) == FG_OK, "%s: %s", what,
                      fg_last_error());
        ck_assert_msg(fout.ndim == 4 && fout.dim[0] == 2 && fout.dim[1] == out.c &&
                      fout.dim[2] == out.h && fout.dim[3] == out.w,
                      "%s on %dx%dx%d: the rule says %dx%dx%d, the layer gives (%d, %d, %d)",
                      what, in.c, in.h, in.w, out.c, out.h, out.w, fout.dim[1], fout.dim[2],
                      fout.dim[3]);
        ck_assert_msg((f->ops->roles & FG_FLOW_ROLE_SPLIT) == (k->roles & FG_FLOW_ROLE_SPLIT),
                      "%s: the kind and its layer disagree on splitting", what);
        /* What the kind counts is what the layer holds. */
        double held[2] = {0, 0};
        fg_flow_visit(f, NULL, count_state, held);
        fg_model_size size = {0, 0, 0, 0};
        fg_layer_spec_size(l, &size);
        ck_assert_msg(size.params == held[0] && size.buffers == held[1],
                      "%s on %dx%dx%d: counted %g parameters and %g buffers, built %g and %g",
                      what, in.c, in.h, in.w, size.params, size.buffers, held[0], held[1]);
        ck_assert(fg_layer_spec_flops(l) >= 0);
        fg_flow_destroy(f);
    }
    return taken;
}

/* l at the defaults with option i set to v; options that depend on it
 * start from their defaults where they now apply. */
static void variant(const fg_layer_kind *k, int i, double v, fg_layer_spec *l)
{
    fg_layer_spec_init(l, k);
    if (i < 0)
        return;
    l->opt[i] = v;
    for (int j = i + 1; j < k->n_options; j++)
        l->opt[j] = fg_layer_option_applies(l, j) ? k->options[j].def : 0;
}

/* Every kind at its defaults and at each value of each choice and bool
 * option, with networks 4 wide. */
static void check_rules(const fg_layer_kind *k, fg_rng *rng)
{
    int hidden = fg_layer_option_index(k, "hidden");
    int taken = 0;
    for (int i = -1; i < k->n_options; i++) {
        const fg_layer_option *o = i >= 0 ? &k->options[i] : NULL;
        int values = !o ? 1 : o->type == FG_OPTION_CHOICE ? n_choices(o)
                            : o->type == FG_OPTION_BOOL ? 2 : 0;
        for (int v = 0; v < values; v++) {
            fg_layer_spec l;
            variant(k, i, v, &l);
            if (i >= 0 && !fg_layer_option_applies(&l, i))
                continue;
            if (hidden >= 0)
                l.opt[hidden] = 4;
            taken += check_rule(&l, rng);
        }
    }
    ck_assert_msg(taken > 0, "%s: no shape taken, nothing checked", k->name);
}

START_TEST(shape_rules_match_built_layers)
{
    fg_rng rng;
    fg_rng_seed(&rng, 7);
    for (int i = 0; i < fg_layer_kind_count(); i++)
        check_rules(fg_layer_kind_at(i), &rng);
    check_rules(&reverse_kind, &rng);
}
END_TEST

/* The rules as the config reader reports them, with the position. */
START_TEST(shape_rule_errors_carry_the_position)
{
    fg_layer_spec l;
    fg_layer_spec_init(&l, fg_layer_kind_find("squeeze"));
    fg_chw out;
    ck_assert_int_eq(fg_layer_spec_shape(&l, (fg_chw){1, 7, 8}, &out), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "squeeze needs an even height and width, but the shape "
                     "here is 1x7x8 (CxHxW)");
    static const char text[] = "model: {type: flow, height: 7, width: 8, channels: 1, "
                               "flow: [squeeze]}\n";
    fg_config *cfg = (fg_config *)1;
    ck_assert_int_eq(fg_config_load_string(text, strlen(text), "t.yaml", &cfg), FG_ERR);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(fg_last_error(), "t.yaml:1:62: squeeze needs an even height and width, "
                     "but the shape here is 1x7x8 (CxHxW)");
}
END_TEST

/* ------------------------------------------------------------------ options */

static void expect_message(const char *text, const char *message)
{
    fg_config *cfg = (fg_config *)1;
    ck_assert_msg(fg_config_load_string(text, strlen(text), "t.yaml", &cfg) == FG_ERR,
                  "accepted: %s", text);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(fg_last_error(), message);
}

#define HEAD "model: {type: flow, height: 2, width: 2, channels: 2, flow: "

/* Each message is read from the kind's schema: the allowed values, the
 * range, the option that makes another apply. */
START_TEST(bad_options_are_reported_exactly)
{
    expect_message(HEAD "[permute: {type: sideways}]}\n",
                   "t.yaml:1:78: 'type' in 'permute' must be one of: reverse, shuffle "
                   "(got 'sideways')");
    expect_message(HEAD "[permute]}\n",
                   "t.yaml:1:62: missing required key 'type' in 'permute' (expected type: "
                   "reverse or shuffle)");
    expect_message(HEAD "[actnorm: {scale: 0}]}\n",
                   "t.yaml:1:79: 'scale' in 'actnorm' is out of range (expected (0, 1e+06], "
                   "got 0)");
    expect_message(HEAD "[coupling: {hidden: 65537}]}\n",
                   "t.yaml:1:81: 'hidden' in 'coupling' is out of range (expected 1..65536, "
                   "got 65537)");
    expect_message(HEAD "[invconv: {lu: maybe}]}\n",
                   "t.yaml:1:76: 'lu' in 'invconv' must be true or false (got 'maybe')");
    expect_message(HEAD "[coupling: {layers: 3}]}\n",
                   "t.yaml:1:73: 'layers' only applies to dense coupling networks (expected "
                   "net: dense with it)");
    expect_message(HEAD "[flatten: {x: 1}]}\n",
                   "t.yaml:1:72: flatten takes no options (expected '- flatten' alone)");
    expect_message(HEAD "[split: {priors: standard}]}\n",
                   "t.yaml:1:70: unknown key 'priors' in 'split' (expected one of: prior, logs_floor)");
}
END_TEST

/* ------------------------------------------------------------------ conditioners */

typedef struct named_state {
    char text[8192];
    const char *prefix;
} named_state;

/* "name[d0,d1,...]" of each value under prefix, space-separated. */
static void list_state(void *ctx, const char *name, fg_var *v, fg_state_kind kind)
{
    named_state *s = ctx;
    (void)kind;
    if (strncmp(name, s->prefix, strlen(s->prefix)) != 0)
        return;
    size_t k = strlen(s->text);
    k += (size_t)snprintf(s->text + k, sizeof s->text - k, "%s%s[", k ? " " : "",
                          name + strlen(s->prefix));
    for (int d = 0; d < v->t.ndim; d++)
        k += (size_t)snprintf(s->text + k, sizeof s->text - k, "%s%d", d ? "," : "",
                              v->t.shape[d]);
    snprintf(s->text + k, sizeof s->text - k, "]");
}

static const char *state_of(fg_model *m, const char *prefix, named_state *s)
{
    s->text[0] = '\0';
    s->prefix = prefix;
    fg_multiscale_visit(m->flow, NULL, list_state, s);
    return s->text;
}

/* Conditioner lists from YAML: described, counted as built (the registry's
 * rule check), named by index, Glow's own list named and shaped as the
 * default network, and a dense list on vectors. */
START_TEST(conditioner_lists_build_and_name_by_index)
{
    static const char text[] =
        "model:\n"
        "  type: flow\n"
        "  height: 4\n"
        "  width: 4\n"
        "  channels: 2\n"
        "  flow:\n"
        "    - coupling:\n"
        "        type: additive\n"
        "        conditioner:\n"
        "          - conv: {width: 6}\n"
        "          - actnorm\n"
        "          - relu\n"
        "          - residual: {width: 4, activation: tanh}\n"
        "          - zero_conv: {kernel: 1}\n"
        "    - coupling: {hidden: 5, conditioner: [conv: {width: 5, bias: false}, actnorm, relu,\n"
        "                 conv: {width: 5, kernel: 1, bias: false}, actnorm, relu, zero_conv]}\n"
        "    - coupling: {hidden: 5}\n"
        "    - flatten\n"
        "    - coupling: {net: dense, conditioner: [dense: {width: 8}, elu,\n"
        "                 residual: {activation: leaky_relu}, zero_dense]}\n";
    fg_config *cfg;
    ck_assert_msg(fg_config_load_string(text, strlen(text), "t.yaml", &cfg) == FG_OK, "%s",
                  fg_last_error());
    char what[512];
    ck_assert_str_eq(fg_layer_spec_describe(&cfg->model.layers[0], what, sizeof what),
                     "coupling additive mask=channel conditioner=[conv width=6 kernel=3 "
                     "bias=true, actnorm, relu, residual width=4 kernel=3 activation=tanh, "
                     "zero_conv kernel=1]");
    ck_assert_str_eq(fg_layer_spec_describe(&cfg->model.layers[4], what, sizeof what),
                     "coupling affine net=dense mask=channel scale=sigmoid conditioner=[dense "
                     "width=8 bias=true, elu, residual width=0 activation=leaky_relu, "
                     "zero_dense]");
    fg_rng rng;
    fg_rng_seed(&rng, 9);
    for (int i = 0; i < cfg->model.n_layers; i++) {
        fg_layer_spec l = cfg->model.layers[i];
        check_rule(&l, &rng);
    }
    fg_model *m;
    ck_assert_msg(fg_model_build(&cfg->model, 1, &m) == FG_OK, "%s", fg_last_error());
    named_state a, b;
    ck_assert_str_eq(state_of(m, "flow.0.coupling.", &a),
                     "nn.0.weight[6,1,3,3] nn.0.bias[6] nn.1.bias[6] nn.1.logs[6] "
                     "nn.1.initialized[1] nn.3.0.weight[4,6,3,3] nn.3.0.bias[4] "
                     "nn.3.2.weight[6,4,3,3] nn.3.2.bias[6] nn.4.weight[1,6,1,1] nn.4.bias[1] "
                     "nn.4.logs[1]");
    ck_assert_str_eq(state_of(m, "flow.1.coupling.", &a), state_of(m, "flow.2.coupling.", &b));
    ck_assert_str_eq(a.text, "nn.0.weight[5,1,3,3] nn.1.bias[5] nn.1.logs[5] "
                     "nn.1.initialized[1] nn.3.weight[5,5,1,1] nn.4.bias[5] nn.4.logs[5] "
                     "nn.4.initialized[1] nn.6.weight[2,5,3,3] nn.6.bias[2] nn.6.logs[2]");
    ck_assert_str_eq(state_of(m, "flow.4.dense_coupling.", &a),
                     "nn.0.weight[8,16] nn.0.bias[8] nn.2.0.weight[8,8] nn.2.0.bias[8] "
                     "nn.2.2.weight[8,8] nn.2.2.bias[8] nn.3.weight[32,8] nn.3.bias[32]");

    /* It runs, and its actnorm initializes from data as the default's do. */
    fg_graph *g = fg_graph_create();
    int shape[4] = {3, 2, 4, 4};
    fg_var *x = fg_const(g, 4, shape);
    for (int i = 0; i < 96; i++)
        x->t.data[i] = (float)sin(i * 0.3);
    ck_assert_int_eq(fg_flow_init_pending(m->flow->body), 5);
    fg_var *lp = fg_multiscale_log_prob(m->flow, g, x, NULL);
    ck_assert(isfinite(lp->t.data[0]));
    ck_assert_int_eq(fg_flow_init_pending(m->flow->body), 0);
    fg_graph_destroy(g);
    fg_model_free(m);
    fg_config_free(cfg);
}
END_TEST

#define IMAGE "model: {type: flow, height: 2, width: 2, channels: 2, flow: [coupling: " \
              "{conditioner: "
#define VECTOR "model: {type: flow, height: 2, width: 2, channels: 2, flow: [flatten, " \
               "coupling: {net: dense, conditioner: "

START_TEST(bad_conditioners_are_reported_exactly)
{
    expect_message(IMAGE "[conv: {width: 4}, sigmoid, zero_conv]}]}\n",
                   "t.yaml:1:105: unknown module 'sigmoid' in 'conditioner' (expected one of: "
                   "relu, tanh, elu, leaky_relu, conv, dense, actnorm, residual, zero_conv, "
                   "zero_dense)");
    expect_message(IMAGE "[conv: {width: 0}, zero_conv]}]}\n",
                   "t.yaml:1:101: 'width' in 'conv' is out of range (expected 1..65536, got 0)");
    expect_message(IMAGE "[conv, zero_conv]}]}\n",
                   "t.yaml:1:87: missing required key 'width' in 'conv' (expected width: a "
                   "value)");
    expect_message(IMAGE "[conv: {width: 4, kernel: 5}, zero_conv]}]}\n",
                   "t.yaml:1:112: 'kernel' in 'conv' must be one of: 1, 3 (got '5')");
    expect_message(IMAGE "[dense: {width: 4}, zero_conv]}]}\n",
                   "t.yaml:1:87: 'dense' only applies to dense coupling networks (expected "
                   "net: dense with it)");
    expect_message(VECTOR "[conv: {width: 4}, zero_dense]}]}\n",
                   "t.yaml:1:108: 'conv' only applies to conv coupling networks (expected "
                   "net: conv with it)");
    expect_message(VECTOR "[residual: {kernel: 1}, zero_dense]}]}\n",
                   "t.yaml:1:119: 'kernel' in 'residual' only applies to conv coupling "
                   "networks (expected net: conv with it)");
    expect_message(IMAGE "[zero_conv, relu]}]}\n",
                   "t.yaml:1:87: 'zero_conv' is the output of 'conditioner' and must come last");
    expect_message(IMAGE "[conv: {width: 4}, relu]}]}\n",
                   "t.yaml:1:105: 'conditioner' must end in its output module (expected "
                   "zero_conv last)");
    expect_message(VECTOR "[relu]}]}\n",
                   "t.yaml:1:108: 'conditioner' must end in its output module (expected "
                   "zero_dense last)");
    expect_message(IMAGE "[relu: {slope: 2}, zero_conv]}]}\n",
                   "t.yaml:1:94: relu takes no options (expected '- relu' alone)");
    expect_message(IMAGE "zero_conv}]}\n",
                   "t.yaml:1:86: 'conditioner' in 'coupling' must be a list of modules, one "
                   "'- module' per line, ending in its output");
    expect_message(IMAGE "[residual: {activation: sigmoid}, zero_conv]}]}\n",
                   "t.yaml:1:110: 'activation' in 'residual' must be one of: relu, tanh, elu, "
                   "leaky_relu (got 'sigmoid')");
}
END_TEST

/* ------------------------------------------------------------------ roles */

/* The chain finds splits by role and actnorms through data_init: two
 * actnorms of their own and two in each conv coupling's network. */
START_TEST(roles_and_data_init_are_found_without_names)
{
    static const char text[] =
        "model: {type: flow, height: 4, width: 4, channels: 1,\n"
        "        flow: [squeeze, actnorm, coupling: {hidden: 4}, split, actnorm, invconv,\n"
        "               coupling: {hidden: 4, type: additive}]}\n";
    fg_config *cfg;
    ck_assert_int_eq(fg_config_load_string(text, strlen(text), "t.yaml", &cfg), FG_OK);
    fg_model *m;
    ck_assert_msg(fg_model_build(&cfg->model, 1, &m) == FG_OK, "%s", fg_last_error());
    ck_assert_int_eq(m->flow->n_latents, 2);
    ck_assert_int_eq(fg_flow_init_pending(m->flow->body), 6);

    fg_graph *g = fg_graph_create();
    int shape[4] = {3, 1, 4, 4};
    fg_var *x = fg_const(g, 4, shape);
    for (int i = 0; i < 48; i++)
        x->t.data[i] = (float)sin(i * 0.7);
    fg_multiscale_log_prob(m->flow, g, x, NULL);
    ck_assert_int_eq(fg_flow_init_pending(m->flow->body), 0);
    fg_flow_rearm_actnorm(m->flow->body);
    ck_assert_int_eq(fg_flow_init_pending(m->flow->body), 6);

    fg_graph_destroy(g);
    fg_model_free(m);
    fg_config_free(cfg);
}
END_TEST

/* Loaded state is checked through the layers' check_state, not by kind
 * name: a kind that flows/ has never heard of is asked too, under the
 * name its place in the sequence gives it, and a singular invconv inside
 * a built model is named by its tensor. */
static int refuse_state(fg_flow *f, const char *prefix)
{
    (void)f;
    return fg_error("custom state under '%s' is bad", prefix);
}

static void keep_static(fg_flow *f)
{
    (void)f;
}

START_TEST(state_checks_are_found_without_names)
{
    static const fg_flow_ops custom_ops = {"custom", NULL, NULL, NULL, NULL, keep_static,
                                           NULL, 0, NULL, refuse_state};
    static fg_flow custom = {&custom_ops};
    fg_actnorm_options an = {2, 1.0f};
    fg_flow *inner[2] = {fg_actnorm_create(&an), &custom};
    fg_flow *seq = fg_sequence_create(inner, 2);
    ck_assert_int_eq(fg_flow_check_invertible(seq, "flow"), FG_ERR);
    ck_assert_str_eq(fg_last_error(), "custom state under 'flow.1' is bad");
    fg_flow_destroy(seq);

    static const char text[] =
        "model: {type: flow, height: 2, width: 2, channels: 2,\n"
        "        flow: [actnorm, invconv: {lu: false}, actnorm]}\n";
    fg_config *cfg;
    ck_assert_int_eq(fg_config_load_string(text, strlen(text), "t.yaml", &cfg), FG_OK);
    fg_model *m;
    ck_assert_msg(fg_model_build(&cfg->model, 1, &m) == FG_OK, "%s", fg_last_error());
    ck_assert_int_eq(fg_flow_check_invertible(m->flow->body, "flow"), FG_OK);
    fg_state_list l;
    fg_state_list_init(&l);
    fg_model_visit(m, NULL, fg_state_list_add, &l);
    fg_state_entry *w = fg_state_list_find(&l, "flow.1.invconv.weight");
    ck_assert_ptr_nonnull(w);
    memset(w->var->t.data, 0, 4 * sizeof(float));
    ck_assert_int_eq(fg_flow_check_invertible(m->flow->body, "flow"), FG_ERR);
    ck_assert_msg(strstr(fg_last_error(), "tensor 'flow.1.invconv.weight'"), "%s",
                  fg_last_error());
    fg_state_list_free(&l);
    fg_model_free(m);
    fg_config_free(cfg);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("layer_registry");
    TCase *tc = fg_tcase("registry");
    tcase_add_test(tc, every_schema_is_consistent);
    tcase_add_test(tc, shape_rules_match_built_layers);
    tcase_add_test(tc, shape_rule_errors_carry_the_position);
    tcase_add_test(tc, bad_options_are_reported_exactly);
    tcase_add_test(tc, roles_and_data_init_are_found_without_names);
    tcase_add_test(tc, state_checks_are_found_without_names);
    tcase_add_test(tc, conditioner_lists_build_and_name_by_index);
    tcase_add_test(tc, bad_conditioners_are_reported_exactly);
    suite_add_tcase(s, tc);
    return s;
}
