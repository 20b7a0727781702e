/* flowgrad nn layer: named parameters, modules built from autograd ops,
 * initializers, optimizers and schedules, checkpoints, data and images. */
#ifndef FLOWGRAD_NN_H
#define FLOWGRAD_NN_H

#include <stdio.h>
#include "autograd/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- naming
 * Every module exposes its state by visiting (name, variable, kind). A
 * parameter is trained; a buffer is saved with the model but never trained
 * (actnorm's init flag, a fixed permutation, LU's P and sign). Names are
 * dotted paths: "flow.3.coupling.nn.0.weight". */
typedef enum { FG_PARAM = 0, FG_BUFFER = 1 } fg_state_kind;
typedef void (*fg_visit_fn)(void *ctx, const char *name, fg_var *v, fg_state_kind kind);

/* Joins prefix and name with a dot into buf (prefix may be NULL or ""). */
const char *fg_name_join(char *buf, size_t n, const char *prefix, const char *name);
#define FG_NAME_LEN 256

/* ---------------------------------------------------------------- modules */

/* 2-D convolution, stride 1, same padding. weight (co, ci, k, k), bias (co)
 * or NULL. Weights drawn N(0, init_std^2); init_std 0 means zeros. */
typedef struct fg_conv {
    fg_var *weight, *bias;
    int ci, co, k;
} fg_conv;
void fg_conv_init(fg_conv *c, int ci, int co, int k, int with_bias,
                  float init_std, fg_rng *rng);
fg_var *fg_conv_apply(fg_graph *g, fg_conv *c, fg_var *x);
/* The same on a channel-major batch of N images (see fg_to_channel_major). */
fg_var *fg_conv_apply_cm(fg_graph *g, fg_conv *c, fg_var *x, int N);
void fg_conv_visit(fg_conv *c, const char *prefix, fg_visit_fn fn, void *ctx);
void fg_conv_free(fg_conv *c);

/* Glow's zero-initialized convolution: conv(x) * exp(logscale_factor * logs)
 * with weight, bias and logs (co) all zero at creation, so its output starts
 * at exactly zero. */
typedef struct fg_zero_conv {
    fg_conv conv;
    fg_var *logs;
    float logscale_factor;   /* 3 in Glow */
} fg_zero_conv;
void fg_zero_conv_init(fg_zero_conv *z, int ci, int co, int k, float logscale_factor);
fg_var *fg_zero_conv_apply(fg_graph *g, fg_zero_conv *z, fg_var *x);
fg_var *fg_zero_conv_apply_cm(fg_graph *g, fg_zero_conv *z, fg_var *x, int N);
void fg_zero_conv_visit(fg_zero_conv *z, const char *prefix, fg_visit_fn fn, void *ctx);
void fg_zero_conv_free(fg_zero_conv *z);

/* Dense layer on (N, in) -> (N, out): x W^T + b. weight (out, in). */
typedef struct fg_linear {
    fg_var *weight, *bias;
    int in, out;
} fg_linear;
void fg_linear_init(fg_linear *l, int in, int out, int with_bias,
                    float init_std, fg_rng *rng);
fg_var *fg_linear_apply(fg_graph *g, fg_linear *l, fg_var *x);
void fg_linear_visit(fg_linear *l, const char *prefix, fg_visit_fn fn, void *ctx);
void fg_linear_free(fg_linear *l);

/* ---------------------------------------------------------------- state lists
 * A flat list of a model's named state, filled by its visit function:
 *     fg_state_list l; fg_state_list_init(&l);
 *     model_visit(model, "", fg_state_list_add, &l);
 * Entries borrow the variables; the list owns only its array. */
typedef struct fg_state_entry {
    char name[FG_NAME_LEN];
    fg_var *var;
    fg_state_kind kind;
} fg_state_entry;
typedef struct fg_state_list {
    fg_state_entry *items;
    int n, cap;
} fg_state_list;

