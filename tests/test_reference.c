/* Whole models against an independent implementation: each fixture in
 * tests/fixtures/ was written by the PyTorch reference Glow in
 * tests/reference/ (float64) for one small config. We build our model from
 * the config in the fixture's metadata, load its parameters and buffers by
 * name, feed the same images and dequantization noise, and compare the
 * per-sample log-likelihood, the mean bits/dim, the gradient of the mean
 * bits/dim for every parameter, and the decode of fixed latents.
 *
 * Tolerances: log-likelihood and bits/dim relative to the value; each
 * gradient and the decode relative to the largest magnitude of the
 * reference tensor (float32 accumulation differs from float64 by far less
 * than these; a wrong term in any layer shows up far above them). Every
 * tensor's error is printed, and a failure names the tensor. */
#include "check_main.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowgrad.h"
#include "models/model.h"

#define LOGP_RTOL 1e-5   /* per sample, of |log p(x)| */
#define BPD_RTOL 1e-6    /* of the mean bits/dim */
#define GRAD_RTOL 1e-4   /* of max |reference gradient| of the tensor */
#define DECODE_RTOL 1e-4 /* of max |reference decode| */
/* A reference tensor that is exactly zero (e.g. a conv applied to zeros)
 * must come out zero up to float noise. */
#define ZERO_ATOL 1e-7

typedef struct fixture {
    const char *file;
    fg_safetensors st;
    fg_config *cfg;
    fg_model *model;
    int n;                    /* batch */
    int *labels;              /* NULL when unconditional */
    char first_failure[256];
    int failures;
} fixture;

static const fg_st_tensor *need(const fixture *f, const char *name, fg_dtype dtype)
{
    const fg_st_tensor *t = fg_st_find(&f->st, name);
    ck_assert_msg(t != NULL, "%s: missing tensor '%s'", f->file, name);
    ck_assert_msg(t->dtype == dtype, "%s: tensor '%s' has dtype %s, expected %s", f->file,
                  name, fg_dtype_name(t->dtype), fg_dtype_name(dtype));
    return t;
}

static size_t numel_of(const fg_st_tensor *t)
{
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

/* Compares got[0..n) with the reference tensor; err is max |got - ref|,
 * tol is rtol times max |ref| of the tensor, or with elementwise rtol
 * times |ref| of each value. Prints one line; records the first failure. */
static void compare(fixture *f, const char *what, const float *got, const float *ref,
                    size_t n, double rtol, int elementwise)
{
    double err = 0.0, scale = 0.0, worst_ratio = -1.0, tol_at_worst = 0.0;
    int nan = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs((double)ref[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)ref[i]);
        double tol = elementwise ? rtol * fabs((double)ref[i])
                                 : (scale > 0.0 ? rtol * scale : ZERO_ATOL);
        double ratio = tol > 0.0 ? e / tol : (e > 0.0 ? INFINITY : 0.0);
        nan |= isnan(e);
        if (isnan(e) || ratio > worst_ratio) {
            worst_ratio = isnan(e) ? INFINITY : ratio;
            tol_at_worst = tol;
        }
        err = fmax(err, e);
    }
    int ok = worst_ratio <= 1.0 && !nan;
    printf("%-24s %-44s max abs err %.3e  tol %.3e  max |ref| %.3e  %s\n", f->file, what,
           err, tol_at_worst, scale, ok ? "ok" : "FAIL");
    if (!ok && f->failures++ == 0)
        snprintf(f->first_failure, sizeof f->first_failure,
                 "%s: tensor %s out of tolerance: max abs err %.3e > tol %.3e", f->file,
                 what, err, tol_at_worst);
}

