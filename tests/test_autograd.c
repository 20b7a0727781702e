/* Autograd: every op's backward rule against central finite differences on
 * random shapes and inputs, plus the tape's own behaviour (no-grad mode,
 * accumulation, flat memory over many steps).
 *
 * Each op is checked through loss = sum(op(inputs) * R) with a fixed random
 * R, so every element of the Jacobian contributes. Steps of 1e-2 in float
 * with the loss summed in double keep rounding near 1e-5. The per-op
 * tolerances (atol + rtol * |numeric|) below: 2e-4 / 1e-3 for ops linear in
 * each input (about 5x the worst error seen); 5e-4 / 1e-3 for the smooth
 * saturating ops and the matrix ops; 2e-3 / 1e-2 for exp, log, division and
 * channel_affine_relu (exponential in logs), whose curvature makes the O(h^2)
 * truncation error of the quotient reach 1e-3 at h = 1e-2 (the third
 * derivative of log at 0.3 is 74). */
#include "check_main.h"
#include "check_leaf.h"
#include "flowgrad.h"
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IN 4

typedef struct op_case {
    const char *name;
    int n_in;
    double atol, rtol;
} op_case;

typedef struct ctx {
    int op;                  /* index into CASES */
    fg_var *in[MAX_IN];
    float *r;                /* weights of the output, numel of the output */
    size_t r_n;
    int labels[8];
    int perm[16];
    int extra[4];            /* op-specific integers (transposes, k, ...) */
} ctx;

enum {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_ADD_BC, OP_MUL_BC, OP_DIV_BC, OP_NEG, OP_SCALE,
    OP_ADD_SCALAR, OP_EXP, OP_LOG, OP_SIGMOID, OP_LOG_SIGMOID, OP_RELU, OP_SQUARE,
    OP_SUM, OP_MEAN, OP_SUM_SAMPLE, OP_MEAN_SAMPLE, OP_SUM_CHANNEL, OP_MEAN_CHANNEL,
    OP_ADD_CHANNEL, OP_MUL_CHANNEL, OP_MATMUL_NN, OP_MATMUL_NT, OP_MATMUL_TN, OP_MATMUL_TT,
    OP_CONV1, OP_CONV3, OP_CONV3_BIAS, OP_SLICE, OP_CONCAT, OP_EVEN, OP_ODD, OP_PERMUTE,
    OP_RESHAPE, OP_SQUEEZE, OP_UNSQUEEZE, OP_SLOGDET, OP_INVERSE, OP_XENT, OP_GAUSS,
    OP_MAX_POOL, OP_AVG_POOL, OP_GLOBAL_AVG_POOL, OP_AFFINE_RELU, OP_TO_CM, OP_FROM_CM,
    OP_CONV_CM1, OP_CONV_CM3_BIAS, OP_CONV_CM3_NARROW, OP_AFFINE_RELU_MID,
    OP_COUPLING_FWD, OP_COUPLING_INV, OP_COUPLING_LOGDET, OP_COUPLING_MID,
    OP_CONV_CM_AFFINE_RELU,
    N_OPS
};

/* name, inputs, atol, rtol */
static const op_case CASES[N_OPS] = {
    [OP_ADD] = {"add", 2, 2e-4, 1e-3},
    [OP_SUB] = {"sub", 2, 2e-4, 1e-3},
    [OP_MUL] = {"mul", 2, 2e-4, 1e-3},
    [OP_DIV] = {"div", 2, 2e-3, 1e-2},
    [OP_ADD_BC] = {"add_broadcast", 2, 2e-4, 1e-3},
    [OP_MUL_BC] = {"mul_broadcast", 2, 2e-4, 1e-3},
    [OP_DIV_BC] = {"div_broadcast", 2, 2e-3, 1e-2},
    [OP_NEG] = {"neg", 1, 2e-4, 1e-3},
    [OP_SCALE] = {"scale", 1, 2e-4, 1e-3},
    [OP_ADD_SCALAR] = {"add_scalar", 1, 2e-4, 1e-3},
    [OP_EXP] = {"exp", 1, 2e-3, 1e-2},
    [OP_LOG] = {"log", 1, 2e-3, 1e-2},
    [OP_SIGMOID] = {"sigmoid", 1, 5e-4, 1e-3},
    [OP_LOG_SIGMOID] = {"log_sigmoid", 1, 5e-4, 1e-3},
    [OP_RELU] = {"relu", 1, 2e-4, 1e-3},
    [OP_SQUARE] = {"square", 1, 2e-4, 1e-3},
    [OP_SUM] = {"sum", 1, 2e-4, 1e-3},
    [OP_MEAN] = {"mean", 1, 2e-4, 1e-3},
    [OP_SUM_SAMPLE] = {"sum_per_sample", 1, 2e-4, 1e-3},
    [OP_MEAN_SAMPLE] = {"mean_per_sample", 1, 2e-4, 1e-3},
    [OP_SUM_CHANNEL] = {"sum_per_channel", 1, 2e-4, 1e-3},
    [OP_MEAN_CHANNEL] = {"mean_per_channel", 1, 2e-4, 1e-3},
    [OP_ADD_CHANNEL] = {"add_channel", 2, 2e-4, 1e-3},
    [OP_MUL_CHANNEL] = {"mul_channel", 2, 2e-4, 1e-3},
    [OP_MATMUL_NN] = {"matmul", 2, 2e-4, 1e-3},
    [OP_MATMUL_NT] = {"matmul_bt", 2, 2e-4, 1e-3},
    [OP_MATMUL_TN] = {"matmul_at", 2, 2e-4, 1e-3},
    [OP_MATMUL_TT] = {"matmul_at_bt", 2, 2e-4, 1e-3},
    [OP_CONV1] = {"conv2d_1x1", 2, 2e-4, 1e-3},
    [OP_CONV3] = {"conv2d_3x3", 2, 2e-4, 1e-3},
    [OP_CONV3_BIAS] = {"conv2d_3x3_bias", 3, 2e-4, 1e-3},
    [OP_SLICE] = {"channel_slice", 1, 2e-4, 1e-3},
    [OP_CONCAT] = {"channel_concat", 2, 2e-4, 1e-3},
    [OP_EVEN] = {"channel_even", 1, 2e-4, 1e-3},
    [OP_ODD] = {"channel_odd", 1, 2e-4, 1e-3},
    [OP_PERMUTE] = {"channel_permute", 1, 2e-4, 1e-3},
    [OP_RESHAPE] = {"reshape", 1, 2e-4, 1e-3},
    [OP_SQUEEZE] = {"squeeze2d", 1, 2e-4, 1e-3},
    [OP_UNSQUEEZE] = {"unsqueeze2d", 1, 2e-4, 1e-3},
    [OP_SLOGDET] = {"slogdet", 1, 5e-4, 1e-3},
    [OP_INVERSE] = {"inverse", 1, 5e-4, 1e-3},
    [OP_XENT] = {"log_softmax_cross_entropy", 1, 5e-4, 1e-3},
    [OP_GAUSS] = {"gaussian_logp", 3, 2e-3, 1e-2},
    [OP_MAX_POOL] = {"max_pool2x2", 1, 2e-4, 1e-3},
    [OP_AVG_POOL] = {"avg_pool2x2", 1, 2e-4, 1e-3},
    [OP_GLOBAL_AVG_POOL] = {"global_avg_pool", 1, 2e-4, 1e-3},
    [OP_AFFINE_RELU] = {"channel_affine_relu", 3, 2e-3, 1e-2},
    [OP_TO_CM] = {"to_channel_major", 1, 2e-4, 1e-3},
    [OP_FROM_CM] = {"from_channel_major", 1, 2e-4, 1e-3},
    [OP_CONV_CM1] = {"conv2d_cm_1x1", 2, 2e-4, 1e-3},
    [OP_CONV_CM3_BIAS] = {"conv2d_cm_3x3_bias", 3, 2e-4, 1e-3},
    [OP_CONV_CM3_NARROW] = {"conv2d_cm_3x3_narrow", 2, 2e-4, 1e-3},
    /* on an intermediate: its gradient is stored, not added */
    [OP_AFFINE_RELU_MID] = {"channel_affine_relu_of_intermediate", 3, 2e-3, 1e-2},
    [OP_COUPLING_FWD] = {"affine_coupling", 2, 5e-4, 1e-3},
    [OP_COUPLING_INV] = {"affine_coupling_inverse", 2, 5e-4, 1e-3},
    [OP_COUPLING_LOGDET] = {"affine_coupling_logdet", 1, 5e-4, 1e-3},
    /* both outputs, from intermediates: gradients stored, then added */
    [OP_COUPLING_MID] = {"affine_coupling_of_intermediates", 2, 5e-4, 1e-3},
    /* exponential in logs, as channel_affine_relu */
    [OP_CONV_CM_AFFINE_RELU] = {"conv2d_cm_affine_relu", 4, 2e-3, 1e-2},
};

