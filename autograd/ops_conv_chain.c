/* conv_chain: a chain of convolutions and per-channel stages (a coupling's
 * conditioner network) run on a chunk of whole images at a time.
 *
 * Layer by layer over the whole batch, every GEMM is split between the
 * threads (which meet at barriers inside it) and each activation leaves
 * the cache before the next layer reads it. Here the batch is cut into
 * chunks of whole images and each chunk goes through every stage before
 * the next one starts: its activations stay in cache from one stage to
 * the next, and the threads take whole chunks, each GEMM running on its
 * thread without synchronization. The chunks depend on the image size
 * only, never on the thread count, and every sum over chunks (the
 * parameter gradients) is taken in chunk order after the parallel part,
 * so results do not depend on the number of threads.
 *
 * Inside a chunk the stages work in channel-major layout (channel c of the
 * chunk is one row of its columns), so the input's reorder from (N, C, H,
 * W) and the output's back happen per chunk, in cache. Each convolution is
 * the channel-major one of tensor/conv_cm.c on the chunk's columns, and the
 * per-channel stages are the kernels of the existing ops, so every column
 * is computed as fg_conv2d_cm, fg_channel_affine_relu and the others
 * compute it. A per-channel stage right after a convolution runs as the
 * convolution's epilogue (fg_row_affine, the same arithmetic) where the
 * boundary between them is not kept: the products store the stage's
 * output, and the convolution's own output is never written.
 *
 * With gradients, what the backward reads is kept in the graph arena: a
 * stage boundary is kept when the stage after it needs its input
 * (convolutions for their weight gradient, the channel scale for its
 * logs) or the stage before it needs its output (the affine and ReLU
 * stages, whose mask and logs gradient come from the output). The op's
 * input and output are never copied: the backward reads them back from x
 * and y. Without gradients nothing is kept: a chunk's intermediates live
 * in its thread's scratch only.
 *
 * A convolution stage may also read a condition vector per image (a
 * conditional flow's label), as if it were repeated over the image as
 * channels after x's: the weights' last channels read it. Its part of the
 * output is added in closed form after the product with x's columns
 * (tensor/conv_constant.c), and its weights' gradient (and the
 * condition's) come from the output gradient's sums per tap. */
