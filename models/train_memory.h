/* Memory a config needs for training at a batch size, from a measured step.
 *
 * The per-step intermediates are measured, not modelled: a throwaway copy of
 * the model takes real training steps (forward and backward, actnorm
 * initialization included) at batch 2 and at batch 3 on random input of the
 * config's shape, each on a fresh graph, and the peaks of the graph's arena
 * and scratch arena give a line a + b * batch. The arenas' events are
 * recorded too and replayed at the batch asked for, which adds the chunk
 * ends that tensors too large for what is left of a chunk skip (the line
 * alone fell 3-6 % short on CIFAR-10 shapes). The same is done for sampling
 * 64 images (what flowgrad train writes as sample grids), since at small
 * batches that can be the larger step. The step is measured in the memory
 * mode asked for (train.memory): in invert mode the flow's activations are
 * not kept and the peak is one layer's recorded graph plus a few tensors of
 * the chain's width, still linear in the batch. To these are added the parameters x 4
 * bytes x (value, gradient, 2 optimizer moments, EMA copy when configured,
 * and with train.guard the guard's copy of all but the gradient),
 * the dataset as loaded (uint8 images and labels, and the epoch
 * permutation), and a fixed allowance for the process itself and BLIS
 * packing buffers (FG_TRAIN_MEMORY_BASE_BYTES and _THREAD_BYTES per thread). */
#ifndef FLOWGRAD_MODELS_TRAIN_MEMORY_H
#define FLOWGRAD_MODELS_TRAIN_MEMORY_H

#include "nn/io.h"
#include "models/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Code, libraries, the parsed config and thread stacks (the base), and per
 * compute thread BLIS's packed blocks of A and B (a few MiB for the block
 * sizes of the x86-64 kernels). Measured: 'flowgrad train' peaks about 6 MiB
 * above its arenas, parameters and data on 1 thread and 13 MiB on 2
 * (BENCHMARKS.md, "Memory estimate"). */
#define FG_TRAIN_MEMORY_BASE_BYTES (8.0 * 1024 * 1024)
#define FG_TRAIN_MEMORY_THREAD_BYTES (4.0 * 1024 * 1024)

/* Images in a sample grid of flowgrad train. */
#define FG_TRAIN_MEMORY_SAMPLE_IMAGES 64

typedef struct fg_train_memory {
    /* measured once per config */
    double step_fixed;        /* a: arena + scratch peak, bytes, of a training step */
    double step_per_image;    /* b: its growth per image */
    double sample_bytes;      /* the same for sampling 64 images, no gradients */
    size_t params;
    int copies;               /* 4-byte copies per parameter */
    int guard_copies;         /* more of them the step guard keeps (train.guard) */
    fg_memory_mode memory;    /* the training mode measured (train.memory) */
    double dataset_bytes;
    /* The measured steps' arena events, replayed at each batch to count
     * the chunk ends that large tensors skip (tensor/arena_trace.h); NULL
     * when the two measured steps differed, and the line is used alone.
     * Owned: fg_train_memory_free. */
    struct fg_train_memory_layout *layout;
    /* at a batch size */
    int batch;
    double step_bytes;        /* max(replayed or a + b * batch, sample_bytes) */
    double param_bytes;
    double runtime_bytes;     /* base + per thread of fg_get_threads() */
    double total;
} fg_train_memory;

/* FG_ERR, before anything is allocated, when the model of cfg alone
 * (values and gradients, fg_model_spec_size) needs more than
 * fg_memory_available(): building it would stop in malloc. */
FG_API int fg_train_memory_check_build(const fg_config *cfg);
/* Measures the step and sampling lines on a throwaway model built from the
 * config (the caller's model, if any, is not touched). use_ema: whether the
 * run keeps an EMA copy. dataset_bytes: bytes of the loaded data (see
 * fg_train_memory_dataset_bytes). FG_ERR when the model cannot be built, or
 * would not fit (fg_train_memory_check_build). */
FG_API int fg_train_memory_measure(const fg_config *cfg, int use_ema, double dataset_bytes,
                         fg_train_memory *m);
/* The same for a given memory mode instead of the config's train.memory
 * (store when it has no train: section). */
FG_API int fg_train_memory_measure_mode(const fg_config *cfg, fg_memory_mode mode, int use_ema,
                                        double dataset_bytes, fg_train_memory *m);
/* Fills the batch-dependent fields. */
FG_API void fg_train_memory_at(fg_train_memory *m, int batch);
/* Frees what a measurement holds (the replayed layout); m stays readable. */
FG_API void fg_train_memory_free(fg_train_memory *m);
/* Bytes held by a loaded split: images, labels and the permutation of an epoch. */
FG_API double fg_train_memory_dataset_bytes(const fg_dataset *d);
/* Bytes the system can still give: FLOWGRAD_MEMORY_AVAILABLE (bytes, or with
 * a K, M or G suffix) when set, else MemAvailable of /proc/meminfo, or the
 * address-space limit (RLIMIT_AS) when that is lower; -1 when none is
 * known. */
FG_API double fg_memory_available(void);
/* The largest batch in [1, max_batch] whose estimate fits in avail; 0 when
 * none does. */
FG_API int fg_train_memory_largest_batch(const fg_train_memory *m, double avail, int max_batch);
/* Refuses a run that cannot fit: measures the config, sets the estimate for
 * batch (the images this process trains on per step) and returns FG_ERR
 * with the estimate, the memory available and a batch that fits when the
 * total exceeds fg_memory_available(). FG_OK when it fits or when the
 * available memory is unknown. */
FG_API int fg_train_memory_check(const fg_config *cfg, int batch, const fg_dataset *train,
                       const fg_dataset *test, fg_train_memory *m);
/* "1.23 GiB", "45.6 MiB", "789 KiB" into buf. */
FG_API const char *fg_train_memory_human(double bytes, char *buf, size_t n);
/* The breakdown, as lines of text or as one JSON object. */
FG_API void fg_train_memory_print(const fg_train_memory *m, FILE *f);
FG_API void fg_train_memory_print_json(const fg_train_memory *m, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