static int rand_int(fg_rng *r, int lo, int hi) { return lo + (int)(fg_rng_u32(r) % (uint32_t)(hi - lo + 1)); }

/* Moves values out of (-margin, margin) so kinks and poles stay further
 * from every sample than the difference step. */
static void away_from_zero(fg_var *v, float margin)
{
    for (size_t i = 0; i < fg_numel(&v->t); i++) {
        float x = v->t.data[i];
        if (fabsf(x) < margin) v->t.data[i] = x < 0 ? x - margin : x + margin;
    }
}

/* Max pooling's gradient jumps when a window's argmax changes: give the four
 * values of each 2x2 window a random order with gaps of at least `gap`
 * (several difference steps), so no step can swap the maximum. */
static void separate_window_values(fg_var *v, fg_rng *r, float gap)
{
    int H = v->t.shape[2], W = v->t.shape[3];
    size_t planes = (size_t)v->t.shape[0] * v->t.shape[1];
    for (size_t p = 0; p < planes; p++)
        for (int i = 0; i < H; i += 2)
            for (int j = 0; j < W; j += 2) {
                float *x = v->t.data + p * (size_t)H * W;
                int at[4] = {i * W + j, i * W + j + 1, (i + 1) * W + j, (i + 1) * W + j + 1};
                int rank[4];
                fg_rng_permutation(r, rank, 4);
                float base = x[at[0]] * 0.5f;
                for (int k = 0; k < 4; k++) x[at[k]] = base + gap * (float)rank[k];
            }
}

static fg_var *apply(fg_graph *g, ctx *c)
{
    fg_var **x = c->in;
    switch (c->op) {
    case OP_ADD: case OP_ADD_BC: return fg_add(g, x[0], x[1]);
    case OP_SUB: return fg_sub(g, x[0], x[1]);
    case OP_MUL: case OP_MUL_BC: return fg_mul(g, x[0], x[1]);
    case OP_DIV: case OP_DIV_BC: return fg_div(g, x[0], x[1]);
    case OP_NEG: return fg_neg(g, x[0]);
    case OP_SCALE: return fg_scale(g, x[0], -1.7f);
    case OP_ADD_SCALAR: return fg_add_scalar(g, x[0], 0.3f);
    case OP_EXP: return fg_exp(g, x[0]);
    case OP_LOG: return fg_log(g, x[0]);
    case OP_SIGMOID: return fg_sigmoid(g, x[0]);
    case OP_LOG_SIGMOID: return fg_log_sigmoid(g, x[0]);
    case OP_RELU: return fg_relu(g, x[0]);
    case OP_SQUARE: return fg_square(g, x[0]);
    case OP_SUM: return fg_sum(g, x[0]);
    case OP_MEAN: return fg_mean(g, x[0]);
    case OP_SUM_SAMPLE: return fg_sum_per_sample(g, x[0]);
    case OP_MEAN_SAMPLE: return fg_mean_per_sample(g, x[0]);
    case OP_SUM_CHANNEL: return fg_sum_per_channel(g, x[0]);
    case OP_MEAN_CHANNEL: return fg_mean_per_channel(g, x[0]);
    case OP_ADD_CHANNEL: return fg_add_channel(g, x[0], x[1]);
    case OP_MUL_CHANNEL: return fg_mul_channel(g, x[0], x[1]);
    case OP_MATMUL_NN: case OP_MATMUL_NT: case OP_MATMUL_TN: case OP_MATMUL_TT:
        return fg_matmul(g, x[0], x[1], c->extra[0], c->extra[1]);
    case OP_CONV1: case OP_CONV3: return fg_conv2d(g, x[0], x[1], NULL);
    case OP_CONV3_BIAS: return fg_conv2d(g, x[0], x[1], x[2]);
    case OP_SLICE: return fg_channel_slice(g, x[0], c->extra[0], c->extra[1]);
    case OP_CONCAT: return fg_channel_concat(g, x[0], x[1]);
    case OP_EVEN: return fg_channel_even(g, x[0]);
    case OP_ODD: return fg_channel_odd(g, x[0]);
    case OP_PERMUTE: return fg_channel_permute(g, x[0], c->perm);
    case OP_RESHAPE: {
        int s[2] = {c->extra[0], c->extra[1]};
        /* A product after the reshape makes the gradient depend on the new
         * layout, not only pass through. */
        fg_var *y = fg_reshape(g, x[0], 2, s);
        return fg_mul(g, y, y);
    }
    case OP_SQUEEZE: return fg_squeeze2d(g, x[0]);
    case OP_UNSQUEEZE: return fg_unsqueeze2d(g, x[0]);
    case OP_SLOGDET: return fg_slogdet(g, x[0]);
    case OP_INVERSE: return fg_inverse(g, x[0]);
    case OP_XENT: return fg_log_softmax_cross_entropy(g, x[0], c->labels);
    case OP_GAUSS: return fg_gaussian_logp(g, x[0], x[1], x[2]);
    case OP_MAX_POOL: return fg_max_pool2x2(g, x[0]);
    case OP_AVG_POOL: return fg_avg_pool2x2(g, x[0]);
    case OP_GLOBAL_AVG_POOL: return fg_global_avg_pool(g, x[0]);
    case OP_AFFINE_RELU: return fg_channel_affine_relu(g, x[0], x[1], x[2]);
    case OP_AFFINE_RELU_MID:
        return fg_channel_affine_relu(g, fg_scale(g, x[0], 1.0f), x[1], x[2]);
    case OP_COUPLING_FWD: return fg_affine_coupling(g, x[0], x[1], 1, NULL);
    case OP_COUPLING_INV: return fg_affine_coupling(g, x[0], x[1], -1, NULL);
    case OP_COUPLING_LOGDET: {
        fg_var *l;
        int vs[4] = {x[0]->t.shape[0], x[0]->t.shape[1] / 2, x[0]->t.shape[2], x[0]->t.shape[3]};
        fg_affine_coupling(g, fg_const(g, 4, vs), x[0], 1, &l);
        return l;
    }
    case OP_COUPLING_MID: {
        fg_var *l, *y = fg_affine_coupling(g, fg_scale(g, x[0], 1.0f), fg_scale(g, x[1], 1.0f), 1, &l);
        return fg_add(g, fg_sum_per_sample(g, y), fg_scale(g, l, 0.7f));
    }
    case OP_TO_CM: return fg_to_channel_major(g, x[0]);
    case OP_FROM_CM: return fg_from_channel_major(g, x[0], c->extra[0]);
    case OP_CONV_CM1: case OP_CONV_CM3_NARROW: {
        /* From and back to (N, C, H, W): the input is then an intermediate,
         * whose gradient the backward stores rather than adds. */
        int n = c->extra[0];
        return fg_from_channel_major(g, fg_conv2d_cm(g, fg_to_channel_major(g, x[0]), x[1], NULL, n), n);
    }
    case OP_CONV_CM3_BIAS: return fg_conv2d_cm(g, x[0], x[1], x[2], c->extra[0]);
    case OP_CONV_CM_AFFINE_RELU: {
        /* From and back to (N, C, H, W), so the input is an intermediate. */
        int n = c->extra[0];
        fg_var *h = fg_to_channel_major(g, x[0]);
        return fg_from_channel_major(g, fg_conv2d_cm_affine_relu(g, h, x[1], x[2], x[3], n), n);
    }
    }
    return NULL;
}

