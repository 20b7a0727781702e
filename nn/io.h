/* flowgrad nn I/O: safetensors checkpoints, atomic files, datasets and
 * their batches, PNG grids. */
#ifndef FLOWGRAD_NN_IO_H
#define FLOWGRAD_NN_IO_H

#include "nn/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

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
FG_API const char *fg_dtype_name(fg_dtype t);
FG_API size_t fg_dtype_size(fg_dtype t);

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

FG_API void fg_st_init(fg_safetensors *st);
FG_API void fg_st_free(fg_safetensors *st);
/* Adds an entry; copy 0 borrows data until the write. Repeated name: fatal. */
FG_API void fg_st_add(fg_safetensors *st, const char *name, fg_dtype dtype, int ndim,
               const int64_t *shape, const void *data, int copy);
FG_API void fg_st_add_tensor(fg_safetensors *st, const char *name, const fg_tensor *t, int copy);
FG_API void fg_st_add_i64(fg_safetensors *st, const char *name, const int64_t *v, int n);
/* Borrowing adds of every entry of a state list. */
FG_API void fg_st_add_state(fg_safetensors *st, const fg_state_list *l);
FG_API void fg_st_set_meta(fg_safetensors *st, const char *key, const char *value);
FG_API const char *fg_st_get_meta(const fg_safetensors *st, const char *key);
FG_API const fg_st_tensor *fg_st_find(const fg_safetensors *st, const char *name);

/* Serializes to a stream (FG_ERR on any write error), or to path
 * atomically: PATH.tmp.<pid>, fsync, rename, fsync of the directory. On
 * failure the old file is untouched and the temporary removed. */
FG_API int fg_st_write_stream(const fg_safetensors *st, FILE *f, const char *what);
FG_API int fg_st_write(const fg_safetensors *st, const char *path);
/* Reads and validates an untrusted file (or buffer). st must be fresh from
 * fg_st_init; on error it is left empty. Messages are "PATH: problem". */
FG_API int fg_st_read(fg_safetensors *st, const char *path);
FG_API int fg_st_parse(fg_safetensors *st, const unsigned char *buf, size_t len, const char *what);
/* FG_OK when entry name exists as F32 with t's shape; else FG_ERR naming
 * the tensor and both shapes. get copies it into t after the same check. */
FG_API int fg_st_check_tensor(const fg_safetensors *st, const char *name, const fg_tensor *t);
FG_API int fg_st_get_tensor(const fg_safetensors *st, const char *name, fg_tensor *t);
FG_API int fg_st_get_i64(const fg_safetensors *st, const char *name, int64_t *v, int n);
/* Loads every entry of l from st (F32, same shape). Entries of st not in l
 * are an error unless their name starts with skip_prefix (may be NULL), or
 * skip_prefix is "" (ignore all extras). Names and shapes only: what the
 * values mean is checked by fg_checkpoint_check_values (models/checkpoint.h),
 * which a file from outside must pass first. */
FG_API int fg_st_load_state(const fg_safetensors *st, const fg_state_list *l,
                     const char *skip_prefix);
/* Optimizer: moments plus "optim.step" (I64). */
FG_API void fg_optim_save(fg_optim *o, fg_safetensors *st);
FG_API int fg_optim_load(fg_optim *o, const fg_safetensors *st);

/* Atomic file: writes land in PATH.tmp.<pid> until commit renames it. Open
 * refuses a path that exists and is not a regular file (a device, fifo or
 * directory is never replaced), and first removes the temporaries
 * (fg_atomic_remove_stale) that killed writers left in the folder. */
typedef struct fg_atomic_file {
    FILE *f;
    char *path, *tmp;
} fg_atomic_file;
FG_API int fg_atomic_open(fg_atomic_file *a, const char *path);
/* Removes "*.tmp.<pid>" regular files of this user in path's folder whose
 * process no longer exists on this machine; returns how many. */
FG_API int fg_atomic_remove_stale(const char *path);
FG_API int fg_atomic_commit(fg_atomic_file *a);   /* closes; FG_ERR removes tmp */
FG_API void fg_atomic_abort(fg_atomic_file *a);

/* ---------------------------------------------------------------- data
 * N images of uint8 (C, H, W) with labels in [0, n_classes). */
typedef struct fg_dataset {
    int n, c, h, w, n_classes;
    uint8_t *images;           /* n * c * h * w */
    uint8_t *labels;           /* n */
    char **class_names;        /* n_classes names, or NULL (image folders set them) */
    char **names;              /* n image names, or NULL: an image folder's are the
                                  files' paths relative to the folder */
} fg_dataset;
#define FG_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
FG_API void fg_dataset_free(fg_dataset *d);
/* IDX files (gzip or plain, through zlib): images magic 0x00000803 with
 * dims (n, h, w), labels magic 0x00000801 with dims (n). */
