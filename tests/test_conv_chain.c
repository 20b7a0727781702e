/* fg_conv_chain: a chain of convolutions and per-channel stages run chunk
 * of images by chunk.
 *
 * Each chain is checked three ways:
 * - against finite differences: on every element of every input for a
 *   chain without ReLU (smooth, so the quotient of step 1e-2 is exact to
 *   its O(h^2) term: 2e-3 + 1e-2 |numeric|, as test_autograd's exponential
 *   ops), and for every chain along a direction of each input in turn,
 *   half random and half its analytic gradient, within 1e-2 relative (the
 *   worst seen is 2e-3). The step, 2e-4, is a compromise: the float
 *   forward's rounding divided by the step grows as it shrinks, while each
 *   ReLU pre-activation the step carries across its kink moves the
 *   quotient away from the derivative, more of them the larger the step
 *   and the batch (hence at most 5 images here);
 * - against the composition of the existing ops it replaces
 *   (fg_to_channel_major, fg_conv2d_cm, fg_channel_affine_relu, actnorm's
 *   add_channel / mul_channel / exp, fg_relu, the zero conv's
 *   mul_channel(exp(scale(logs))), fg_from_channel_major): each output
 *   column is computed by the same operations, so the output and the input
 *   gradient within 1e-6 of the largest value (a few ulps; in practice
 *   equal), and the parameter gradients, whose sums run chunk by chunk
 *   rather than over the whole batch at once, within 1e-5;
 * - on 1 and 2 threads: the same bits, output and gradients; and with
 *   gradients disabled, the same output bits.
 * Batches of 1, 5, 7 and 17 images of 14x14, 7x7, 4x4 and 3x5 cover one
 * chunk, several, and a last chunk shorter than the others. */
#include "check_main.h"
#include "check_leaf.h"
#include "flowgrad.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STAGES 8
#define MAX_LEAVES 16

typedef struct stage_spec {
    fg_chain_kind kind;
    int out, k, bias;   /* CONV: output channels, kernel, whether it has a bias */
} stage_spec;

typedef struct chain_case {
    const char *name;
    int N, C, H, W;
    int n;
    stage_spec s[MAX_STAGES];
    int cond;   /* Cc of a condition vector read by the first convolution, or 0 */
} chain_case;

#define CONV(o, k, b) {FG_CHAIN_CONV, o, k, b}
#define AFFINE_RELU {FG_CHAIN_AFFINE_RELU, 0, 0, 0}
#define AFFINE {FG_CHAIN_AFFINE, 0, 0, 0}
#define RELU {FG_CHAIN_RELU, 0, 0, 0}
#define SCALE_EXP {FG_CHAIN_CHANNEL_SCALE_EXP, 0, 0, 0}

static const chain_case CASES[] = {
    {"glow 14x14, 5 images", 5, 2, 14, 14, 6,
     {CONV(6, 3, 0), AFFINE_RELU, CONV(6, 1, 0), AFFINE_RELU, CONV(4, 3, 1), SCALE_EXP}, 0},
    {"glow 7x7, 17 images", 17, 2, 7, 7, 6,
     {CONV(5, 3, 0), AFFINE_RELU, CONV(5, 1, 0), AFFINE_RELU, CONV(4, 3, 1), SCALE_EXP}, 0},
    {"plain 4x4, 7 images", 7, 3, 4, 4, 6,
     {CONV(4, 3, 1), RELU, CONV(4, 1, 1), AFFINE, CONV(2, 3, 0), SCALE_EXP}, 0},
    {"1x1 only 3x5, 1 image", 1, 3, 3, 5, 3, {CONV(5, 1, 1), RELU, CONV(2, 1, 0)}, 0},
    {"affine first, relu last, 14x14, 7 images", 7, 3, 14, 14, 3,
     {AFFINE, CONV(4, 1, 1), RELU}, 0},
    {"conditioned glow 7x7, 17 images", 17, 2, 7, 7, 6,
     {CONV(5, 3, 0), AFFINE_RELU, CONV(5, 1, 0), AFFINE_RELU, CONV(4, 3, 1), SCALE_EXP}, 3},
    {"conditioned 5x5 on 3x2, 5 images", 5, 2, 3, 2, 3, {CONV(4, 5, 1), RELU, CONV(2, 1, 0)}, 2},
    {"conditioned 1x1 on 4x4, 7 images", 7, 3, 4, 4, 3, {CONV(5, 1, 1), RELU, CONV(2, 1, 0)}, 4},
    /* every convolution without a bias, so each writes the stage after it
     * as its epilogue: ReLU, affine without ReLU, and after a narrowing
     * 3x3 (a pass after its shifted rows are summed) */
    {"epilogues 14x14, 5 images", 5, 2, 14, 14, 6,
     {CONV(6, 3, 0), RELU, CONV(6, 1, 0), AFFINE, CONV(4, 3, 0), AFFINE}, 0},
    {"smooth 14x14, 5 images", 5, 2, 14, 14, 5,
     {CONV(3, 3, 1), AFFINE, CONV(2, 3, 1), SCALE_EXP, CONV(3, 1, 0)}, 0},
    {"smooth conditioned 5x3, 5 images", 5, 2, 5, 3, 5,
     {CONV(3, 3, 1), AFFINE, CONV(2, 3, 1), SCALE_EXP, CONV(3, 1, 0)}, 3},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))