static fg_var *weighted_loss(fg_graph *g, void *p)
{
    ctx *c = p;
    fg_var *y = apply(g, c);
    ck_assert_uint_eq(fg_numel(&y->t), c->r_n);
    fg_var *r = fg_const_wrap(g, c->r, y->t.ndim, y->t.shape);
    return fg_sum(g, fg_mul(g, y, r));
}

/* A 3x3 convolution's input and weight with actnorm's bias and log-scale,
 * drawn again until every pre-activation (conv + bias) is at least 0.05
 * from ReLU's kink: a step of 1e-2 in one input, weight or bias moves a
 * pre-activation by at most 1e-2 (|x|, |w| <= 1), and one in logs only
 * scales it, so no difference quotient crosses the kink. Small shapes
 * keep the redraws few. */
static void conv_affine_relu_inputs(ctx *c, fg_rng *r)
{
    for (;;) {
        int N = rand_int(r, 1, 2), Ci = rand_int(r, 1, 3), Co = rand_int(r, 1, 3);
        int H = rand_int(r, 1, 3), W = rand_int(r, 1, 3);
        int xs[4] = {N, Ci, H, W}, ws[4] = {Co, Ci, 3, 3};
        c->in[0] = fg_test_uniform_leaf(r, 4, xs, -1, 1);
        c->in[1] = fg_test_uniform_leaf(r, 4, ws, -0.5f, 0.5f);
        c->in[2] = fg_test_uniform_leaf(r, 1, &Co, -0.5f, 0.5f);
        c->in[3] = fg_test_uniform_leaf(r, 1, &Co, -0.5f, 0.5f);
        c->extra[0] = N;
        fg_graph *g = fg_graph_create();
        fg_set_grad_enabled(g, 0);
        fg_var *pre = fg_from_channel_major(
            g, fg_conv2d_cm(g, fg_to_channel_major(g, c->in[0]), c->in[1], NULL, N), N);
        int clear = 1;
        size_t hw = (size_t)H * W;
        for (size_t i = 0; i < fg_numel(&pre->t); i++)
            clear &= fabsf(pre->t.data[i] + c->in[2]->t.data[(i / hw) % (size_t)Co]) >= 0.05f;
        fg_graph_destroy(g);
        if (clear)
            return;
        for (int i = 0; i < 4; i++)
            fg_leaf_free(c->in[i]);
    }
}

/* Random inputs of a random shape suited to the op. */
static void setup(ctx *c, fg_rng *r)
{
    int op = c->op;
    int N = rand_int(r, 1, 3), C = rand_int(r, 1, 4), H = rand_int(r, 1, 5), W = rand_int(r, 1, 5);
    int x4[4] = {N, C, H, W};
    int one = 1;
    switch (op) {
    case OP_ADD: case OP_SUB: case OP_MUL:
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1); c->in[1] = fg_test_uniform_leaf(r, 4, x4, -1, 1); break;
    case OP_DIV:
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1); c->in[1] = fg_test_uniform_leaf(r, 4, x4, 0.5f, 2); break;
    case OP_ADD_BC: case OP_MUL_BC:
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1); c->in[1] = fg_test_uniform_leaf(r, 1, &one, -1, 1); break;
    case OP_DIV_BC:
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1); c->in[1] = fg_test_uniform_leaf(r, 1, &one, 0.5f, 2); break;
    case OP_LOG:
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, 0.3f, 3); break;
    case OP_EXP:
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -2, 1.5f); break;
    case OP_SIGMOID: case OP_LOG_SIGMOID:
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -6, 6); break;
    case OP_RELU:
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1); away_from_zero(c->in[0], 0.05f); break;
    case OP_ADD_CHANNEL: case OP_MUL_CHANNEL:
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1); c->in[1] = fg_test_uniform_leaf(r, 1, &C, -1, 1); break;
    case OP_MATMUL_NN: case OP_MATMUL_NT: case OP_MATMUL_TN: case OP_MATMUL_TT: {
        int M = rand_int(r, 1, 7), K = rand_int(r, 1, 7), Nn = rand_int(r, 1, 7);
        int ta = op == OP_MATMUL_TN || op == OP_MATMUL_TT, tb = op == OP_MATMUL_NT || op == OP_MATMUL_TT;
        int sa[2] = {ta ? K : M, ta ? M : K}, sb[2] = {tb ? Nn : K, tb ? K : Nn};
        c->extra[0] = ta; c->extra[1] = tb;
        c->in[0] = fg_test_uniform_leaf(r, 2, sa, -1, 1); c->in[1] = fg_test_uniform_leaf(r, 2, sb, -1, 1);
        break;
    }
    case OP_CONV1: case OP_CONV3: case OP_CONV3_BIAS: {
        int k = op == OP_CONV1 ? 1 : 3, Co = rand_int(r, 1, 4);
        int ws[4] = {Co, C, k, k};
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1); c->in[1] = fg_test_uniform_leaf(r, 4, ws, -0.5f, 0.5f);
        if (op == OP_CONV3_BIAS) c->in[2] = fg_test_uniform_leaf(r, 1, &Co, -1, 1);
        break;
    }
    case OP_SLICE: {
        int s[4] = {N, C + 2, H, W};
        c->in[0] = fg_test_uniform_leaf(r, 4, s, -1, 1);
        c->extra[0] = rand_int(r, 0, C); c->extra[1] = rand_int(r, c->extra[0] + 1, C + 2);
        break;
    }
    case OP_CONCAT: {
        int s[4] = {N, rand_int(r, 1, 3), H, W};
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1); c->in[1] = fg_test_uniform_leaf(r, 4, s, -1, 1);
        break;
    }
    case OP_EVEN: case OP_ODD: {
        int s[4] = {N, 2 * C, H, W};
        c->in[0] = fg_test_uniform_leaf(r, 4, s, -1, 1);
        break;
    }
    case OP_PERMUTE:
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1);
        fg_rng_permutation(r, c->perm, C);
        break;
    case OP_RESHAPE:
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1);
        c->extra[0] = N * C; c->extra[1] = H * W;
        break;
    case OP_SQUEEZE: {
        int s[4] = {N, C, 2 * H, 2 * W};
        c->in[0] = fg_test_uniform_leaf(r, 4, s, -1, 1);
        break;
    }
    case OP_UNSQUEEZE: {
        int s[4] = {N, 4 * C, H, W};
        c->in[0] = fg_test_uniform_leaf(r, 4, s, -1, 1);
        break;
    }
    case OP_SLOGDET: case OP_INVERSE: {
        /* Well conditioned: identity plus a small random matrix. */
        int n = rand_int(r, 1, 6), s[2] = {n, n};
        c->in[0] = fg_test_uniform_leaf(r, 2, s, -0.3f, 0.3f);
        for (int i = 0; i < n; i++) c->in[0]->t.data[i * n + i] += (i % 2 ? -1.5f : 1.5f);
        break;
    }
    case OP_XENT: {
        int K = rand_int(r, 2, 6), s[2] = {N, K};
        c->in[0] = fg_test_uniform_leaf(r, 2, s, -2, 2);
        for (int n = 0; n < N; n++) c->labels[n] = rand_int(r, 0, K - 1);
        break;
    }
    case OP_GAUSS:
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1); c->in[1] = fg_test_uniform_leaf(r, 4, x4, -1, 1);
        c->in[2] = fg_test_uniform_leaf(r, 4, x4, -0.5f, 0.5f);
        break;
    case OP_MAX_POOL: {
        int s[4] = {N, C, 2 * H, 2 * W};
        c->in[0] = fg_test_uniform_leaf(r, 4, s, -1, 1);
        separate_window_values(c->in[0], r, 0.05f);
        break;
    }
    case OP_AVG_POOL: {
        int s[4] = {N, C, 2 * H, 2 * W};
        c->in[0] = fg_test_uniform_leaf(r, 4, s, -1, 1);
        break;
    }
    case OP_AFFINE_RELU: case OP_AFFINE_RELU_MID: {
        /* Pre-activations of both signs; x + bias at least 0.05 from zero,
         * so no step of 1e-2 in x or bias crosses the kink, and one in logs
         * only scales them. */
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1); c->in[1] = fg_test_uniform_leaf(r, 1, &C, -0.5f, 0.5f);
        c->in[2] = fg_test_uniform_leaf(r, 1, &C, -0.5f, 0.5f);
        size_t HW = (size_t)H * W;
        for (size_t i = 0; i < fg_numel(&c->in[0]->t); i++) {
            float b = c->in[1]->t.data[(i / HW) % (size_t)C], *x = &c->in[0]->t.data[i];
            if (fabsf(*x + b) < 0.05f) *x = *x + b < 0 ? -0.05f - b : 0.05f - b;
        }
        break;
    }
    case OP_COUPLING_FWD: case OP_COUPLING_INV: case OP_COUPLING_MID: {
        int hs[4] = {N, 2 * C, H, W};
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1); c->in[1] = fg_test_uniform_leaf(r, 4, hs, -2, 2);
        break;
    }
    case OP_COUPLING_LOGDET: {
        int hs[4] = {N, 2 * C, H, W};
        c->in[0] = fg_test_uniform_leaf(r, 4, hs, -3, 3);
        break;
    }
    case OP_FROM_CM: {
        int s[4] = {1, C, N * H, W};
        c->in[0] = fg_test_uniform_leaf(r, 4, s, -1, 1);
        c->extra[0] = N;
        break;
    }
    case OP_CONV_CM1: case OP_CONV_CM3_BIAS: case OP_CONV_CM3_NARROW: {
        /* A batch of N images, channel-major for the bias case; the narrow
         * case has fewer output than input channels. */
        int narrow = op == OP_CONV_CM3_NARROW, Ci = narrow ? C + 2 : C;
        int k = op == OP_CONV_CM1 ? 1 : 3, Co = narrow ? rand_int(r, 1, 2) : rand_int(r, 1, 4);
        int s[4] = {1, Ci, N * H, W}, ws[4] = {Co, Ci, k, k};
        if (op != OP_CONV_CM3_BIAS) { s[0] = N; s[2] = H; }
        c->in[0] = fg_test_uniform_leaf(r, 4, s, -1, 1); c->in[1] = fg_test_uniform_leaf(r, 4, ws, -0.5f, 0.5f);
        if (op == OP_CONV_CM3_BIAS) c->in[2] = fg_test_uniform_leaf(r, 1, &Co, -1, 1);
        c->extra[0] = N;
        break;
    }
    case OP_CONV_CM_AFFINE_RELU:
        conv_affine_relu_inputs(c, r);
        break;
    default:
        c->in[0] = fg_test_uniform_leaf(r, 4, x4, -1, 1);
    }
}