FG_API int fg_dataset_load_idx(fg_dataset *d, const char *images_path, const char *labels_path);
/* train-*-idx?-ubyte.gz or t10k-* from dir (NULL: FG_FASHION_MNIST_DIR). */
FG_API int fg_dataset_load_mnist_dir(fg_dataset *d, const char *dir, int train);
/* CIFAR-10 binary batches: records of 1 label byte + 3072 bytes (3, 32, 32). */
FG_API int fg_dataset_load_cifar10_files(fg_dataset *d, const char *const *paths, int n_paths);
/* data_batch_1..5.bin or test_batch.bin from dir. */
FG_API int fg_dataset_load_cifar10_dir(fg_dataset *d, const char *dir, int train);
/* Deterministic from seed: each class is a shape (square, disc, bars...) at a
 * jittered position and brightness, on a dark noisy background. */
/* Needs h, w >= FG_SYNTHETIC_MIN_SIZE; labels are 0..FG_SYNTHETIC_CLASSES-1. */
#define FG_SYNTHETIC_CLASSES 4
#define FG_SYNTHETIC_MIN_SIZE 4
FG_API void fg_dataset_synthetic(fg_dataset *d, int n, int c, int h, int w, uint64_t seed);

/* Images that look unlike a data set, made from it with no download, for
 * out-of-distribution comparisons: each image flipped upside down, each
 * value inverted (255 - x), or replaced by uniform noise in [0, 255] drawn
 * from seed (the image count, shape and labels are kept). */
typedef enum {
    FG_TRANSFORM_FLIP_VERTICAL, FG_TRANSFORM_INVERT, FG_TRANSFORM_NOISE
} fg_image_transform;
#define FG_IMAGE_TRANSFORMS 3
/* "flipped-vertical", "inverted", "noise". */
FG_API const char *fg_image_transform_name(fg_image_transform t);
/* FG_OK and *out when name is one of the names above, else FG_ERR listing them. */
FG_API int fg_image_transform_parse(const char *name, fg_image_transform *out);
/* Transforms every image of d in place. */
FG_API void fg_dataset_transform(fg_dataset *d, fg_image_transform t, uint64_t seed);

/* ---------------------------------------------------------------- image files
 * A decoded PNG or JPEG: h rows of w pixels of c interleaved 8-bit channels
 * (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA). 16-bit PNGs are scaled to 8
 * bits, palettes and low bit depths expanded, transparency becomes alpha.
 * Files from outside are bounded before anything is allocated for them. */
typedef struct fg_image {
    int w, h, c;
    uint8_t *px;
} fg_image;
#define FG_IMAGE_MAX_SIDE 32768
#define FG_IMAGE_MAX_PIXELS (1L << 26)
#define FG_IMAGE_MAX_FILE_BYTES (256L << 20)
/* Decodes len bytes (a PNG or a JPEG, told apart by their signatures).
 * A truncated or corrupt file, a CMYK JPEG or an image over the limits is
 * FG_ERR with "what: problem"; img is then empty. */
FG_API int fg_image_decode(fg_image *img, const uint8_t *buf, size_t len, const char *what);
FG_API int fg_image_read(fg_image *img, const char *path);
FG_API void fg_image_free(fg_image *img);

/* How fg_image_fit resizes. AREA: each output pixel averages the source
 * pixels it covers (weighted by the covered fraction) along an axis that
 * shrinks, and interpolates bilinearly along an axis that grows. BILINEAR:
 * bilinear along both (pixel centres aligned, edges clamped). */
typedef enum { FG_RESIZE_AREA = 0, FG_RESIZE_BILINEAR = 1 } fg_resize_kind;
FG_API const char *fg_resize_kind_name(fg_resize_kind k);
/* img as c x h x w uint8 (C, H, W) into out: the centred crop of the
 * largest rectangle with the aspect w:h, then channels (c = 1: luma
 * 0.299 R + 0.587 G + 0.114 B; c = 3: gray copied to R, G and B; alpha
 * composited over white), rounded to bytes, then resized and rounded again
 * (half up). FG_ERR for c other than 1 or 3 or a size below 1. */
FG_API int fg_image_fit(const fg_image *img, int c, int h, int w, fg_resize_kind resize,
                        uint8_t *out);