static void open_fixture(fixture *f, const char *file)
{
    char path[1024], rel[256];
    memset(f, 0, sizeof *f);
    f->file = file;
    snprintf(rel, sizeof rel, "tests/fixtures/%s", file);
    fg_st_init(&f->st);
    ck_assert_msg(fg_st_read(&f->st, fg_test_path(rel, path, sizeof path)) == FG_OK, "%s",
                  fg_last_error());
    const char *text = fg_st_get_meta(&f->st, "config");
    ck_assert_msg(text != NULL, "%s: no 'config' in the metadata", file);
    ck_assert_msg(fg_config_load_string(text, strlen(text), file, &f->cfg) == FG_OK, "%s",
                  fg_last_error());
    ck_assert_msg(fg_model_build(&f->cfg->model, 1, &f->model) == FG_OK, "%s",
                  fg_last_error());
    /* Every model entry must come from the fixture, and every fixture entry
     * outside the input/expect/grad/decode groups must be a model entry. */
    ck_assert_msg(fg_st_load_state(&f->st, &f->model->state, "") == FG_OK, "%s",
                  fg_last_error());
    int extra = 0;
    for (int i = 0; i < f->st.n; i++) {
        const char *name = f->st.t[i].name;
        if (strncmp(name, "input.", 6) && strncmp(name, "expect.", 7) &&
            strncmp(name, "grad.", 5) && strncmp(name, "decode.", 7))
            extra += fg_state_list_find(&f->model->state, name) == NULL;
    }
    ck_assert_msg(extra == 0, "%s: %d fixture tensors are not in the model", file, extra);
    const fg_st_tensor *img = need(f, "input.images", FG_DT_F32);
    f->n = (int)img->shape[0];
    if (f->model->n_classes) {
        const fg_st_tensor *y = need(f, "input.labels", FG_DT_I32);
        ck_assert_int_eq((int)numel_of(y), f->n);
        f->labels = malloc((size_t)f->n * sizeof *f->labels);
        memcpy(f->labels, y->data, (size_t)f->n * sizeof *f->labels);
    }
}

static void close_fixture(fixture *f)
{
    free(f->labels);
    fg_model_free(f->model);
    fg_config_free(f->cfg);
    fg_st_free(&f->st);
}

/* The dequantized batch, as flowgrad defines it, from the stored pixels and
 * noise: floor(x / 2^(8 - n_bits)) / 2^n_bits - 0.5 + u / 2^n_bits. */
static fg_var *input_batch(fixture *f, fg_graph *g)
{
    const fg_st_tensor *img = need(f, "input.images", FG_DT_F32);
    const fg_st_tensor *u = need(f, "input.noise", FG_DT_F32);
    fg_model *m = f->model;
    int shape[4] = {f->n, m->c, m->h, m->w};
    ck_assert(img->ndim == 4 && img->shape[1] == m->c && img->shape[2] == m->h &&
              img->shape[3] == m->w && numel_of(u) == numel_of(img));
    fg_var *x = fg_const(g, 4, shape);
    const float *pix = img->data, *noise = u->data;
    double bins = ldexp(1.0, m->n_bits), step = ldexp(1.0, 8 - m->n_bits);
    for (size_t i = 0; i < numel_of(img); i++)
        x->t.data[i] = (float)(floor(pix[i] / step) / bins - 0.5 + noise[i] / bins);
    return x;
}

static void check_log_likelihood(fixture *f, fg_graph *g)
{
    fg_var *logp = fg_multiscale_log_prob(f->model->flow, g, input_batch(f, g), f->labels);
    const fg_st_tensor *ref = need(f, "expect.log_likelihood", FG_DT_F32);
    ck_assert_int_eq((int)numel_of(ref), f->n);
    compare(f, "log_likelihood (per sample)", logp->t.data, ref->data, (size_t)f->n,
            LOGP_RTOL, 1);
    fg_graph_reset(g);
}

static void check_gradients(fixture *f, fg_graph *g)
{
    fg_state_list *l = &f->model->state;
    fg_state_list_zero_grad(l);
    fg_var *bpd = fg_mean(g, fg_model_bits_per_dim(f->model, g, input_batch(f, g), f->labels));
    fg_backward(g, bpd);
    compare(f, "bits_per_dim", bpd->t.data, need(f, "expect.bits_per_dim", FG_DT_F32)->data,
            1, BPD_RTOL, 1);
    int checked = 0;
    for (int i = 0; i < l->n; i++) {
        if (l->items[i].kind != FG_PARAM)
            continue;
        char name[FG_NAME_LEN + 8];
        snprintf(name, sizeof name, "grad.%s", l->items[i].name);
        const fg_st_tensor *ref = need(f, name, FG_DT_F32);
        fg_var *v = l->items[i].var;
        size_t n = fg_numel(&v->t);
        ck_assert_msg(numel_of(ref) == n, "%s: %s has %zu values, the model's %zu", f->file,
                      name, numel_of(ref), n);
        float *zeros = NULL;
        if (!v->grad)
            zeros = calloc(n, sizeof *zeros);
        compare(f, name, v->grad ? v->grad : zeros, ref->data, n, GRAD_RTOL, 0);
        free(zeros);
        checked++;
    }
    int stored = 0;
    for (int i = 0; i < f->st.n; i++)
        stored += strncmp(f->st.t[i].name, "grad.", 5) == 0;
    ck_assert_msg(checked == stored, "%s: compared %d gradients, the fixture has %d",
                  f->file, checked, stored);
    fg_graph_reset(g);
}