START_TEST(test_op_gradient)
{
    ctx c = {0};
    c.op = _i;
    const op_case *oc = &CASES[_i];
    fg_graph *g = fg_graph_create();
    for (int trial = 0; trial < 3; trial++) {
        fg_rng r;
        fg_rng_seed_stream(&r, 1234, (uint64_t)(_i * 16 + trial));
        memset(c.in, 0, sizeof c.in);
        setup(&c, &r);
        /* The output's size fixes R; run the op once without gradients. */
        fg_set_grad_enabled(g, 0);
        fg_var *y = apply(g, &c);
        c.r_n = fg_numel(&y->t);
        fg_set_grad_enabled(g, 1);
        fg_graph_reset(g);
        c.r = malloc(c.r_n * sizeof(float));
        fg_rng_uniform(&r, c.r, c.r_n);
        for (size_t i = 0; i < c.r_n; i++) c.r[i] = 2.0f * c.r[i] - 1.0f;
        int n_in = 0;
        while (n_in < MAX_IN && c.in[n_in]) n_in++;
        ck_assert_int_eq(n_in, oc->n_in);
        fg_gradcheck_result res;
        int ok = fg_gradcheck(g, weighted_loss, &c, c.in, n_in, 1e-2, oc->atol, oc->rtol, &res);
        printf("%-28s trial %d: %4d elements, max abs err %.2e, max rel err %.2e\n", oc->name,
               trial, res.n_checked, res.max_abs_err, res.max_rel_err);
        ck_assert_msg(ok, "%s: %d of %d gradient elements out of tolerance (atol %g, rtol %g), "
                      "max abs err %g, worst at input %d element %d",
                      oc->name, res.n_failed, res.n_checked, oc->atol, oc->rtol, res.max_abs_err,
                      res.worst_leaf, res.worst_index);
        ck_assert_int_gt(res.n_checked, 0);
        for (int i = 0; i < n_in; i++) fg_leaf_free(c.in[i]);
        free(c.r);
    }
    fg_graph_destroy(g);
}
END_TEST

/* ------------------------------------------------------------- forward values */

START_TEST(test_forward_values)
{
    fg_graph *g = fg_graph_create();
    int s[4] = {1, 2, 1, 2};
    float xd[4] = {1, -2, 3, 0.5f};
    fg_var *x = fg_const_wrap(g, xd, 4, s);
    ck_assert_float_eq_tol(fg_sum(g, x)->t.data[0], 2.5f, 1e-6f);
    fg_var *pc = fg_sum_per_channel(g, x);
    ck_assert_float_eq_tol(pc->t.data[0], -1.0f, 1e-6f);
    ck_assert_float_eq_tol(pc->t.data[1], 3.5f, 1e-6f);
    fg_var *ls = fg_log_sigmoid(g, fg_const_scalar(g, -100.0f));
    ck_assert_float_eq_tol(ls->t.data[0], -100.0f, 1e-4f);
    /* log N(0 | 0, 1) = -0.5 log(2 pi) per element */
    int s1[2] = {1, 3};
    fg_var *z = fg_const(g, 2, s1);
    fg_var *lp = fg_gaussian_logp(g, z, fg_const(g, 2, s1), fg_const(g, 2, s1));
    ck_assert_double_eq_tol(lp->t.data[0], -1.5 * log(2 * 3.14159265358979), 1e-5);
    /* cross-entropy of uniform logits over 4 classes is log 4 */
    int s2[2] = {1, 4};
    int label = 2;
    fg_var *ce = fg_log_softmax_cross_entropy(g, fg_const(g, 2, s2), &label);
    ck_assert_double_eq_tol(ce->t.data[0], log(4.0), 1e-6);
    /* [[2, 1], [1, 1]] has determinant 1 and inverse [[1, -1], [-1, 2]] */
    int s3[2] = {2, 2};
    float md[4] = {2, 1, 1, 1};
    fg_var *m = fg_const_wrap(g, md, 2, s3);
    ck_assert_double_eq_tol(fg_slogdet(g, m)->t.data[0], 0.0, 1e-6);
    fg_var *mi = fg_inverse(g, m);
    float expect[4] = {1, -1, -1, 2};
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(mi->t.data[i], expect[i], 1e-6f);
    fg_graph_destroy(g);
}
END_TEST