#define SMOOTH_CASES 2   /* the last ones */

typedef struct chain_inputs {
    const chain_case *cc;
    int N;
    fg_var *leaves[MAX_LEAVES];   /* x, the condition if any, then each stage's
                                     parameters in order */
    int n_leaves;
    fg_chain_stage st[MAX_STAGES];
    float *r;                     /* the loss's weights, one per output value */
    size_t r_n;
} chain_inputs;

static fg_var *add_leaf(chain_inputs *in, fg_var *v)
{
    ck_assert_int_lt(in->n_leaves, MAX_LEAVES);
    in->leaves[in->n_leaves++] = v;
    return v;
}

/* A case's leaves for a batch of N images. */
static void inputs_make_n(chain_inputs *in, const chain_case *cc, int N, uint64_t seed)
{
    memset(in, 0, sizeof *in);
    in->cc = cc;
    in->N = N;
    fg_rng r;
    fg_rng_seed(&r, seed);
    int xs[4] = {N, cc->C, cc->H, cc->W};
    add_leaf(in, fg_test_uniform_leaf(&r, 4, xs, -1, 1));
    int cs[2] = {N, cc->cond};
    fg_var *cond = cc->cond ? add_leaf(in, fg_test_uniform_leaf(&r, 2, cs, -1, 1)) : NULL;
    int c = cc->C;
    for (int s = 0; s < cc->n; s++) {
        const stage_spec *sp = &cc->s[s];
        fg_chain_stage *st = &in->st[s];
        st->kind = sp->kind;
        switch (sp->kind) {
        case FG_CHAIN_CONV: {
            /* the first convolution's last cc->cond input channels read the condition */
            const int extra = s == 0 ? cc->cond : 0;
            int ws[4] = {sp->out, c + extra, sp->k, sp->k};
            float a = 1.0f / sqrtf((float)((c + extra) * sp->k * sp->k));
            st->weight = add_leaf(in, fg_test_uniform_leaf(&r, 4, ws, -a, a));
            st->cond = s == 0 ? cond : NULL;
            if (sp->bias)
                st->bias = add_leaf(in, fg_test_uniform_leaf(&r, 1, &sp->out, -0.3f, 0.3f));
            c = sp->out;
            break;
        }
        case FG_CHAIN_AFFINE_RELU:
        case FG_CHAIN_AFFINE:
            st->bias = add_leaf(in, fg_test_uniform_leaf(&r, 1, &c, -0.3f, 0.3f));
            st->logs = add_leaf(in, fg_test_uniform_leaf(&r, 1, &c, -0.3f, 0.3f));
            break;
        case FG_CHAIN_CHANNEL_SCALE_EXP:
            st->logs = add_leaf(in, fg_test_uniform_leaf(&r, 1, &c, -0.1f, 0.1f));
            st->factor = 3.0f;
            break;
        case FG_CHAIN_RELU:
            break;
        }
    }
    in->r_n = (size_t)N * c * cc->H * cc->W;
    in->r = malloc(in->r_n * sizeof(float));
    fg_rng_uniform(&r, in->r, in->r_n);
    for (size_t i = 0; i < in->r_n; i++) in->r[i] = 2.0f * in->r[i] - 1.0f;
}

static void inputs_make(chain_inputs *in, const chain_case *cc, uint64_t seed)
{
    inputs_make_n(in, cc, cc->N, seed);
}

static void inputs_free(chain_inputs *in)
{
    for (int i = 0; i < in->n_leaves; i++) fg_leaf_free(in->leaves[i]);
    free(in->r);
}

/* The chain as the ops the conditioner network used before it; a
 * condition repeated over the image and concatenated after its channels. */