/* ---------------------------------------------------------------- image folders
 * A folder of .png, .jpg and .jpeg files (extension in any case; files
 * and folders whose names start with '.' and other files are ignored,
 * symbolic links followed), searched recursively. When its images lie in
 * subfolders, each top-level subfolder is a class: names sorted bytewise
 * give labels 0..C-1 (at most 256), and images directly in the folder
 * beside them are an error. Without subfolders the images are unlabeled
 * (n_classes 0, labels 0). Images are ordered by their path relative to
 * the folder, bytewise.
 *
 * Split: without a test folder, an image is in the test split when
 * fg_folder_in_test_split(its relative path) holds (about 10 %), so adding
 * or removing files never moves the others between splits. With one, the
 * folder is all training data and the test folder all test data, labeled
 * by the training folder's classes (each class folder of the test folder
 * must be one of them).
 *
 * Cache: the first load writes every decoded image of a folder to
 * DIR/.flowgrad-cache-HxWxC.safetensors (atomically), with a fingerprint of
 * the sorted relative names, sizes and modification times, the shape and
 * the resize rule. A later load whose fingerprint matches reads that file
 * instead of decoding; any other is rebuilt, saying so. A folder that
 * cannot be written is used without a cache, said once per process. */
typedef enum { FG_BAD_FILE_REFUSE = 0, FG_BAD_FILE_SKIP = 1 } fg_bad_file_policy;
typedef enum { FG_FOLDER_ALL = 0, FG_FOLDER_TRAIN, FG_FOLDER_TEST } fg_folder_split;
#define FG_FOLDER_MAX_CLASSES 256
#define FG_FOLDER_TEST_PERCENT 10
typedef struct fg_folder_options {
    int c, h, w;                    /* the images' shape: c is 1 or 3 */
    fg_resize_kind resize;
    fg_bad_file_policy on_bad_file; /* refuse: the first bad file is an error;
                                       skip: bad files are left out, listed */
    const char *test_dir;           /* NULL: split the folder by the rule */
    int no_cache;                   /* neither read nor write the cache */
    double max_bytes;               /* more decoded bytes are refused; < 0: no limit */
    FILE *log;                      /* classes, cache and skipped files; NULL: quiet */
} fg_folder_options;
/* "FNV-1a 64 of the relative path, SplitMix64-finalized, mod 100 < 10". */
FG_API int fg_folder_in_test_split(const char *relative_path);
/* The split of dir's images (FG_FOLDER_TEST with o->test_dir: all of
 * test_dir). Errors name the folder or file and the fix. */
FG_API int fg_dataset_load_folder(fg_dataset *d, const char *dir, const fg_folder_options *o,
                                  fg_folder_split split);
/* Every image of dir, both splits, at c x h x w, with area resizing, bad
 * files refused, the cache, and notes to stderr: a folder as a dataset to
 * evaluate a model on. */
FG_API int fg_dataset_open_folder(fg_dataset *d, const char *dir, int c, int h, int w);

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
FG_API void fg_batch_iter_init(fg_batch_iter *it, const fg_dataset *d, int batch,
                        int shuffle, int drop_last, uint64_t seed);
/* Moves to (epoch, pos), e.g. from a checkpoint. */
FG_API void fg_batch_iter_seek(fg_batch_iter *it, long epoch, int pos);
/* Writes up to batch indices; returns how many, 0 at the end of an epoch
 * (the next call starts the next epoch). */
FG_API int fg_batch_iter_next(fg_batch_iter *it, int *idx);
FG_API void fg_batch_iter_free(fg_batch_iter *it);

/* Uniform dequantization of images idx[0..n) into out (n, C, H, W):
 * x = floor(x / 2^(8-n_bits)) / 2^n_bits - 0.5 + U(0, 2^-n_bits). */
FG_API void fg_dequantize(const fg_dataset *d, const int *idx, int n, int n_bits,
                   fg_rng *rng, float *out);
/* Mirrors each image of x (n, C, H, W) left-right with probability 1/2:
 * one uniform draw from rng per image, in order, flipped below 0.5. */
FG_API void fg_flip_random(float *x, int n, int c, int h, int w, fg_rng *rng);
/* Labels of images idx[0..n) as ints. */
FG_API void fg_dataset_labels(const fg_dataset *d, const int *idx, int n, int *out);

/* ---------------------------------------------------------------- images
 * Writes x (N, C, H, W), values in [-0.5, 0.5] (clamped), as one PNG grid of
 * rows x cols cells separated by a border of pixels (gray for C = 1, RGB for
 * C = 3), atomically. Cells beyond N stay background. */
FG_API int fg_png_write_grid(const char *path, const float *x, int n, int c, int h,
                      int w, int rows, int cols, int border);
/* A flow's inverse can overflow for an unlucky latent (a coupling scale
 * near zero, divided by): such an image is a result, not an error. Sets
 * every image of x (n, C, H, W) holding a non-finite value to mid-grey and
 * returns how many there were. */
FG_API int fg_images_grey_nonfinite(fg_tensor *x);

#ifdef __cplusplus
}
#endif
#endif