/* A custom op whose rule records its piece again in a segment, walks only
 * that segment and rewinds it: gradients equal those of the same ops
 * recorded directly, whichever of its outputs the loss uses, and the tape
 * and the arena are back where the rule found them. */
typedef struct custom_ctx {
    fg_var *x, *w;
    size_t nodes_after, used_after;
    int calls;
} custom_ctx;

static void custom_rule(fg_graph *g, void *vctx, fg_var **outs, int n)
{
    custom_ctx *c = vctx;
    ck_assert_int_eq(n, 2);
    c->calls++;
    size_t nodes = fg_graph_nodes(g), used = fg_arena_used(fg_graph_arena(g));
    fg_graph_mark m = fg_graph_mark_now(g);
    int was = fg_set_grad_enabled(g, 1);
    fg_var *y = fg_mul(g, c->x, c->w), *e = fg_exp(g, c->w);
    fg_var *vars[2] = {y, e};
    const float *seeds[2] = {outs[0]->grad, outs[1]->grad};
    fg_backward_since(g, &m, vars, seeds, 2);
    fg_set_grad_enabled(g, was);
    fg_graph_rewind(g, &m);
    c->nodes_after = fg_graph_nodes(g) - nodes;
    c->used_after = fg_arena_used(fg_graph_arena(g)) - used;
}

START_TEST(test_custom_op_segments)
{
    int s[1] = {3};
    const float xv[3] = {0.5f, -1.25f, 2.0f}, wv[3] = {0.3f, 0.7f, -0.4f};
    fg_graph *g = fg_graph_create();
    fg_var *w = fg_leaf_new(1, s, 1);
    memcpy(w->t.data, wv, sizeof wv);
    for (int use_first = 0; use_first < 2; use_first++) {
        /* recorded directly */
        fg_graph_reset(g);
        fg_zero_grad(w);
        fg_var *x = fg_const_wrap(g, (float *)xv, 1, s);
        fg_var *e = fg_sum(g, fg_exp(g, w));
        fg_var *loss = use_first ? fg_add(g, fg_sum(g, fg_square(g, fg_mul(g, x, w))), e) : e;
        fg_backward(g, loss);
        float want[3];
        memcpy(want, w->grad, sizeof want);
        double want_loss = loss->t.data[0];
        /* through the custom op */
        fg_graph_reset(g);
        fg_zero_grad(w);
        custom_ctx c = {fg_const_wrap(g, (float *)xv, 1, s), w, 1, 1, 0};
        int was = fg_set_grad_enabled(g, 0);
        fg_var *outs[2] = {fg_mul(g, c.x, w), fg_exp(g, w)};
        fg_set_grad_enabled(g, was);
        fg_custom_op(g, "test custom", outs, 2, custom_rule, &c);
        e = fg_sum(g, outs[1]);
        loss = use_first ? fg_add(g, fg_sum(g, fg_square(g, outs[0])), e) : e;
        ck_assert_double_eq(loss->t.data[0], want_loss);
        fg_backward(g, loss);
        ck_assert_int_eq(c.calls, 1);
        ck_assert_uint_eq(c.nodes_after, 0);
        ck_assert_uint_eq(c.used_after, 0);
        for (int i = 0; i < 3; i++)
            ck_assert_float_eq(w->grad[i], want[i]);
    }
    /* without gradients nothing is recorded */
    fg_graph_reset(g);
    int was = fg_set_grad_enabled(g, 0);
    fg_var *o[1] = {fg_exp(g, w)};
    fg_custom_op(g, "test custom", o, 1, custom_rule, NULL);
    ck_assert_uint_eq(fg_graph_nodes(g), 0);
    fg_set_grad_enabled(g, was);
    fg_leaf_free(w);
    fg_graph_destroy(g);
}
END_TEST

/* A (1, 1, 2, 4) plane: two 2x2 windows, hand-computed results. A tie in
 * the second window sends the gradient to its first maximum only. */
/* A graph that keeps leaf gradients leaves the leaves' own buffers alone
 * until told to add its own, starts them from zero each step, and keeps
 * them through a rewind of its arena (they live on the heap). */
START_TEST(test_kept_leaf_grads)
{
    const int s[1] = {5};
    fg_var *w = fg_leaf_new(1, s, 1);
    float x[5] = {0.5f, -1.0f, 2.0f, 3.0f, -0.25f};
    for (int i = 0; i < 5; i++)
        w->t.data[i] = (float)i + 1.0f;
    fg_graph *g = fg_graph_create();
    fg_graph_keep_leaf_grads(g, 1);
    for (int step = 1; step <= 2; step++) {
        fg_graph_mark m = fg_graph_mark_now(g);
        fg_backward(g, fg_sum(g, fg_mul(g, w, fg_const_wrap(g, x, 1, s))));
        for (int i = 0; i < 5; i++)
            ck_assert_float_eq(w->grad[i], (step - 1) * x[i]);
        fg_graph_rewind(g, &m);
        float *junk = fg_arena_alloc(fg_graph_arena(g), 4096 * sizeof(float));
        for (int i = 0; i < 4096; i++)
            junk[i] = 99.0f;
        fg_graph_add_leaf_grads(g);
        for (int i = 0; i < 5; i++)
            ck_assert_float_eq(w->grad[i], step * x[i]);
        fg_graph_reset(g);
    }
    /* A step that does not reach w adds nothing. */
    fg_graph_add_leaf_grads(g);
    for (int i = 0; i < 5; i++)
        ck_assert_float_eq(w->grad[i], 2 * x[i]);
    fg_graph_destroy(g);
    fg_leaf_free(w);
}
END_TEST

START_TEST(test_pool_values)
{
    fg_graph *g = fg_graph_create();
    int s[4] = {1, 1, 2, 4};
    fg_var *x = fg_leaf_new(4, s, 1);
    const float xd[8] = {1, 4, 7, 7,
                         -2, 3, 0, 5};
    memcpy(x->t.data, xd, sizeof xd);
    fg_var *mx = fg_max_pool2x2(g, x);
    ck_assert_int_eq(mx->t.shape[2], 1);
    ck_assert_int_eq(mx->t.shape[3], 2);
    ck_assert_float_eq(mx->t.data[0], 4.0f);
    ck_assert_float_eq(mx->t.data[1], 7.0f);
    float seed[2] = {2.0f, -1.0f};
    fg_backward_with(g, mx, seed);
    const float gmax[8] = {0, 2, -1, 0, 0, 0, 0, 0};
    for (int i = 0; i < 8; i++) ck_assert_float_eq(x->grad[i], gmax[i]);
    fg_graph_reset(g);
    fg_zero_grad(x);
    fg_var *av = fg_avg_pool2x2(g, x);
    ck_assert_float_eq_tol(av->t.data[0], 1.5f, 1e-6f);
    ck_assert_float_eq_tol(av->t.data[1], 4.75f, 1e-6f);
    fg_backward_with(g, av, seed);
    const float gavg[8] = {0.5f, 0.5f, -0.25f, -0.25f, 0.5f, 0.5f, -0.25f, -0.25f};
    for (int i = 0; i < 8; i++) ck_assert_float_eq_tol(x->grad[i], gavg[i], 1e-7f);
    fg_graph_reset(g);
    fg_var *gl = fg_global_avg_pool(g, x);
    ck_assert_int_eq(gl->t.ndim, 2);
    ck_assert_float_eq_tol(gl->t.data[0], 25.0f / 8.0f, 1e-6f);
    fg_leaf_free(x);
    fg_graph_destroy(g);
}
END_TEST