void fg_state_list_init(fg_state_list *l);
void fg_state_list_free(fg_state_list *l);
/* An fg_visit_fn (ctx is the list). A repeated name is a wiring bug: fatal. */
void fg_state_list_add(void *list, const char *name, fg_var *v, fg_state_kind kind);
fg_state_entry *fg_state_list_find(const fg_state_list *l, const char *name);
/* Number of trainable scalars (FG_PARAM entries only). */
size_t fg_state_list_param_count(const fg_state_list *l);
void fg_state_list_zero_grad(const fg_state_list *l);
/* sqrt of the sum of squared gradients of all FG_PARAM entries (double). */
double fg_state_list_grad_norm(const fg_state_list *l);
/* Scales all parameter gradients so their global norm is at most max_norm;
 * returns the norm before clipping. */
double fg_state_list_clip_grad_norm(const fg_state_list *l, double max_norm);
/* Copies every value of src into the entry of dst with the same name.
 * FG_ERR if a name of dst is missing in src or the shapes differ. */
int fg_state_list_copy_values(const fg_state_list *dst, const fg_state_list *src);
/* FG_OK when every value (and, with grads, every parameter gradient) is
 * finite; else FG_ERR naming the first non-finite tensor. */
int fg_state_list_check_finite(const fg_state_list *l, int grads);

/* ---------------------------------------------------------------- optimizers
 * Adam (Kingma & Ba, Algorithm 1) and Adamax (Algorithm 2), with bias
 * correction, over the FG_PARAM entries of a state list. Moments are float32
 * leaves named "optim.m.<param>" and "optim.v.<param>" (Adamax keeps its
 * infinity norm u under "optim.v.<param>"). Adamax adds eps inside the max,
 * u = max(beta2 u, |g| + eps), as PyTorch does, so u is never zero. */
typedef enum { FG_ADAM = 0, FG_ADAMAX = 1 } fg_optim_kind;
typedef struct fg_optim {
    fg_optim_kind kind;
    double beta1, beta2, eps;
    long step;                 /* updates taken so far */
    int n;
    fg_var **params;           /* borrowed */
    fg_var **m, **v;           /* owned, no grad */
    char (*names)[FG_NAME_LEN];
} fg_optim;
/* Defaults: beta1 0.9, beta2 0.999, eps 1e-8 (pass them explicitly). */
void fg_optim_init(fg_optim *o, fg_optim_kind kind, const fg_state_list *l,
                   double beta1, double beta2, double eps);
void fg_optim_free(fg_optim *o);
/* One update with learning rate lr from the parameters' gradients. */
void fg_optim_step(fg_optim *o, double lr);
void fg_adam_update(size_t n, float *p, const float *g, float *m, float *v,
                    double lr, double beta1, double beta2, double eps, long t);
void fg_adamax_update(size_t n, float *p, const float *g, float *m, float *u,
                      double lr, double beta1, double beta2, double eps, long t);
/* Visits the moments as FG_BUFFER entries (prefix ignored if NULL). */
void fg_optim_visit(fg_optim *o, fg_visit_fn fn, void *ctx);
/* "adam" / "adamax"; parse returns FG_ERR for anything else. */
const char *fg_optim_kind_name(fg_optim_kind k);
int fg_optim_kind_parse(const char *s, fg_optim_kind *k);

/* Linear warmup: lr * min(1, step / warmup) for the update numbered step
 * (1-based); warmup <= 0 means no warmup. */
double fg_lr_warmup(double lr, long step, long warmup);

/* Exponential moving average of the FG_PARAM values:
 * shadow = decay * shadow + (1 - decay) * value after each update. */