static fg_var *reference(fg_graph *g, const chain_inputs *in)
{
    const int N = in->N;
    fg_var *x = in->leaves[0];
    if (in->cc->cond)
        x = fg_channel_concat(g, x, fg_condition_for(g, in->leaves[1], x, "test"));
    fg_var *h = fg_to_channel_major(g, x);
    for (int s = 0; s < in->cc->n; s++) {
        const fg_chain_stage *st = &in->st[s];
        switch (st->kind) {
        case FG_CHAIN_CONV:
            h = fg_conv2d_cm(g, h, st->weight, st->bias, N);
            break;
        case FG_CHAIN_AFFINE_RELU:
            h = fg_channel_affine_relu(g, h, st->bias, st->logs);
            break;
        case FG_CHAIN_AFFINE:
            h = fg_mul_channel(g, fg_add_channel(g, h, st->bias), fg_exp(g, st->logs));
            break;
        case FG_CHAIN_RELU:
            h = fg_relu(g, h);
            break;
        case FG_CHAIN_CHANNEL_SCALE_EXP:
            h = fg_mul_channel(g, h, fg_exp(g, fg_scale(g, st->logs, st->factor)));
            break;
        }
    }
    return fg_from_channel_major(g, h, N);
}

static fg_var *chained(fg_graph *g, const chain_inputs *in)
{
    return fg_conv_chain(g, in->leaves[0], in->st, in->cc->n);
}

static fg_var *weighted(fg_graph *g, const chain_inputs *in, fg_var *y)
{
    ck_assert_uint_eq(fg_numel(&y->t), in->r_n);
    return fg_sum(g, fg_mul(g, y, fg_const_wrap(g, in->r, y->t.ndim, y->t.shape)));
}

static fg_var *chain_loss(fg_graph *g, void *p)
{
    return weighted(g, p, chained(g, p));
}

/* The output and every leaf's gradient under sum(y * r), in one buffer:
 * the output first, then the leaves' gradients in order. */
typedef struct run_result {
    float *v;
    size_t n, offset[MAX_LEAVES + 1];
} run_result;

static run_result run(chain_inputs *in, int use_chain, int grad)
{
    run_result res = {0};
    res.offset[0] = in->r_n;
    size_t total = in->r_n;
    for (int i = 0; i < in->n_leaves; i++) {
        res.offset[i + 1] = total;
        total += fg_numel(&in->leaves[i]->t);
    }
    res.n = total;
    res.v = calloc(total, sizeof(float));
    fg_graph *g = fg_graph_create();
    fg_set_grad_enabled(g, grad);
    for (int i = 0; i < in->n_leaves; i++) fg_zero_grad(in->leaves[i]);
    fg_var *y = use_chain ? chained(g, in) : reference(g, in);
    memcpy(res.v, y->t.data, in->r_n * sizeof(float));
    if (grad) {
        fg_backward(g, weighted(g, in, y));
        for (int i = 0; i < in->n_leaves; i++)
            memcpy(res.v + res.offset[i + 1], in->leaves[i]->grad,
                   fg_numel(&in->leaves[i]->t) * sizeof(float));
    } else {
        ck_assert_uint_eq(fg_graph_nodes(g), 0);
    }
    fg_graph_destroy(g);
    return res;
}

/* Largest |a - b| over part i (0: the output; i > 0: leaf i - 1's
 * gradient) relative to the largest |b| there (at least 1e-3). */
static double part_diff(const run_result *a, const run_result *b, int i, int n_leaves)
{
    size_t lo = i == 0 ? 0 : a->offset[i], hi = i == 0 ? a->offset[0]
                                              : i < n_leaves ? a->offset[i + 1] : a->n;
    double d = 0.0, m = 1e-3;
    for (size_t j = lo; j < hi; j++) {
        d = fmax(d, fabs((double)a->v[j] - b->v[j]));
        m = fmax(m, fabs((double)b->v[j]));
    }
    return d / m;
}

START_TEST(test_matches_composition_and_threads)
{
    const chain_case *cc = &CASES[_i];
    const int threads = fg_get_threads();
    chain_inputs in;
    inputs_make(&in, cc, 100 + (uint64_t)_i);
    run_result chain[2], ref;
    for (int t = 0; t < 2; t++) {
        fg_set_threads(t + 1);
        chain[t] = run(&in, 1, 1);
        ref = run(&in, 0, 1);
        double worst_param = 0.0;
        for (int i = 2; i <= in.n_leaves; i++)
            worst_param = fmax(worst_param, part_diff(&chain[t], &ref, i, in.n_leaves));
        double dy = part_diff(&chain[t], &ref, 0, in.n_leaves);
        double dx = part_diff(&chain[t], &ref, 1, in.n_leaves);
        printf("%-42s %d thread(s): y %.1e, gx %.1e, parameters %.1e (%d chunk(s) of %d)\n",
               cc->name, t + 1, dy, dx, worst_param,
               (cc->N + fg_conv_chain_chunk_images(cc->H * cc->W) - 1) /
                   fg_conv_chain_chunk_images(cc->H * cc->W),
               fg_conv_chain_chunk_images(cc->H * cc->W));
        ck_assert_double_le(dy, 1e-6);
        ck_assert_double_le(dx, 1e-6);
        ck_assert_double_le(worst_param, 1e-5);
        free(ref.v);
    }
    ck_assert_uint_eq(chain[0].n, chain[1].n);
    ck_assert_msg(!memcmp(chain[0].v, chain[1].v, chain[0].n * sizeof(float)),
                  "%s: 1 and 2 threads differ", cc->name);
    run_result nograd = run(&in, 1, 0);
    ck_assert_msg(!memcmp(nograd.v, chain[0].v, in.r_n * sizeof(float)),
                  "%s: the forward without gradients differs", cc->name);
    free(nograd.v);
    for (int t = 0; t < 2; t++) free(chain[t].v);
    fg_set_threads(threads);
    inputs_free(&in);
}
END_TEST