/* ------------------------------------------------------------- fused ops */

/* Values and gradients of x, bias and logs under sum(y * r). */
typedef struct affine_relu_out { float *y, *gx, *gb, *gl; } affine_relu_out;

static void affine_relu_run(int fused, fg_var *x, fg_var *b, fg_var *l, float *r,
                            affine_relu_out *o)
{
    fg_graph *g = fg_graph_create();
    fg_zero_grad(x); fg_zero_grad(b); fg_zero_grad(l);
    fg_var *y = fused ? fg_channel_affine_relu(g, x, b, l)
                      : fg_relu(g, fg_mul_channel(g, fg_add_channel(g, x, b), fg_exp(g, l)));
    ck_assert_uint_eq(fg_graph_nodes(g), fused ? 1 : 4);
    size_t n = fg_numel(&x->t), C = fg_numel(&b->t);
    memcpy(o->y, y->t.data, n * sizeof(float));
    fg_backward(g, fg_sum(g, fg_mul(g, y, fg_const_wrap(g, r, y->t.ndim, y->t.shape))));
    memcpy(o->gx, x->grad, n * sizeof(float));
    memcpy(o->gb, b->grad, C * sizeof(float));
    memcpy(o->gl, l->grad, C * sizeof(float));
    fg_graph_destroy(g);
}

static affine_relu_out affine_relu_alloc(size_t n, size_t C)
{
    affine_relu_out o = {malloc(n * sizeof(float)), malloc(n * sizeof(float)),
                         malloc(C * sizeof(float)), malloc(C * sizeof(float))};
    return o;
}

static void affine_relu_free(affine_relu_out *o)
{
    free(o->y); free(o->gx); free(o->gb); free(o->gl);
}

/* Largest |a - b| over n values relative to the largest |b| (at least 1). */
static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0, m = 1.0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / m;
}

/* fg_channel_affine_relu against the unfused relu(mul_channel(add_channel(
 * x, b), exp(logs))) it replaces: the same values and gradients to float
 * rounding, on 1 and 2 threads. The second shape is above
 * FG_PARALLEL_THRESHOLD, so 2 threads do split it; there the fused result
 * must not change at all with the thread count, since its per-channel sums
 * run on one thread each. */
START_TEST(test_channel_affine_relu_matches_unfused)
{
    const int shapes[2][4] = {{3, 5, 4, 4}, {5, 32, 16, 16}};
    const int threads = fg_get_threads();
    for (int k = 0; k < 2; k++) {
        const int *s = shapes[k], C = s[1];
        fg_rng r;
        fg_rng_seed(&r, 41 + (uint64_t)k);
        fg_var *x = fg_test_uniform_leaf(&r, 4, s, -1, 1);
        fg_var *b = fg_test_uniform_leaf(&r, 1, &C, -0.5f, 0.5f);
        fg_var *l = fg_test_uniform_leaf(&r, 1, &C, -0.5f, 0.5f);
        size_t n = fg_numel(&x->t);
        float *w = malloc(n * sizeof(float));
        fg_rng_uniform(&r, w, n);
        for (size_t i = 0; i < n; i++) w[i] = 2.0f * w[i] - 1.0f;
        affine_relu_out fused[2], ref = affine_relu_alloc(n, (size_t)C);
        size_t negative = 0;
        for (int t = 0; t < 2; t++) {
            fg_set_threads(t + 1);
            fused[t] = affine_relu_alloc(n, (size_t)C);
            affine_relu_run(1, x, b, l, w, &fused[t]);
            affine_relu_run(0, x, b, l, w, &ref);
            double dy = max_rel_diff(fused[t].y, ref.y, n);
            double dx = max_rel_diff(fused[t].gx, ref.gx, n);
            double db = max_rel_diff(fused[t].gb, ref.gb, (size_t)C);
            double dl = max_rel_diff(fused[t].gl, ref.gl, (size_t)C);
            printf("channel_affine_relu (%d, %d, %d, %d), %d thread(s): y %.1e, gx %.1e, "
                   "gbias %.1e, glogs %.1e\n", s[0], s[1], s[2], s[3], t + 1, dy, dx, db, dl);
            ck_assert_double_le(dy, 1e-5);
            ck_assert_double_le(dx, 1e-5);
            ck_assert_double_le(db, 1e-5);
            ck_assert_double_le(dl, 1e-5);
        }
        for (size_t i = 0; i < n; i++) negative += fused[0].y[i] == 0.0f;
        ck_assert_uint_gt(negative, n / 10);   /* the mask is exercised */
        ck_assert_uint_lt(negative, n - n / 10);
        ck_assert_mem_eq(fused[0].y, fused[1].y, n * sizeof(float));
        ck_assert_mem_eq(fused[0].gx, fused[1].gx, n * sizeof(float));
        ck_assert_mem_eq(fused[0].gb, fused[1].gb, (size_t)C * sizeof(float));
        ck_assert_mem_eq(fused[0].gl, fused[1].gl, (size_t)C * sizeof(float));
        for (int t = 0; t < 2; t++) affine_relu_free(&fused[t]);
        affine_relu_free(&ref);
        free(w);
        fg_leaf_free(x); fg_leaf_free(b); fg_leaf_free(l);
    }
    fg_set_threads(threads);
}
END_TEST

/* fg_conv2d_cm_affine_relu against fg_conv2d_cm followed by
 * fg_channel_affine_relu: the same operations in the same order, so the
 * same bits in the output and in all four gradients, on 1 and 2 threads,
 * with and without a gradient for the input; and one tensor fewer on
 * the tape. */
static void conv_affine_relu_run(int fused, fg_var *const *in, int N, const float *r,
                                 float **out)
{
    fg_graph *g = fg_graph_create();
    for (int i = 0; i < 4; i++) fg_zero_grad(in[i]);
    fg_var *h = fg_to_channel_major(g, in[0]);
    fg_var *y = fused ? fg_conv2d_cm_affine_relu(g, h, in[1], in[2], in[3], N)
                      : fg_channel_affine_relu(g, fg_conv2d_cm(g, h, in[1], NULL, N), in[2], in[3]);
    /* the layout change is on the tape only when the input wants a gradient */
    ck_assert_uint_eq(fg_graph_nodes(g), (size_t)((fused ? 1 : 2) + in[0]->requires_grad));
    memcpy(out[0], y->t.data, fg_numel(&y->t) * sizeof(float));
    fg_backward(g, fg_sum(g, fg_mul(g, y, fg_const_wrap(g, (float *)r, y->t.ndim, y->t.shape))));
    for (int i = 0; i < 4; i++)
        memcpy(out[i + 1], in[i]->grad, fg_numel(&in[i]->t) * sizeof(float));
    fg_graph_destroy(g);
}