typedef struct fg_ema {
    double decay;
    int n;
    fg_var **params;           /* borrowed */
    fg_var **shadow;           /* owned, "ema.<param>" */
    char (*names)[FG_NAME_LEN];
    int swapped;               /* 1 while the averages sit in the model */
} fg_ema;
void fg_ema_init(fg_ema *e, const fg_state_list *l, double decay);
void fg_ema_free(fg_ema *e);
void fg_ema_update(fg_ema *e);
/* Exchanges model values and averages; call again to swap back. */
void fg_ema_swap(fg_ema *e);
void fg_ema_visit(fg_ema *e, fg_visit_fn fn, void *ctx);

/* ---------------------------------------------------------------- safetensors
 * https://github.com/huggingface/safetensors: u64 little-endian header length
 * N, N bytes of JSON header (space padded to a multiple of 8 by our writer),
 * then the byte buffer. Each entry: dtype, shape, data_offsets [begin, end)
 * relative to the buffer start; the entries tile the buffer exactly.
 * "__metadata__" maps strings to strings. Data is little-endian, row-major.
 * flowgrad stores parameters and moments as F32, counters and RNG state as
 * I64, permutations as I32 (in models' code). */
typedef enum { FG_DT_F32 = 0, FG_DT_F64, FG_DT_I32, FG_DT_I64, FG_DT_U8 } fg_dtype;
#define FG_ST_MAX_DIMS 8
#define FG_ST_MAX_HEADER (100u << 20)
const char *fg_dtype_name(fg_dtype t);
size_t fg_dtype_size(fg_dtype t);

typedef struct fg_st_tensor {
    char *name;
    fg_dtype dtype;
    int ndim;
    int64_t shape[FG_ST_MAX_DIMS];
    void *data;                /* native byte order */
    size_t nbytes;
    int owns;
} fg_st_tensor;
typedef struct fg_safetensors {
    fg_st_tensor *t;
    int n, cap;
    char **meta_key, **meta_val;
    int n_meta, cap_meta;
    char *path;                /* set by read, for messages */
} fg_safetensors;

void fg_st_init(fg_safetensors *st);
void fg_st_free(fg_safetensors *st);
/* Adds an entry; copy 0 borrows data until the write. Repeated name: fatal. */
void fg_st_add(fg_safetensors *st, const char *name, fg_dtype dtype, int ndim,
               const int64_t *shape, const void *data, int copy);
void fg_st_add_tensor(fg_safetensors *st, const char *name, const fg_tensor *t, int copy);
void fg_st_add_i64(fg_safetensors *st, const char *name, const int64_t *v, int n);
/* Borrowing adds of every entry of a state list. */
void fg_st_add_state(fg_safetensors *st, const fg_state_list *l);
void fg_st_set_meta(fg_safetensors *st, const char *key, const char *value);
const char *fg_st_get_meta(const fg_safetensors *st, const char *key);
const fg_st_tensor *fg_st_find(const fg_safetensors *st, const char *name);

/* Serializes to a stream (FG_ERR on any write error), or to path
 * atomically: PATH.tmp.<pid>, fsync, rename, fsync of the directory. On
 * failure the old file is untouched and the temporary removed. */
int fg_st_write_stream(const fg_safetensors *st, FILE *f, const char *what);
int fg_st_write(const fg_safetensors *st, const char *path);
/* Reads and validates an untrusted file (or buffer). st must be fresh from
 * fg_st_init; on error it is left empty. Messages are "PATH: problem". */
int fg_st_read(fg_safetensors *st, const char *path);
int fg_st_parse(fg_safetensors *st, const unsigned char *buf, size_t len, const char *what);
/* FG_OK when entry name exists as F32 with t's shape; else FG_ERR naming
 * the tensor and both shapes. get copies it into t after the same check. */