/* The full training loss of a y-conditioned model: bits/dim plus weight_y
 * times the class head's cross-entropy. */
static void check_training_loss(fixture *f, fg_graph *g)
{
    const fg_st_tensor *ref = fg_st_find(&f->st, "expect.loss");
    if (!f->labels) {
        ck_assert_msg(ref == NULL, "%s: expect.loss without labels", f->file);
        return;
    }
    ck_assert_msg(ref != NULL, "%s: y-conditioned fixture without expect.loss", f->file);
    int was = fg_set_grad_enabled(g, 0);
    fg_var *loss = fg_model_loss(f->model, g, input_batch(f, g), f->labels, NULL);
    compare(f, "loss (bits/dim + weight_y CE)", loss->t.data, ref->data, 1, BPD_RTOL, 1);
    fg_set_grad_enabled(g, was);
    fg_graph_reset(g);
}

static void check_decode(fixture *f, fg_graph *g)
{
    fg_multiscale *ms = f->model->flow;
    fg_var *latents[FG_FLOW_MAX_LATENTS];
    for (int i = 0; i < ms->n_latents; i++) {
        char name[32];
        snprintf(name, sizeof name, "decode.z.%d", i);
        const fg_st_tensor *z = need(f, name, FG_DT_F32);
        ck_assert(z->ndim == 4);
        int shape[4] = {(int)z->shape[0], (int)z->shape[1], (int)z->shape[2],
                        (int)z->shape[3]};
        latents[i] = fg_const(g, 4, shape);
        memcpy(latents[i]->t.data, z->data, numel_of(z) * sizeof(float));
    }
    char name[32];
    snprintf(name, sizeof name, "decode.z.%d", ms->n_latents);
    ck_assert_msg(fg_st_find(&f->st, name) == NULL, "%s: more latents than the model's %d",
                  f->file, ms->n_latents);
    fg_var *x = fg_multiscale_decode(ms, g, latents, ms->n_latents);
    const fg_st_tensor *ref = need(f, "decode.x", FG_DT_F32);
    ck_assert(numel_of(ref) == fg_numel(&x->t));
    compare(f, "decode.x", x->t.data, ref->data, numel_of(ref), DECODE_RTOL, 0);
    fg_graph_reset(g);
}

static const char *const fixture_files[] = {
    "glow-affine-lu.safetensors",
    "glow-additive-shuffle.safetensors",
    "flow-plain-reverse-y.safetensors",
};

START_TEST(test_fixture)
{
    fixture f;
    open_fixture(&f, fixture_files[_i]);
    fg_graph *g = fg_graph_create();
    check_log_likelihood(&f, g);
    check_gradients(&f, g);
    check_training_loss(&f, g);
    check_decode(&f, g);
    fg_graph_destroy(g);
    fflush(stdout);
    ck_assert_msg(f.failures == 0, "%s (%d tensors out of tolerance)", f.first_failure,
                  f.failures);
    close_fixture(&f);
}
END_TEST

/* The comparison itself must be able to fail: a fixture whose loaded
 * weights are nudged gives log-likelihoods outside the tolerance. */
START_TEST(test_detects_a_perturbed_weight)
{
    fixture f;
    open_fixture(&f, fixture_files[0]);
    fg_state_entry *e = fg_state_list_find(&f.model->state, "flow.1.actnorm.logs");
    ck_assert(e != NULL);
    e->var->t.data[0] += 1e-3f;
    printf("(flow.1.actnorm.logs[0] moved by 1e-3: the next line must say FAIL)\n");
    fg_graph *g = fg_graph_create();
    check_log_likelihood(&f, g);
    fg_graph_destroy(g);
    ck_assert_int_eq(f.failures, 1);
    ck_assert_msg(strstr(f.first_failure, "log_likelihood") != NULL, "%s", f.first_failure);
    close_fixture(&f);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("reference");
    TCase *tc = fg_tcase("pytorch_fixtures");
    tcase_add_loop_test(tc, test_fixture, 0,
                        (int)(sizeof fixture_files / sizeof *fixture_files));
    tcase_add_test(tc, test_detects_a_perturbed_weight);
    suite_add_tcase(s, tc);
    return s;
}