#include "autograd/internal.h"
#include "tensor/parallel_internal.h"
#include "tensor/conv_internal.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* 784 columns: 4 images of 14x14, 16 of 7x7. Chunks of 392 to 1568 columns
 * train Glow at about the same rate; at 196 a chunk's products are too small
 * to run well, and at 3136 a 64-image batch of 7x7 is one chunk, which one
 * thread runs alone (BENCHMARKS.md, "the coupling networks chunk by
 * chunk"). */
#define DEFAULT_CHUNK_COLUMNS 784

static int chunk_columns = DEFAULT_CHUNK_COLUMNS;
static pthread_once_t chunk_columns_once = PTHREAD_ONCE_INIT;

/* FLOWGRAD_CHAIN_COLUMNS is a tuning knob, read once; a malformed value
 * keeps the default. */
static void read_chunk_columns(void)
{
    const char *s = getenv("FLOWGRAD_CHAIN_COLUMNS");
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (s && *s && *end == '\0' && v > 0 && v <= (1L << 24))
        chunk_columns = (int)v;
}

int fg_conv_chain_chunk_images(int P)
{
    pthread_once(&chunk_columns_once, read_chunk_columns);
    int n = P > 0 ? chunk_columns / P : 1;
    return n > 0 ? n : 1;
}

typedef struct chain {
    int n;                  /* stages */
    fg_chain_stage *st;
    int *ch;                /* channels at boundary b = 0..n (b: before stage b) */
    int most;               /* the largest of them */
    float **keep;           /* boundary b's values for the backward, or NULL */
    float **scale;          /* stage s: e^logs or e^(factor logs), or NULL */
    float *zeros, *ones;    /* a plain ReLU is the affine ReLU with these */
    float **dcond;          /* stage s: its condition's gradient (N, Cc), or NULL */
    float **mask;           /* stage s with a condition: where each tap lands inside
                               the image (fg_conv_constant_mask), or NULL */
    int N, H, W, P, per_chunk, n_chunks;
    int full_chunk;   /* images of a full chunk, even when the batch has fewer */
    fg_var *x, *y;
} chain;

static int needs_input(fg_chain_kind k)
{
    return k == FG_CHAIN_CONV || k == FG_CHAIN_CHANNEL_SCALE_EXP;
}

static int needs_output(fg_chain_kind k)
{
    return k == FG_CHAIN_AFFINE_RELU || k == FG_CHAIN_AFFINE || k == FG_CHAIN_RELU;
}

static void chunk_range(const chain *c, int j, int *n0, int *nc)
{
    *n0 = j * c->per_chunk;
    *nc = c->N - *n0 < c->per_chunk ? c->N - *n0 : c->per_chunk;
}

static int grad_of(const fg_var *v)
{
    return v && v->requires_grad;
}

/* ------------------------------------------------------------- checks */
/* The condition's weights sit beside x's in each row (fg_conv_cm_*_work's
 * ldw), which the narrow path, with its rearranged weights, does not take. */
int fg_conv_chain_takes_condition(int in, int out, int k)
{
    return !fg_conv_cm_is_narrow(in, out, k);
}

static int stage_out_channels(const fg_chain_stage *s, int in, int i)
{
    char sv[FG_SHAPE_STR_LEN];
    switch (s->kind) {
    case FG_CHAIN_CONV: {
        const fg_var *w = s->weight;
        const int cc = s->cond ? s->cond->t.shape[1] : 0;
        FG_CHECK(w && w->t.ndim == 4 && w->t.shape[1] == in + cc &&
                 w->t.shape[2] == w->t.shape[3] && w->t.shape[2] % 2 == 1, "conv_chain",
                 "stage %d: weight %s, expected (Co, %d, k, k) with odd k", i,
                 w ? fg_shape_str(&w->t, sv, sizeof sv) : "missing", in + cc);
        FG_CHECK(!s->cond || fg_conv_chain_takes_condition(in, w->t.shape[0], w->t.shape[2]),
                 "conv_chain", "stage %d: a condition reaches a %dx%d convolution of %d to %d "
                 "channels; one that narrows the channels takes none", i, w->t.shape[2],
                 w->t.shape[2], in, w->t.shape[0]);
        FG_CHECK(!s->bias || fg_var_numel(s->bias) == (size_t)w->t.shape[0], "conv_chain",
                 "stage %d: bias has %zu values for %d output channels", i,
                 s->bias ? fg_var_numel(s->bias) : 0, w->t.shape[0]);
        return w->t.shape[0];
    }
    case FG_CHAIN_AFFINE_RELU:
    case FG_CHAIN_AFFINE:
        FG_CHECK(s->bias && fg_var_numel(s->bias) == (size_t)in, "conv_chain",
                 "stage %d: the affine stage needs a bias of %d values", i, in);
        /* fall through */
    case FG_CHAIN_CHANNEL_SCALE_EXP:
        FG_CHECK(s->logs && fg_var_numel(s->logs) == (size_t)in, "conv_chain",
                 "stage %d: needs logs of %d values", i, in);
        return in;
    case FG_CHAIN_RELU:
        return in;
    }
    fg_fatal("conv_chain", "stage %d has unknown kind %d", i, (int)s->kind);
}

/* ------------------------------------------------------------- forward */
/* The row stride of a convolution stage's weight (and its gradient). */
static int weight_row(const fg_chain_stage *st)
{
    const int k = st->weight->t.shape[2];
    return st->weight->t.shape[1] * k * k;
}

/* v (nc, Co, k k): each tap's condition weights times images n0.. of the
 * condition, what fg_conv_constant_add spreads over their pixels. */
static void condition_taps(const chain *c, int s, int n0, int nc, float *v)
{
    const fg_chain_stage *st = &c->st[s];
    const int Ci = c->ch[s], Co = c->ch[s + 1], cc = st->cond->t.shape[1];
    const int k = st->weight->t.shape[2], kk = k * k, ldw = weight_row(st);
    const float *w = st->weight->t.data;
    for (int n = 0; n < nc; n++) {
        const float *cn = st->cond->t.data + (size_t)(n0 + n) * cc;
        for (int o = 0; o < Co; o++) {
            float *vt = v + ((size_t)n * Co + o) * kk;
            for (int t = 0; t < kk; t++)
                vt[t] = 0.0f;
            for (int j = 0; j < cc; j++) {
                if (cn[j] == 0.0f)   /* a one-hot label has one value that is not */
                    continue;
                const float *wj = w + (size_t)o * ldw + (size_t)(Ci + j) * kk;
                for (int t = 0; t < kk; t++)
                    vt[t] += cn[j] * wj[t];
            }
        }
    }
}

/* The condition's part of a convolution stage's gradients from gy, for
 * images n0..: the weights' into part (rows of ldw, after the Ci k k of the
 * image's channels), the condition's into dcond's rows of these images. */
static void condition_backward(const chain *c, int s, int n0, int nc, const float *gy,
                               float *sums, float *part_w, float *dcond)
{
    const fg_chain_stage *st = &c->st[s];
    const int Ci = c->ch[s], Co = c->ch[s + 1], cc = st->cond->t.shape[1];
    const int k = st->weight->t.shape[2], kk = k * k, ldw = weight_row(st);
    fg_conv_constant_tap_sums(nc, c->H, c->W, Co, k, gy, c->mask[s], sums);
    for (int n = 0; n < nc; n++) {
        const float *cn = st->cond->t.data + (size_t)(n0 + n) * cc;
        const float *sn = sums + (size_t)n * Co * kk;
        if (part_w)
            for (int o = 0; o < Co; o++)
                for (int j = 0; j < cc; j++) {
                    if (cn[j] == 0.0f)
                        continue;
                    float *dw = part_w + (size_t)o * ldw + (size_t)(Ci + j) * kk;
                    for (int t = 0; t < kk; t++)
                        dw[t] += cn[j] * sn[(size_t)o * kk + t];
                }
        if (dcond)
            for (int j = 0; j < cc; j++) {
                float acc = 0.0f;
                for (int o = 0; o < Co; o++) {
                    const float *wj = st->weight->t.data + (size_t)o * ldw + (size_t)(Ci + j) * kk;
                    for (int t = 0; t < kk; t++)
                        acc += wj[t] * sn[(size_t)o * kk + t];
                }
                dcond[(size_t)(n0 + n) * cc + j] = acc;
            }
    }
}

/* A convolution stage (s) with the per-channel stage after it applied as
 * its products store their output (fg_conv_cm_forward_work's epilogue):
 * the convolution's output is then never written. Where that boundary is
 * kept, or a condition is added after the product, the two run apart. */
static int fuses_with_next(const chain *c, int s)
{
    if (s + 1 >= c->n || c->keep[s + 1] || c->st[s].kind != FG_CHAIN_CONV || c->st[s].cond)
        return 0;
    const fg_chain_kind next = c->st[s + 1].kind;
    return next == FG_CHAIN_AFFINE_RELU || next == FG_CHAIN_AFFINE || next == FG_CHAIN_RELU;
}

/* Stage s's per-channel stage as a row epilogue. */
static fg_row_affine stage_epilogue(const chain *c, int s)
{
    const fg_chain_stage *st = &c->st[s];
    if (st->kind == FG_CHAIN_RELU)
        return (fg_row_affine){c->zeros, c->ones, 1};
    return (fg_row_affine){st->bias->t.data, c->scale[s], st->kind == FG_CHAIN_AFFINE_RELU};
}

/* Stage s of a chunk from in into out; ep (or NULL), a convolution's
 * epilogue. */
static void stage_forward(const chain *c, int s, int n0, int nc, const float *in, float *out,
                          float *work, const fg_gemm_prepared *ready, const fg_row_affine *ep)
{
    const fg_chain_stage *st = &c->st[s];
    const int Ci = c->ch[s], Co = c->ch[s + 1];
    const size_t L = (size_t)nc * c->P;
    switch (st->kind) {
    case FG_CHAIN_CONV:
        fg_conv_cm_forward_work(nc, Ci, c->H, c->W, Co, st->weight->t.shape[2], in,
                                st->weight->t.data, weight_row(st),
                                st->bias ? st->bias->t.data : NULL, out, nc, work, ready, ep);
        if (st->cond) {
            /* the convolution's work is free again */
            condition_taps(c, s, n0, nc, work);
            fg_conv_constant_add(nc, c->H, c->W, Co, st->weight->t.shape[2], work, c->mask[s],
                                 out);
        }
        break;
    case FG_CHAIN_AFFINE_RELU:
    case FG_CHAIN_AFFINE:
        fg_affine_relu_planes(1, Ci, L, in, st->bias->t.data, c->scale[s], out,
                              st->kind == FG_CHAIN_AFFINE_RELU);
        break;
    case FG_CHAIN_RELU:
        fg_affine_relu_planes(1, Ci, L, in, c->zeros, c->ones, out, 1);
        break;
    case FG_CHAIN_CHANNEL_SCALE_EXP:
        fg_k_mul_channel(1, Ci, (int)L, in, c->scale[s], out);
        break;
    }
}

/* Chunk j from x through every stage into y. The stages write into the
 * kept boundary where there is one, else into whichever of a and b does
 * not hold the stage's input. */
static void forward_chunk(const chain *c, int j, float *a, float *b, float *work,
                          const fg_gemm_prepared *ready)
{
    int n0, nc;
    chunk_range(c, j, &n0, &nc);
    const size_t P = (size_t)c->P;
    float *in = a;
    fg_conv_gather_columns(nc, c->ch[0], c->P, c->x->t.data + (size_t)n0 * c->ch[0] * P, in);
    for (int s = 0; s < c->n; s++) {
        const int fused = fuses_with_next(c, s);
        const int last = s + fused;   /* the stage whose output this writes */
        float *kept = c->keep[last + 1];
        float *out = kept ? kept + (size_t)n0 * c->ch[last + 1] * P : in == a ? b : a;
        const fg_row_affine ep = fused ? stage_epilogue(c, last) : (fg_row_affine){0};
        stage_forward(c, s, n0, nc, in, out, work, &ready[s], fused ? &ep : NULL);
        in = out;
        s = last;
    }
    fg_conv_scatter_columns(nc, c->ch[c->n], c->P, in,
                            c->y->t.data + (size_t)n0 * c->ch[c->n] * P, 0);
}

/* Floats of per-thread buffers: the largest boundary of a chunk, and the
 * largest column matrix of its convolutions. Sized for a full chunk on
 * every thread whatever the batch, so that they do not grow with it: the
 * memory estimate (models/train_memory.c) measures steps at batch 2 and 3
 * and extrapolates what grows, and buffers that stop growing at a chunk
 * would be counted 64 times at batch 64. */
static size_t boundary_floats(const chain *c)
{
    return (size_t)c->most * c->full_chunk * c->P;
}

static size_t work_floats(const chain *c)
{
    size_t most = 0;
    for (int s = 0; s < c->n; s++)
        if (c->st[s].kind == FG_CHAIN_CONV) {
            const int k = c->st[s].weight->t.shape[2];
            size_t w = fg_conv_cm_work_floats(c->full_chunk, c->ch[s], c->H, c->W,
                                              c->ch[s + 1], k);
            most = w > most ? w : most;
            /* the condition's taps, or in the backward their sums */
            w = c->st[s].cond ? (size_t)c->full_chunk * c->ch[s + 1] * k * k : 0;
            most = w > most ? w : most;
        }
    return most;
}

static int threads(void)
{
    return omp_in_parallel() ? 1 : omp_get_max_threads();
}

/* Threads that take chunks. With one chunk (a small batch) its one thread
 * runs in a serial stretch (fg_serial_begin): the chunk's products and
 * per-channel passes start no threads of their own, as with more chunks. */
static int team_size(const chain *c)
{
    int t = threads();
    return t < c->n_chunks ? t : c->n_chunks;
}

/* Each convolution's weights made ready once for all chunks: without it
 * every chunk copied them into panels (and a narrow one rearranged them)
 * again, about 4 % of a sampling pass (BENCHMARKS.md, "A 12 x 32 tile"). */
static fg_gemm_prepared *prepare_weights(const chain *c, fg_arena *scratch)
{
    fg_gemm_prepared *ready = fg_arena_alloc(scratch, (size_t)c->n * sizeof *ready);
    for (int s = 0; s < c->n; s++) {
        const fg_chain_stage *st = &c->st[s];
        if (st->kind != FG_CHAIN_CONV)
            continue;
        const int k = st->weight->t.shape[2];
        const size_t n = fg_conv_cm_prepare_floats(c->ch[s], c->ch[s + 1], k);
        float *buf = n ? fg_arena_alloc(scratch, n * sizeof(float)) : NULL;
        ready[s] = fg_conv_cm_prepare(c->ch[s], c->ch[s + 1], k, st->weight->t.data,
                                      weight_row(st), buf);
    }
    return ready;
}

static void run_forward(chain *c, fg_arena *scratch)
{
    const int T = team_size(c);
    const size_t nb = boundary_floats(c), nw = work_floats(c);
    /* Every thread's buffers come from the arena before the threads start:
     * the arena is not thread-safe, and taking them here lets every step
     * reuse the same pages. */
    float *bufs = fg_arena_alloc(scratch, (size_t)threads() * (2 * nb + nw) * sizeof(float));
    const fg_gemm_prepared *ready = prepare_weights(c, scratch);
    const int serial = T == 1 ? fg_serial_begin() : 0;
    #pragma omp parallel num_threads(T)
    {
        float *a = bufs + (size_t)omp_get_thread_num() * (2 * nb + nw);
        #pragma omp for schedule(static)
        for (int j = 0; j < c->n_chunks; j++)
            forward_chunk(c, j, a, a + nb, a + 2 * nb, ready);
    }
    if (T == 1)
        fg_serial_end(serial);
}

/* ------------------------------------------------------------- backward */
/* Where stage s's parameter gradients of one chunk go, in its partials. */
typedef struct stage_part {
    size_t dw, db, dl;     /* offsets; conv: weight, bias; affine: bias, logs;
                              scale: the logs' inner sum */
} stage_part;

/* Boundary b of chunk j: kept, or read back from the op's input or output
 * into edge. */
static const float *boundary(const chain *c, int b, int n0, int nc, float *edge)
{
    const size_t off = (size_t)n0 * c->ch[b] * c->P;
    if (c->keep[b])
        return c->keep[b] + off;
    const float *src = b == 0 ? c->x->t.data : c->y->t.data;
    fg_conv_gather_columns(nc, c->ch[b], c->P, src + off, edge);
    return edge;
}

/* Stage s of chunk j backward: gy (its output's gradient) into gx (its
 * input's, stored; NULL when not needed) and its parameters' gradients
 * into part. */
static void stage_backward(const chain *c, int s, int n0, int nc, const float *gy, float *gx,
                           float *edge, float *work, double *sums, float *part,
                           const stage_part *sp)
{
    const fg_chain_stage *st = &c->st[s];
    const int Ci = c->ch[s], Co = c->ch[s + 1];
    const size_t L = (size_t)nc * c->P;
    switch (st->kind) {
    case FG_CHAIN_CONV: {
        const int k = st->weight->t.shape[2];
        if (grad_of(st->weight))
            fg_conv_cm_backward_weight_work(nc, Ci, c->H, c->W, Co, k, gy,
                                            boundary(c, s, n0, nc, edge), part + sp->dw,
                                            weight_row(st), nc, work);
        if (st->cond && (grad_of(st->weight) || c->dcond[s]))
            condition_backward(c, s, n0, nc, gy, work,
                               grad_of(st->weight) ? part + sp->dw : NULL, c->dcond[s]);
        if (grad_of(st->bias)) {
            fg_k_sum_per_channel(1, Co, (int)L, gy, sums, NULL);
            for (int o = 0; o < Co; o++)
                part[sp->db + o] = (float)sums[o];
        }
        if (gx)
            fg_conv_cm_backward_input_work(nc, Ci, c->H, c->W, Co, k, gy, st->weight->t.data,
                                           weight_row(st), gx, 0, nc, work);
        break;
    }
    case FG_CHAIN_AFFINE_RELU:
    case FG_CHAIN_AFFINE:
        fg_affine_relu_planes_backward(1, Ci, L, gy, boundary(c, s + 1, n0, nc, edge),
                                       c->scale[s], gx, 1,
                                       grad_of(st->bias) ? part + sp->db : NULL,
                                       grad_of(st->logs) ? part + sp->dl : NULL,
                                       st->kind == FG_CHAIN_AFFINE_RELU);
        break;
    case FG_CHAIN_RELU:
        if (gx)
            fg_affine_relu_planes_backward(1, Ci, L, gy, boundary(c, s + 1, n0, nc, edge),
                                           c->ones, gx, 1, NULL, NULL, 1);
        break;
    case FG_CHAIN_CHANNEL_SCALE_EXP:
        if (grad_of(st->logs)) {
            /* d/dv of sum gy x v, the sum of the unfused op (mul_channel) */
            const float *xin = boundary(c, s, n0, nc, edge);
            for (int ch = 0; ch < Ci; ch++) {
                const float *restrict d = gy + (size_t)ch * L, *restrict xp = xin + (size_t)ch * L;
                float acc = 0.0f;
                #pragma omp simd reduction(+:acc)
                for (size_t i = 0; i < L; i++)
                    acc += d[i] * xp[i];
                part[sp->dl + ch] = acc;
            }
        }
        if (gx)
            fg_k_mul_channel(1, Ci, (int)L, gy, c->scale[s], gx);
        break;
    }
}

typedef struct thread_bufs {
    float *g1, *g2, *edge, *work;
    double *sums;
} thread_bufs;

static void backward_chunk(const chain *c, int j, const thread_bufs *tb, float *part,
                           const stage_part *sp, float *dx, int dx_fresh)
{
    int n0, nc;
    chunk_range(c, j, &n0, &nc);
    const size_t P = (size_t)c->P;
    float *gin = tb->g1;
    fg_conv_gather_columns(nc, c->ch[c->n], c->P,
                           c->y->grad + (size_t)n0 * c->ch[c->n] * P, gin);
    for (int s = c->n - 1; s >= 0; s--) {
        float *gout = s > 0 || dx ? (gin == tb->g1 ? tb->g2 : tb->g1) : NULL;
        stage_backward(c, s, n0, nc, gin, gout, tb->edge, tb->work, tb->sums, part, &sp[s]);
        gin = gout;
    }
    if (dx)
        fg_conv_scatter_columns(nc, c->ch[0], c->P, gin, dx + (size_t)n0 * c->ch[0] * P,
                                !dx_fresh);
}

enum { PARTIALS_BLOCK = 1024 };

/* Elements [b PARTIALS_BLOCK, (b + 1) PARTIALS_BLOCK) of add_partials,
 * chunk by chunk. */
static inline void add_partials_block(int n_chunks, const float *parts, size_t stride,
                                      size_t off, long b, size_t count, float *grad)
{
    const size_t i0 = (size_t)b * PARTIALS_BLOCK;
    const size_t i1 = i0 + PARTIALS_BLOCK < count ? i0 + PARTIALS_BLOCK : count;
    for (int j = 0; j < n_chunks; j++) {
        const float *restrict p = parts + (size_t)j * stride + off;
        float *restrict gr = grad;
        #pragma omp simd
        for (size_t i = i0; i < i1; i++)
            gr[i] += p[i];
    }
}

/* The chunks' partial sums, in chunk order, into a parameter's gradient.
 * Threads split the elements, each of which still adds its chunks in
 * order, so the sums do not depend on the thread count; serially this was
 * a few per cent of a step during which the other threads waited. */
static void add_partials(const chain *c, const float *parts, size_t stride, size_t off,
                         size_t count, float *grad)
{
    const long blocks = (long)((count + PARTIALS_BLOCK - 1) / PARTIALS_BLOCK);
    FG_FOR_ITEMS(count * (size_t)c->n_chunks, b, blocks,
                 add_partials_block(c->n_chunks, parts, stride, off, b, count, grad));
}

static void backward(fg_graph *g, void *ctx, fg_var **outs, int n_outs)
{
    (void)outs;
    (void)n_outs;
    const double t0 = fg_profile_enabled() ? fg_profile_now() : 0.0;
    chain *c = ctx;
    fg_arena *scratch = fg_graph_scratch(g);

    stage_part *sp = fg_arena_alloc(scratch, (size_t)c->n * sizeof *sp);
    size_t stride = 0;
    for (int s = 0; s < c->n; s++) {
        const fg_chain_stage *st = &c->st[s];
        sp[s].dw = stride;
        stride += st->weight ? fg_var_numel(st->weight) : 0;
        sp[s].db = stride;
        stride += (size_t)c->ch[s + 1];
        sp[s].dl = stride;
        stride += (size_t)c->ch[s + 1];
    }
    /* Each chunk zeroes its own partials, in the parallel region. */
    float *parts = fg_arena_alloc(scratch, (size_t)c->n_chunks * stride * sizeof(float));

    int dx_fresh = 0;
    float *dx = c->x->requires_grad ? fg_grad_for_write(g, c->x, &dx_fresh) : NULL;
    const int T = team_size(c);
    const size_t nb = boundary_floats(c), nw = work_floats(c), per_thread = 3 * nb + nw;
    float *bufs = fg_arena_alloc(scratch, (size_t)threads() * per_thread * sizeof(float));
    double *sums = fg_arena_alloc(scratch, (size_t)threads() * c->most * sizeof(double));
    const int serial = T == 1 ? fg_serial_begin() : 0;
    #pragma omp parallel num_threads(T)
    {
        const int t = omp_get_thread_num();
        float *base = bufs + (size_t)t * per_thread;
        thread_bufs tb = {base, base + nb, base + 2 * nb, base + 3 * nb,
                          sums + (size_t)t * c->most};
        #pragma omp for schedule(static)
        for (int j = 0; j < c->n_chunks; j++) {
            memset(parts + (size_t)j * stride, 0, stride * sizeof(float));
            backward_chunk(c, j, &tb, parts + (size_t)j * stride, sp, dx, dx_fresh);
        }
    }
    if (T == 1)
        fg_serial_end(serial);

    for (int s = 0; s < c->n; s++) {
        const fg_chain_stage *st = &c->st[s];
        const int C = c->ch[s + 1];
        switch (st->kind) {
        case FG_CHAIN_CONV:
            if (c->dcond[s]) {
                /* each image's row came from its one chunk */
                const size_t m = fg_var_numel(st->cond);
                float *gc = fg_grad(g, st->cond);
                for (size_t i = 0; i < m; i++)
                    gc[i] += c->dcond[s][i];
            }
            if (grad_of(st->weight))
                add_partials(c, parts, stride, sp[s].dw, fg_var_numel(st->weight),
                             fg_grad(g, st->weight));
            if (grad_of(st->bias))
                add_partials(c, parts, stride, sp[s].db, (size_t)C, fg_grad(g, st->bias));
            break;
        case FG_CHAIN_AFFINE_RELU:
        case FG_CHAIN_AFFINE:
            if (grad_of(st->bias))
                add_partials(c, parts, stride, sp[s].db, (size_t)C, fg_grad(g, st->bias));
            if (grad_of(st->logs))
                add_partials(c, parts, stride, sp[s].dl, (size_t)C, fg_grad(g, st->logs));
            break;
        case FG_CHAIN_CHANNEL_SCALE_EXP:
            if (grad_of(st->logs)) {
                /* through e = exp(factor logs) as fg_exp and fg_scale take it */
                float *v = fg_arena_calloc(scratch, (size_t)C * sizeof(float));
                add_partials(c, parts, stride, sp[s].dl, (size_t)C, v);
                float *gl = fg_grad(g, st->logs);
                for (int ch = 0; ch < C; ch++)
                    gl[ch] += st->factor * (v[ch] * c->scale[s][ch]);
            }
            break;
        case FG_CHAIN_RELU:
            break;
        }
    }
    fg_arena_reset(scratch);
    if (t0 != 0.0)
        fg_profile_add_shared("op:conv_chain (backward)", fg_profile_now() - t0);
}

/* ------------------------------------------------------------- the op */
fg_var *fg_conv_chain(fg_graph *g, fg_var *x, const fg_chain_stage *stages, int n)
{
    const double t0 = fg_profile_enabled() ? fg_profile_now() : 0.0;
    fg_require_ndim("conv_chain", x, 4);
    FG_CHECK(n >= 1 && stages, "conv_chain", "needs at least one stage, got %d", n);
    fg_arena *arena = fg_graph_arena(g);

    int need = x->requires_grad;
    for (int s = 0; s < n; s++)
        need |= grad_of(stages[s].weight) || grad_of(stages[s].bias) ||
                grad_of(stages[s].logs) || grad_of(stages[s].cond);
    const int record = fg_grad_enabled(g) && need;

    chain *c = fg_arena_calloc(arena, sizeof *c);
    c->n = n;
    c->st = fg_arena_alloc(arena, (size_t)n * sizeof *c->st);
    memcpy(c->st, stages, (size_t)n * sizeof *c->st);
    c->ch = fg_arena_alloc(arena, (size_t)(n + 1) * sizeof *c->ch);
    c->N = x->t.shape[0];
    c->H = x->t.shape[2];
    c->W = x->t.shape[3];
    c->P = c->H * c->W;
    c->ch[0] = c->most = x->t.shape[1];
    for (int s = 0; s < n; s++) {
        const fg_var *cv = stages[s].cond;
        char cs[FG_SHAPE_STR_LEN];
        FG_CHECK(!cv || (stages[s].kind == FG_CHAIN_CONV && cv->t.ndim == 2 &&
                         cv->t.shape[0] == c->N && cv->t.shape[1] > 0),
                 "conv_chain", "stage %d: condition %s, expected (%d, Cc) on a convolution", s,
                 cv ? fg_shape_str(&cv->t, cs, sizeof cs) : "", c->N);
        c->ch[s + 1] = stage_out_channels(&stages[s], c->ch[s], s);
        c->most = c->ch[s + 1] > c->most ? c->ch[s + 1] : c->most;
    }
    FG_CHECK(c->N > 0 && c->P > 0 && (size_t)c->N * c->P <= (size_t)1 << 30, "conv_chain",
             "a batch of %d images of %dx%d", c->N, c->H, c->W);
    c->per_chunk = c->full_chunk = fg_conv_chain_chunk_images(c->P);
    if (c->per_chunk > c->N)
        c->per_chunk = c->N;
    c->n_chunks = (c->N + c->per_chunk - 1) / c->per_chunk;

    c->zeros = fg_arena_calloc(arena, (size_t)c->most * sizeof(float));
    c->ones = fg_arena_alloc(arena, (size_t)c->most * sizeof(float));
    for (int i = 0; i < c->most; i++)
        c->ones[i] = 1.0f;
    c->scale = fg_arena_calloc(arena, (size_t)n * sizeof *c->scale);
    for (int s = 0; s < n; s++) {
        const fg_chain_stage *st = &stages[s];
        const int C = c->ch[s];
        if (st->kind == FG_CHAIN_AFFINE_RELU || st->kind == FG_CHAIN_AFFINE) {
            c->scale[s] = fg_arena_alloc(arena, (size_t)C * sizeof(float));
            for (int i = 0; i < C; i++)
                c->scale[s][i] = expf(st->logs->t.data[i]);
        } else if (st->kind == FG_CHAIN_CHANNEL_SCALE_EXP) {
            /* fg_scale then fg_exp: the product rounded to float first */
            c->scale[s] = fg_arena_alloc(arena, (size_t)C * sizeof(float));
            for (int i = 0; i < C; i++) {
                const float t = st->factor * st->logs->t.data[i];
                c->scale[s][i] = expf(t);
            }
        }
    }
    c->mask = fg_arena_calloc(arena, (size_t)n * sizeof *c->mask);
    for (int s = 0; s < n; s++)
        if (stages[s].cond) {
            const int k = stages[s].weight->t.shape[2];
            c->mask[s] = fg_arena_alloc(arena, (size_t)k * k * c->P * sizeof(float));
            fg_conv_constant_mask(c->H, c->W, k, c->mask[s]);
        }
    c->dcond = fg_arena_calloc(arena, (size_t)n * sizeof *c->dcond);
    for (int s = 0; s < n; s++)
        if (record && grad_of(stages[s].cond))
            c->dcond[s] = fg_arena_alloc(arena, fg_var_numel(stages[s].cond) * sizeof(float));
    c->keep = fg_arena_calloc(arena, (size_t)(n + 1) * sizeof *c->keep);
    if (record)
        for (int b = 1; b < n; b++)
            if (needs_input(stages[b].kind) || needs_output(stages[b - 1].kind))
                c->keep[b] = fg_arena_alloc(arena,
                                            (size_t)c->ch[b] * c->N * c->P * sizeof(float));

    int shape[4] = {c->N, c->ch[n], c->H, c->W};
    c->x = x;
    c->y = fg_var_new(g, 4, shape);
    fg_arena *scratch = fg_graph_scratch(g);
    run_forward(c, scratch);
    fg_arena_reset(scratch);
    if (record)
        fg_custom_op(g, "conv_chain", &c->y, 1, backward, c);
    if (t0 != 0.0)
        fg_profile_add_shared("op:conv_chain", fg_profile_now() - t0);
    return c->y;
}