int fg_st_check_tensor(const fg_safetensors *st, const char *name, const fg_tensor *t);
int fg_st_get_tensor(const fg_safetensors *st, const char *name, fg_tensor *t);
int fg_st_get_i64(const fg_safetensors *st, const char *name, int64_t *v, int n);
/* Loads every entry of l from st (F32, same shape). Entries of st not in l
 * are an error unless their name starts with skip_prefix (may be NULL), or
 * skip_prefix is "" (ignore all extras). Names and shapes only: what the
 * values mean is checked by fg_checkpoint_check_values (models/checkpoint.h),
 * which a file from outside must pass first. */
int fg_st_load_state(const fg_safetensors *st, const fg_state_list *l,
                     const char *skip_prefix);
/* Optimizer: moments plus "optim.step" (I64). */
void fg_optim_save(fg_optim *o, fg_safetensors *st);
int fg_optim_load(fg_optim *o, const fg_safetensors *st);

/* Atomic file: writes land in PATH.tmp.<pid> until commit renames it. Open
 * refuses a path that exists and is not a regular file (a device, fifo or
 * directory is never replaced), and first removes the temporaries
 * (fg_atomic_remove_stale) that killed writers left in the folder. */
typedef struct fg_atomic_file {
    FILE *f;
    char *path, *tmp;
} fg_atomic_file;
int fg_atomic_open(fg_atomic_file *a, const char *path);
/* Removes "*.tmp.<pid>" regular files of this user in path's folder whose
 * process no longer exists on this machine; returns how many. */
int fg_atomic_remove_stale(const char *path);
int fg_atomic_commit(fg_atomic_file *a);   /* closes; FG_ERR removes tmp */
void fg_atomic_abort(fg_atomic_file *a);

/* ---------------------------------------------------------------- data
 * N images of uint8 (C, H, W) with labels in [0, n_classes). */
typedef struct fg_dataset {
    int n, c, h, w, n_classes;
    uint8_t *images;           /* n * c * h * w */
    uint8_t *labels;           /* n */
} fg_dataset;
#define FG_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
void fg_dataset_free(fg_dataset *d);
/* IDX files (gzip or plain, through zlib): images magic 0x00000803 with
 * dims (n, h, w), labels magic 0x00000801 with dims (n). */
int fg_dataset_load_idx(fg_dataset *d, const char *images_path, const char *labels_path);
/* train-*-idx?-ubyte.gz or t10k-* from dir (NULL: FG_FASHION_MNIST_DIR). */
int fg_dataset_load_mnist_dir(fg_dataset *d, const char *dir, int train);
/* CIFAR-10 binary batches: records of 1 label byte + 3072 bytes (3, 32, 32). */
int fg_dataset_load_cifar10_files(fg_dataset *d, const char *const *paths, int n_paths);
/* data_batch_1..5.bin or test_batch.bin from dir. */
int fg_dataset_load_cifar10_dir(fg_dataset *d, const char *dir, int train);
/* Deterministic from seed: each class is a shape (square, disc, bars...) at a
 * jittered position and brightness, on a dark noisy background. */
/* Needs h, w >= FG_SYNTHETIC_MIN_SIZE; labels are 0..FG_SYNTHETIC_CLASSES-1. */
#define FG_SYNTHETIC_CLASSES 4
#define FG_SYNTHETIC_MIN_SIZE 4
void fg_dataset_synthetic(fg_dataset *d, int n, int c, int h, int w, uint64_t seed);

/* Batches over an epoch permutation drawn from stream (seed, epoch), so the
 * iterator's whole state is (epoch, pos) and a resumed run sees the same
 * batches. drop_last skips a final short batch. */
typedef struct fg_batch_iter {
    const fg_dataset *d;
    int batch, shuffle, drop_last;
    uint64_t seed;
    long epoch;                /* current epoch, from 0 */
    int pos;                   /* next position in the permutation */
    int *perm;
} fg_batch_iter;
void fg_batch_iter_init(fg_batch_iter *it, const fg_dataset *d, int batch,
                        int shuffle, int drop_last, uint64_t seed);