START_TEST(test_conv_affine_relu_matches_unfused)
{
    const int N = 4, Ci = 6, Co = 40, H = 12, W = 12;   /* above the parallel threshold */
    const int threads = fg_get_threads();
    fg_rng r;
    fg_rng_seed(&r, 77);
    int xs[4] = {N, Ci, H, W}, ws[4] = {Co, Ci, 3, 3};
    fg_var *in[4] = {fg_test_uniform_leaf(&r, 4, xs, -1, 1), fg_test_uniform_leaf(&r, 4, ws, -0.3f, 0.3f),
                     fg_test_uniform_leaf(&r, 1, &Co, -0.5f, 0.5f), fg_test_uniform_leaf(&r, 1, &Co, -0.5f, 0.5f)};
    size_t ny = (size_t)N * Co * H * W, sizes[5] = {ny, fg_numel(&in[0]->t),
                                                    fg_numel(&in[1]->t), Co, Co};
    float *w = malloc(ny * sizeof(float));
    fg_rng_uniform(&r, w, ny);
    for (size_t i = 0; i < ny; i++) w[i] = 2.0f * w[i] - 1.0f;
    for (int input_grad = 1; input_grad >= 0; input_grad--) {
        in[0]->requires_grad = input_grad;
        for (int t = 1; t <= 2; t++) {
            fg_set_threads(t);
            float *a[5], *b[5];
            for (int i = 0; i < 5; i++) {
                a[i] = calloc(sizes[i], sizeof(float));
                b[i] = calloc(sizes[i], sizeof(float));
            }
            conv_affine_relu_run(1, in, N, w, a);
            conv_affine_relu_run(0, in, N, w, b);
            size_t zeros = 0;
            for (size_t i = 0; i < ny; i++) zeros += a[0][i] == 0.0f;
            ck_assert_uint_gt(zeros, ny / 10);   /* the mask is exercised */
            ck_assert_uint_lt(zeros, ny - ny / 10);
            for (int i = 0; i < 5; i++) {
                if (i == 1 && !input_grad) continue;
                ck_assert_msg(!memcmp(a[i], b[i], sizes[i] * sizeof(float)),
                              "output %d differs (threads %d, input grad %d)", i, t, input_grad);
            }
            for (int i = 0; i < 5; i++) { free(a[i]); free(b[i]); }
        }
    }
    fg_set_threads(threads);
    free(w);
    for (int i = 0; i < 4; i++) fg_leaf_free(in[i]);
}
END_TEST

/* ------------------------------------------------------------- the tape */

START_TEST(test_no_grad_records_nothing)
{
    fg_graph *g = fg_graph_create();
    int s[1] = {5};
    fg_var *p = fg_leaf_new(1, s, 1);
    fg_set_grad_enabled(g, 0);
    fg_var *y = fg_sum(g, fg_exp(g, p));
    ck_assert_uint_eq(fg_graph_nodes(g), 0);
    ck_assert_int_eq(y->requires_grad, 0);
    fg_set_grad_enabled(g, 1);
    y = fg_sum(g, fg_exp(g, p));
    ck_assert_uint_eq(fg_graph_nodes(g), 2);
    ck_assert_int_eq(y->requires_grad, 1);
    fg_leaf_free(p);
    fg_graph_destroy(g);
}
END_TEST

/* A variable used twice receives the sum of both paths; two backward passes
 * without zeroing accumulate. */
START_TEST(test_accumulation)
{
    fg_graph *g = fg_graph_create();
    int s[1] = {3};
    fg_var *p = fg_leaf_new(1, s, 1);
    p->t.data[0] = 1; p->t.data[1] = 2; p->t.data[2] = -3;
    fg_var *y = fg_sum(g, fg_add(g, fg_mul(g, p, p), fg_scale(g, p, 3.0f)));
    fg_backward(g, y);
    for (int i = 0; i < 3; i++) ck_assert_float_eq_tol(p->grad[i], 2 * p->t.data[i] + 3, 1e-6f);
    fg_graph_reset(g);
    y = fg_sum(g, fg_scale(g, p, 2.0f));
    fg_backward(g, y);
    for (int i = 0; i < 3; i++) ck_assert_float_eq_tol(p->grad[i], 2 * p->t.data[i] + 5, 1e-6f);
    fg_zero_grad(p);
    ck_assert_float_eq(p->grad[0], 0.0f);
    fg_leaf_free(p);
    fg_graph_destroy(g);
}
END_TEST

/* The checker must be able to fail: a loss whose recorded graph differs
 * from the function it evaluates (the gradient of 2x against values of 3x). */
static fg_var *inconsistent_loss(fg_graph *g, void *p)
{
    fg_var *x = p;
    return fg_sum(g, fg_scale(g, x, fg_grad_enabled(g) ? 2.0f : 3.0f));
}

START_TEST(test_gradcheck_detects_wrong_gradient)
{
    fg_graph *g = fg_graph_create();
    int s[1] = {4};
    fg_var *x = fg_leaf_new(1, s, 1);
    fg_gradcheck_result res;
    ck_assert_int_eq(fg_gradcheck(g, inconsistent_loss, x, &x, 1, 1e-2, 1e-3, 1e-3, &res), 0);
    ck_assert_int_eq(res.n_failed, 4);
    ck_assert_double_eq_tol(res.max_abs_err, 1.0, 1e-3);
    fg_rng r;
    fg_rng_seed(&r, 7);
    double an, num;
    double rel = fg_gradcheck_direction(g, inconsistent_loss, x, &x, 1, 1e-2, &r, &an, &num);
    ck_assert_double_gt(rel, 0.3);
    rel = fg_gradcheck_direction_mixed(g, inconsistent_loss, x, &x, 1, 1e-2, &r, &an, &num);
    ck_assert_double_gt(rel, 0.3);
    fg_leaf_free(x);
    fg_graph_destroy(g);
}
END_TEST

/* A small convolutional model's whole gradient along random directions. */
typedef struct tiny_model { fg_var *w1, *b1, *w2; float x[2 * 2 * 6 * 6]; } tiny_model;

static fg_var *tiny_loss(fg_graph *g, void *p)
{
    tiny_model *m = p;
    int s[4] = {2, 2, 6, 6};
    fg_var *x = fg_const_wrap(g, m->x, 4, s);
    fg_var *h = fg_relu(g, fg_conv2d(g, x, m->w1, m->b1));
    fg_var *z = fg_conv2d(g, h, m->w2, NULL);
    fg_var *zero = fg_const(g, 4, z->t.shape);
    return fg_neg(g, fg_mean(g, fg_gaussian_logp(g, fg_squeeze2d(g, z),
                                                fg_squeeze2d(g, zero), fg_squeeze2d(g, zero))));
}

START_TEST(test_gradcheck_direction_model)
{
    fg_rng r;
    fg_rng_seed(&r, 99);
    tiny_model m;
    int s1[4] = {4, 2, 3, 3}, sb[1] = {4}, s2[4] = {2, 4, 1, 1};
    m.w1 = fg_test_uniform_leaf(&r, 4, s1, -0.5f, 0.5f);
    m.b1 = fg_test_uniform_leaf(&r, 1, sb, -0.2f, 0.2f);
    m.w2 = fg_test_uniform_leaf(&r, 4, s2, -0.5f, 0.5f);
    fg_rng_uniform(&r, m.x, sizeof m.x / sizeof m.x[0]);
    fg_var *leaves[3] = {m.w1, m.b1, m.w2};
    fg_graph *g = fg_graph_create();
    for (int k = 0; k < 5; k++) {
        double an, num;
        /* The loss is about 130 (dominated by the Gaussian's constant), so
         * float rounding of f is 1e-5: a step of 3e-2 along the unit
         * direction keeps that below 1e-3 relative. */
        double rel = fg_gradcheck_direction(g, tiny_loss, &m, leaves, 3, 3e-2, &r, &an, &num);
        ck_assert_msg(rel < 1e-2, "direction %d: analytic %g numeric %g", k, an, num);
        rel = fg_gradcheck_direction_mixed(g, tiny_loss, &m, leaves, 3, 3e-2, &r, &an, &num);
        ck_assert_msg(rel < 1e-2, "mixed direction %d: analytic %g numeric %g", k, an, num);
    }
    for (int i = 0; i < 3; i++) fg_leaf_free(leaves[i]);
    fg_graph_destroy(g);
}
END_TEST