/* At most 5 images: the more ReLU pre-activations, the more of them a
 * difference step carries across the kink, each moving the quotient away
 * from the derivative; the batches of several chunks are covered above. */
START_TEST(test_directional_gradients)
{
    const chain_case *cc = &CASES[_i];
    chain_inputs in;
    inputs_make_n(&in, cc, cc->N < 5 ? cc->N : 5, 200 + (uint64_t)_i);
    fg_graph *g = fg_graph_create();
    fg_rng r;
    fg_rng_seed(&r, 300 + (uint64_t)_i);
    for (int i = 0; i < in.n_leaves; i++) {
        double analytic, numeric;
        double err = fg_gradcheck_direction_mixed(g, chain_loss, &in, &in.leaves[i], 1, 2e-4,
                                                  &r, &analytic, &numeric);
        printf("%-42s leaf %d: analytic %.6g numeric %.6g rel err %.1e\n", cc->name, i,
               analytic, numeric, err);
        ck_assert_msg(err <= 1e-2, "%s: leaf %d: directional derivative %g, quotient %g",
                      cc->name, i, analytic, numeric);
    }
    fg_graph_destroy(g);
    inputs_free(&in);
}
END_TEST

START_TEST(test_elementwise_gradients)
{
    const chain_case *cc = &CASES[N_CASES - SMOOTH_CASES + _i];
    chain_inputs in;
    inputs_make(&in, cc, 400);
    fg_graph *g = fg_graph_create();
    fg_gradcheck_result res;
    int ok = fg_gradcheck(g, chain_loss, &in, in.leaves, in.n_leaves, 1e-2, 2e-3, 1e-2, &res);
    printf("%s: %d elements, max abs err %.2e, max rel err %.2e\n", cc->name,
           res.n_checked, res.max_abs_err, res.max_rel_err);
    ck_assert_msg(ok, "%d of %d gradient elements out of tolerance, worst at leaf %d element %d",
                  res.n_failed, res.n_checked, res.worst_leaf, res.worst_index);
    fg_graph_destroy(g);
    inputs_free(&in);
}
END_TEST

/* Gradients for parameters only (the input a constant) and for the input
 * only: the backward skips what is not wanted and still agrees. */
START_TEST(test_partial_requirements)
{
    chain_inputs in;
    inputs_make(&in, &CASES[0], 500);
    run_result all = run(&in, 1, 1);
    in.leaves[0]->requires_grad = 0;
    run_result params = run(&in, 1, 1);
    ck_assert(!memcmp(all.v + all.offset[2], params.v + params.offset[2],
                      (all.n - all.offset[2]) * sizeof(float)));
    in.leaves[0]->requires_grad = 1;
    for (int i = 1; i < in.n_leaves; i++) in.leaves[i]->requires_grad = 0;
    fg_graph *g = fg_graph_create();
    fg_zero_grad(in.leaves[0]);
    fg_backward(g, chain_loss(g, &in));
    ck_assert(!memcmp(all.v + all.offset[1], in.leaves[0]->grad,
                      fg_numel(&in.leaves[0]->t) * sizeof(float)));
    fg_graph_destroy(g);
    for (int i = 1; i < in.n_leaves; i++) in.leaves[i]->requires_grad = 1;
    free(all.v);
    free(params.v);
    inputs_free(&in);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("conv_chain");
    TCase *tc = fg_tcase("conv_chain");
    tcase_add_loop_test(tc, test_matches_composition_and_threads, 0, N_CASES);
    tcase_add_loop_test(tc, test_directional_gradients, 0, N_CASES);
    tcase_add_loop_test(tc, test_elementwise_gradients, 0, SMOOTH_CASES);
    tcase_add_test(tc, test_partial_requirements);
    suite_add_tcase(s, tc);
    return s;
}