/* Moves to (epoch, pos), e.g. from a checkpoint. */
void fg_batch_iter_seek(fg_batch_iter *it, long epoch, int pos);
/* Writes up to batch indices; returns how many, 0 at the end of an epoch
 * (the next call starts the next epoch). */
int fg_batch_iter_next(fg_batch_iter *it, int *idx);
void fg_batch_iter_free(fg_batch_iter *it);

/* Uniform dequantization of images idx[0..n) into out (n, C, H, W):
 * x = floor(x / 2^(8-n_bits)) / 2^n_bits - 0.5 + U(0, 2^-n_bits). */
void fg_dequantize(const fg_dataset *d, const int *idx, int n, int n_bits,
                   fg_rng *rng, float *out);
/* Labels of images idx[0..n) as ints. */
void fg_dataset_labels(const fg_dataset *d, const int *idx, int n, int *out);

/* ---------------------------------------------------------------- images
 * Writes x (N, C, H, W), values in [-0.5, 0.5] (clamped), as one PNG grid of
 * rows x cols cells separated by a border of pixels (gray for C = 1, RGB for
 * C = 3), atomically. Cells beyond N stay background. */
int fg_png_write_grid(const char *path, const float *x, int n, int c, int h,
                      int w, int rows, int cols, int border);
/* A flow's inverse can overflow for an unlucky latent (a coupling scale
 * near zero, divided by): such an image is a result, not an error. Sets
 * every image of x (n, C, H, W) holding a non-finite value to mid-grey and
 * returns how many there were. */
int fg_images_grey_nonfinite(fg_tensor *x);

/* ---------------------------------------------------------------- data parallelism
 * Data-parallel training over MPI: one process per rank, each with a full copy
 * of the model. Built without MPI (configure --without-mpi), or run without an
 * MPI launcher (no mpirun environment), the same calls describe one process:
 * rank 0 of 1, and every reduction leaves its input as it is. Every rank must
 * make the collective calls (all but rank/size) in the same order. Errors in
 * MPI are fatal (MPI_ERRORS_ARE_FATAL): a rank that dies stops the job. */
/* Starts MPI when launched by mpirun (idempotent); FG_ERR if it cannot. */
int fg_dist_init(void);
void fg_dist_finalize(void);
int fg_dist_rank(void);
int fg_dist_size(void);
/* 1 when the library was built with MPI. */
int fg_dist_available(void);
/* Stops every rank with this exit status (exit() when alone). */
void fg_dist_abort(int status) __attribute__((noreturn));
/* In-place sum of v[0..n) over all ranks, in double; ctx unused, so the
 * function fits a reducer callback such as fg_actnorm_set_reducer's. */
void fg_dist_sum(double *v, int n, void *ctx);
/* In-place maximum of v[0..n) over all ranks. */
void fg_dist_max(double *v, int n);
/* Replaces v[0..n) by its mean over ranks. */
void fg_dist_mean(double *v, int n);
/* The largest of every rank's v: a stop request (a signal number, SIGTERM
 * over SIGINT) that reached any rank stops all of them at the same step. */
int fg_dist_agree_max(int v);
/* FG_ERR unless a global batch divides evenly among the ranks. */
int fg_dist_check_batch(int batch);
/* This rank's contiguous shard of a global batch of n: its offset and size. */
int fg_dist_shard_first(int n);
int fg_dist_shard_size(int n);
/* Copies every entry (parameters and buffers) from rank 0 to the others. */
void fg_dist_broadcast_state(const fg_state_list *l);
/* Replaces each parameter gradient by its mean over ranks, with one
 * MPI_Allreduce on a flat float32 buffer; returns the bytes of that buffer
 * (4 x parameter count), 0 when alone. */
size_t fg_dist_average_grads(const fg_state_list *l);
/* FG_OK when all ranks hold bit-identical values in l; FG_ERR otherwise. */
int fg_dist_check_same(const fg_state_list *l);

#ifdef __cplusplus
}
#endif
#endif