static long resident_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = -1;
    fclose(f);
    return rss * 4;
}

/* 1,000 training-like steps: the arena's reserve and the process's resident
 * memory stop growing after the first steps. */
START_TEST(test_flat_memory)
{
    fg_rng r;
    fg_rng_seed(&r, 5);
    tiny_model m;
    int s1[4] = {4, 2, 3, 3}, sb[1] = {4}, s2[4] = {2, 4, 1, 1};
    m.w1 = fg_test_uniform_leaf(&r, 4, s1, -0.5f, 0.5f);
    m.b1 = fg_test_uniform_leaf(&r, 1, sb, -0.2f, 0.2f);
    m.w2 = fg_test_uniform_leaf(&r, 4, s2, -0.5f, 0.5f);
    fg_rng_uniform(&r, m.x, sizeof m.x / sizeof m.x[0]);
    fg_graph *g = fg_graph_create();
    size_t reserved_after_warmup = 0;
    long rss_after_warmup = 0;
    for (int step = 0; step < 1000; step++) {
        fg_zero_grad(m.w1); fg_zero_grad(m.b1); fg_zero_grad(m.w2);
        fg_backward(g, tiny_loss(g, &m));
        fg_k_axpy(fg_numel(&m.w1->t), -1e-3f, m.w1->grad, m.w1->t.data);
        fg_graph_reset(g);
        if (step == 10) {
            reserved_after_warmup = fg_arena_reserved(fg_graph_arena(g));
            rss_after_warmup = resident_kb();
        }
    }
    ck_assert_uint_eq(fg_arena_reserved(fg_graph_arena(g)), reserved_after_warmup);
#ifndef __SANITIZE_ADDRESS__
    /* AddressSanitizer keeps freed blocks in quarantine instead of reusing
     * them, so blocks that the libraries below allocate and free per call
     * raise resident memory until the quarantine fills (with
     * ASAN_OPTIONS=quarantine_size_mb=0 it stays flat). The arena check
     * above holds in both builds. */
    long growth = resident_kb() - rss_after_warmup;
    ck_assert_msg(growth < 1024, "resident memory grew by %ld kB over 990 steps", growth);
#else
    (void)rss_after_warmup;
#endif
    fg_leaf_free(m.w1); fg_leaf_free(m.b1); fg_leaf_free(m.w2);
    fg_graph_destroy(g);
}
END_TEST

/* Above the parallel threshold the layout ops split their planes between
 * threads: values and gradients on two threads equal those on one, bit for
 * bit, and the planes a direct loop copies. y = concat(permute(x[:, 1:5]),
 * odd channels of x), loss = sum(y w) with distinct w, so each plane of
 * x's gradient tells where it went. */
static void layout_chain(int threads, const fg_var *w, fg_var *x, float *y_out, float *gx_out)
{
    static const int perm[4] = {2, 0, 3, 1};
    fg_set_threads(threads);
    fg_graph *g = fg_graph_create();
    fg_zero_grad(x);
    fg_var *y = fg_channel_concat(g, fg_channel_permute(g, fg_channel_slice(g, x, 1, 5), perm),
                                  fg_channel_odd(g, x));
    fg_var *wv = fg_leaf_new(w->t.ndim, w->t.shape, 0);
    memcpy(wv->t.data, w->t.data, fg_numel(&w->t) * sizeof(float));
    fg_backward(g, fg_sum(g, fg_mul(g, y, wv)));
    memcpy(y_out, y->t.data, fg_numel(&y->t) * sizeof(float));
    memcpy(gx_out, x->grad, fg_numel(&x->t) * sizeof(float));
    fg_leaf_free(wv);
    fg_graph_destroy(g);
}

START_TEST(test_layout_ops_threads)
{
    enum { N = 8, C = 6, H = 40, W = 40, CY = 7 };
    const size_t HW = (size_t)H * W, nx = (size_t)N * C * HW, ny = (size_t)N * CY * HW;
    ck_assert_uint_gt((size_t)N * 4 * HW, FG_PARALLEL_THRESHOLD);
    const int saved = fg_get_threads();
    fg_rng r;
    fg_rng_seed(&r, 11);
    int sx[4] = {N, C, H, W}, sy[4] = {N, CY, H, W};
    fg_var *x = fg_test_uniform_leaf(&r, 4, sx, -1.0f, 1.0f);
    fg_var *w = fg_test_uniform_leaf(&r, 4, sy, -1.0f, 1.0f);
    float *y1 = malloc(ny * sizeof(float)), *y2 = malloc(ny * sizeof(float));
    float *g1 = malloc(nx * sizeof(float)), *g2 = malloc(nx * sizeof(float));
    ck_assert(y1 && y2 && g1 && g2);
    layout_chain(1, w, x, y1, g1);
    layout_chain(2, w, x, y2, g2);
    ck_assert_int_eq(memcmp(y1, y2, ny * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(g1, g2, nx * sizeof(float)), 0);
    /* Output channel j of image n comes from input channel from[j]. */
    static const int from[CY] = {3, 1, 4, 2, 1, 3, 5};
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const float *xp = x->t.data + ((size_t)n * C + c) * HW;
            const float *gp = g2 + ((size_t)n * C + c) * HW;
            for (size_t i = 0; i < HW; i++) {
                float want = 0.0f;
                for (int j = 0; j < CY; j++)
                    if (from[j] == c)
                        want += w->t.data[((size_t)n * CY + j) * HW + i];
                ck_assert_float_eq(gp[i], want);
            }
            for (int j = 0; j < CY; j++)
                if (from[j] == c)
                    ck_assert_int_eq(memcmp(y2 + ((size_t)n * CY + j) * HW, xp,
                                            HW * sizeof(float)), 0);
        }
    free(y1); free(y2); free(g1); free(g2);
    fg_leaf_free(x);
    fg_leaf_free(w);
    fg_set_threads(saved);
}
END_TEST

/* A permutation names every channel once: a repeated index would make two
 * planes of the backward add into one, and is refused. */
START_TEST(test_channel_permute_refuses_repeats)
{
    fg_graph *g = fg_graph_create();
    int s[4] = {1, 3, 2, 2};
    fg_var *x = fg_leaf_new(4, s, 1);
    static const int perm[3] = {0, 2, 0};
    fg_channel_permute(g, x, perm);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("autograd");
    TCase *tc = fg_tcase("op_gradients");
    tcase_add_loop_test(tc, test_op_gradient, 0, N_OPS);
    suite_add_tcase(s, tc);
    tc = fg_tcase("fused_ops");
    tcase_add_test(tc, test_channel_affine_relu_matches_unfused);
    tcase_add_test(tc, test_conv_affine_relu_matches_unfused);
    suite_add_tcase(s, tc);
    tc = fg_tcase("tape");
    tcase_add_test(tc, test_forward_values);
    tcase_add_test(tc, test_pool_values);
    tcase_add_test(tc, test_no_grad_records_nothing);
    tcase_add_test(tc, test_accumulation);
    tcase_add_test(tc, test_gradcheck_detects_wrong_gradient);
    tcase_add_test(tc, test_gradcheck_direction_model);
    tcase_add_test(tc, test_flat_memory);
    tcase_add_test(tc, test_custom_op_segments);
    tcase_add_test(tc, test_kept_leaf_grads);
    suite_add_tcase(s, tc);
    tc = fg_tcase("layout_threads");
    tcase_add_test(tc, test_layout_ops_threads);
    tcase_add_test_raise_signal(tc, test_channel_permute_refuses_repeats, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}
