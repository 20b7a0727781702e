/* flowgrad model configs: YAML in, a plain validated description out.
 *
 * A config is parsed, checked and expanded here; nothing is built. The
 * result is a flat list of layer specs with the tensor shape entering and
 * leaving each one, plus the top prior and the training settings, so the
 * code that builds flows sees one form whatever the user wrote.
 *
 * Every error is input error: the loaders return FG_ERR and set fg_error()
 * to "NAME:LINE:COLUMN: message" (1-based, pointing at the offending node)
 * saying what was expected. They never abort on any input.
 *
 * ------------------------------------------------------------------ format
 *
 * The document is one mapping with these keys:
 *
 *   description: text            optional, free text (ignored)
 *   model:       mapping         required, see below
 *   train:       mapping         optional; absent means has_train = 0
 *
 * model, common keys (both forms):
 *   type:        glow | flow     required: the preset or the generic list
 *   height, width, channels      required, integers >= 1: the image shape
 *   n_bits:      1..8            default 8: bits per pixel kept by
 *                                dequantization
 *   learn_top:   bool            default true: top prior mean and log-std
 *                                from a zero-initialized conv (else N(0, 1))
 *   y_condition: bool            default false: class-conditional top prior
 *   classes:     2..100000       required when y_condition is true
 *   weight_y:    >= 0            default 0.01: weight of the classification
 *                                loss when y_condition is true
 *   condition:   none | class | tensor   default none: a conditional flow
 *                                p(x | c) (a cINN). The condition c reaches
 *                                every coupling's network (concatenated to
 *                                its conditioning part), every learned split
 *                                prior (beside the kept half) and the top
 *                                prior (its learned conv's input), in
 *                                training, evaluation and sampling.
 *                                class: c is the one-hot label, Cc = classes
 *                                (needs classes; the data's labels are the
 *                                condition, `flowgrad sample --class K`
 *                                chooses it); tensor: c is any tensor of
 *                                condition_channels channels a program
 *                                gives through the library (vectors (N, Cc)
 *                                or images (N, Cc, Hc, Wc) whose Hc, Wc are
 *                                multiples of each layer's grid,
 *                                fg_condition_for in flows/flow.h); the
 *                                command line cannot give one. Needs
 *                                learn_top: true. With y_condition as well,
 *                                both hold: y_condition keeps its per-class
 *                                shift of the top prior and its
 *                                classification loss, and the condition
 *                                feeds every layer besides.
 *   condition_channels: 1..4096  required with condition: tensor (Cc), and
 *                                only then
 *   permutation_seed: 0..2^31-1  default: none. Draws the channel orders
 *                                (shuffle permutations, the invconvs'
 *                                starting rotations) from this seed instead
 *                                of the training seed, so runs of different
 *                                seeds train the same architecture and
 *                                differ only in their weights' start, data
 *                                order and noise, as reverse's runs always
 *                                do (the ablation config sets it)
 *
 * model, type: glow (the preset of Kingma & Dhariwal 2018):
 *   levels:      1..16           required: L; each level squeezes by 2, so
 *                                height and width must divide by 2^L
 *   steps:       1..4096         required: K flow steps per level
 *   hidden:      1..65536        default 512: coupling network width
 *   coupling:    additive | affine | spline default affine
 *   bins:        2..64           default 8; spline coupling only: K bins
 *   bound:       (0, 1e4]        default 3; spline coupling only: the
 *                                spline covers [-bound, bound], identity
 *                                outside
 *   permutation: invconv | shuffle | reverse default invconv
 *   lu:          bool            default true; only with permutation invconv
 *   actnorm_scale: > 0           default 1.0
 *   split_logs_floor: [0, 30]    default 0 (Glow's unbounded prior): F > 0
 *                                keeps every split prior's log-std above -F,
 *                                softly (the split's logs_floor)
 * It expands to, for each level l = 0..L-1:
 *   squeeze, K x [actnorm, invconv | permute, coupling], split (not after
 *   the last level; learned conv prior)
 *
 * model, type: flow (the generic layer list):
 *   flow:        sequence        required, at least one entry. An entry is a
 *                                layer name alone (`- squeeze`), a layer name
 *                                mapped to its options (`- coupling: {hidden:
 *                                64}`; null or {} means all defaults), or a
 *                                repeat block:
 *                                  - repeat: N      (1..100000)
 *                                    flow: [...]    the entries to repeat
 *   layers and their options (each kind's entry in models/layer_<kind>.c
 *   holds them as data: keys, types, ranges, defaults, docs):
 *     squeeze                    no options; height and width must be even
 *     actnorm   scale: > 0       default 1.0
 *     invconv   lu: bool         default true
 *     permute   type: reverse | shuffle          required
 *     coupling  type: additive | affine | spline default affine; spline:
 *                                                the rational-quadratic
 *                                                spline of Durkan et al.
 *                                                (2019), identity tails
 *               hidden: 1..65536                 default 512
 *               mask: channel | channel_flip | checkerboard |
 *                     checkerboard_flip          default channel
 *               scale: sigmoid | tanh            default sigmoid; affine only
 *               bins: 2..64                      default 8; spline only
 *               bound: (0, 1e4]                  default 3; spline only: the
 *                                                spline covers [-bound,
 *                                                bound] in and out
 *               net: conv | dense                default conv: Glow's three
 *                                                convolutions; dense: fully
 *                                                connected ReLU layers on
 *                                                vectors (after flatten)
 *               layers: 1..64                    default 4; dense only: hidden
 *                                                layers of width `hidden`
 *               conditioner: list of modules     default: the network net
 *                                                names (hidden and layers
 *                                                size it); a list replaces
 *                                                it, and hidden and layers
 *                                                go unused. Entries as in
 *                                                flow: (`- relu`, `- conv:
 *                                                {width: 64}`); the last is
 *                                                the output, which starts
 *                                                at zero:
 *                 conv: width 1..65536 (required), kernel 1 | 3 (default 3),
 *                       bias (default true); conv nets only
 *                 dense: width (required), bias (default true); dense nets
 *                 actnorm, relu, tanh, elu, leaky_relu (slope 0.01)
 *                 residual: x + B(act(A(x))), A, B convs (conv nets) or dense
 *                       layers, B zero at the start; width 0..65536 (A's
 *                       outputs, default 0: x's), kernel 1 | 3 (conv nets,
 *                       default 3), activation relu | tanh | elu | leaky_relu
 *                       (default relu)
 *                 zero_conv: kernel 1 | 3 (default 3); conv nets' output:
 *                       Glow's zero conv with its per-channel scale e^{3 logs}
 *                 zero_dense: dense nets' output
 *               Modules are named nn.<i> in checkpoints, i the index in the
 *               list, so Glow's network as a list ([conv: {width: 512,
 *               bias: false}, actnorm, relu, conv: {width: 512, kernel: 1,
 *               bias: false}, actnorm, relu, zero_conv]) has Glow's names.
 *               channel masks need an even channel count; checkerboard masks
 *               need at least two pixels; dense nets need vectors (after a
 *               flatten) and a channel mask
 *     maf       type: affine | spline | additive default affine
 *     iaf       hidden: 1..65536                 default 512
 *               layers: 1..64                    default 2: masked hidden
 *                                                layers
 *               scale, bins, bound               as for coupling
 *               Autoregressive flows on vectors (after a flatten), with a
 *               MADE conditioner. maf: density (training) in one network
 *               pass, sampling in D passes for D entries; iaf the reverse:
 *               sampling in one pass, density in D passes. The order is
 *               the vector's own (add a permute between layers).
 *     flatten                    no options: CxHxW -> (C*H*W)x1x1, vectors
 *                                carried as 1x1 images
 *     scale_diag                 no options: NICE's diagonal scaling,
 *                                x * exp(logs) with logs per channel
 *     split     prior: learned | standard        default learned; needs an
 *               even channel count and must not be the last entry
 *   The whole list may expand to at most FG_CONFIG_MAX_LAYERS layers.
 *
 * train:
 *   dataset:     mapping         required
 *     name:      fashion-mnist | mnist | cifar10 | synthetic | folder   required
 *     path:      text            directory of the dataset's files; default
 *                                /usr/share/datasets/fashion-mnist for
 *                                fashion-mnist (Debian's dataset-fashion-mnist),
 *                                required for mnist, cifar10 and folder, unused
 *                                by synthetic
 *     flip:      bool            default false: mirror each training image
 *                                left-right with probability 1/2 (as Glow
 *                                does on CIFAR-10), drawn from the stream
 *                                (seed, FG_STREAM_FLIP + step) by the image's
 *                                place in the global batch, so resumed and
 *                                multi-rank runs flip the same images; test
 *                                images are never flipped
 *     The image shape must match the dataset (28x28x1 for the MNISTs,
 *     32x32x3 for CIFAR-10; synthetic and folder take any shape), and
 *     classes, when given, must be 10 for the three real datasets.
 *   A folder dataset is the user's own PNG and JPEG images under path (see
 *   the image folder notes in nn/io.h for every rule). It needs channels 1
 *   (gray) or 3 (RGB); each image is centre-cropped to the model's aspect
 *   and resized to its height and width. With y_condition, classes must be
 *   the number of class subfolders. Its own keys:
 *     test_path: text            a folder of test images, labeled by path's
 *                                classes; default: about 10 % of path's
 *                                images by a hash of their relative names
 *                                (fg_folder_in_test_split)
 *     resize:    area | bilinear default area: area averaging along an axis
 *                                that shrinks, bilinear along one that grows;
 *                                bilinear: bilinear along both
 *     on_bad_file: refuse | skip default refuse: a corrupt, truncated or
 *                                unreadable image stops the load, naming it;
 *                                skip: such files are left out and listed
 *     cache:     bool            default true: keep the decoded images in
 *                                path/.flowgrad-cache-HxWxC.safetensors (and
 *                                likewise in test_path), rebuilt when the
 *                                folder or the resize rule changes
 *   batch:       1..65536        default 64
 *   optimizer:   adam | adamax   default adam
 *   lr:          (0, 1]          default 1e-3
 *   warmup:      >= 0            default 0: steps of linear LR warmup
 *   grad_clip:   >= 0            default 0: global gradient-norm clip, 0 = off
 *   schedule:    constant | cosine | linear   default cosine: after warmup,
 *                                lr held, or decayed to 0 at the last step
 *   guard:       true | false    default true: skip outlier steps (loss or
 *                                gradient norm far above recent steps)
 *   guard_window: 10..4096       default 100: accepted steps the guard's
 *                                median and MAD are taken over
 *   guard_threshold: > 0         default 8: robust sigmas above the median
 *                                that make an outlier
 *   clip_factor: >= 0            default 4: clip the gradient norm at this
 *                                times the window's median norm, 0 = off;
 *                                needs guard: true (it keeps the window)
 *   ema:         [0, 1)          default 0: EMA decay of weights, 0 = off
 *   epochs:      1..1000000      default 1 when steps is absent
 *   steps:       1..2^40         training steps; give epochs or steps, not both
 *   seed:        0..2^63-1       default 0
 *   checkpoint_every: >= 0       default 0: steps between checkpoints, 0 = at
 *                                the end of each epoch
 *   sample_every: >= 0           default 0: steps between sample grids, 0 = at
 *                                the end of each epoch
 *   test_every:  >= 0            default 0: steps between test evaluations,
 *                                0 = at the end of each epoch
 *   temperature: [0, 10]         default 0.7: sampling temperature
 *   memory:      store | invert  default store: how a training step gets its
 *                                gradients. store records every op of the
 *                                flow on the tape; invert keeps no flow
 *                                activations and computes each layer's input
 *                                again from its output in the backward pass
 *                                (flows/multiscale_invert.c): the same
 *                                gradients up to float rounding, a fraction of
 *                                the memory, one more pass of the flow's
 *                                inverses
 *
 * ------------------------------------------------------------------ limits
 * Hostile input stays bounded: input of at most FG_CONFIG_MAX_BYTES, one
 * document, nesting of at most FG_CONFIG_MAX_DEPTH, scalars of at most
 * FG_CONFIG_MAX_SCALAR bytes, no anchors, aliases or tags, no duplicate
 * keys, UTF-8 only (NUL and other control bytes are refused by the YAML
 * reader). Integers and booleans must be plain (unquoted) scalars. */
#ifndef FLOWGRAD_MODELS_CONFIG_H
#define FLOWGRAD_MODELS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* fg_optim_kind (FG_ADAM, FG_ADAMAX) comes from the optimizers, the
 * resize and bad-file choices of image folders from nn/io.h. */
#include "nn/nn.h"
#include "nn/io.h"
/* The coupling transforms (fg_transform_kind) a glow preset names. */
#include "flows/flow.h"
#include "nn/step_guard.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FG_CONFIG_MAX_BYTES (1 << 20)
#define FG_CONFIG_MAX_DEPTH 64
#define FG_CONFIG_MAX_SCALAR 4096
#define FG_CONFIG_MAX_NODES 100000
#define FG_CONFIG_MAX_KEYS 256
#define FG_CONFIG_MAX_LAYERS 100000
/* Steps of a run (train: steps, --steps); also bounds the counters a
 * checkpoint may hold, so that resuming can never overflow them. */
#define FG_CONFIG_MAX_STEPS (1LL << 40)

/* Shape of one sample, channels first. */
typedef struct fg_chw {
    int c, h, w;
} fg_chw;

/* A layer kind of the registry (models/layer_kind.h). */
typedef struct fg_layer_kind fg_layer_kind;

/* The most options a layer kind has. */
#define FG_LAYER_MAX_OPTIONS 12
/* The longest module list of a network option (a coupling's conditioner),
 * and the most options a module has. */
#define FG_LAYER_MAX_MODULES 32
#define FG_MODULE_MAX_OPTIONS 4

/* One module of a network option's list: its kind (the index in the
 * option's module table, models/layer_kind.h) and options, as a layer
 * spec holds its own. */
typedef struct fg_module_spec {
    int kind;
    double opt[FG_MODULE_MAX_OPTIONS];
    int line, column;   /* where it was declared, 1-based */
} fg_module_spec;

typedef struct fg_layer_spec {
    const fg_layer_kind *kind;
    /* The options in the kind's schema order (models/layer_kind.h). */
    double opt[FG_LAYER_MAX_OPTIONS];
    /* The list of the kind's network option, whose opt[] value is its
     * length (0: the kind's default network). */
    fg_module_spec net[FG_LAYER_MAX_MODULES];
    fg_chw in;          /* shape entering the layer */
    fg_chw out;         /* shape leaving it (for split: the kept half) */
    int level;          /* number of splits before this layer */
    int cond_channels;  /* the model's condition channels (0: none): what a
                           conditional layer takes beside its own input */
    int line, column;   /* where it was declared, 1-based (for messages) */
} fg_layer_spec;

typedef enum { FG_MODEL_GLOW, FG_MODEL_FLOW } fg_model_type;
/* What a conditional flow is conditioned on (model.condition). */
typedef enum { FG_CONDITION_NONE = 0, FG_CONDITION_CLASS,
               FG_CONDITION_TENSOR } fg_condition_kind;
typedef enum { FG_PERMUTATION_INVCONV, FG_PERMUTATION_SHUFFLE,
               FG_PERMUTATION_REVERSE } fg_permutation;

typedef struct fg_model_spec {
    fg_model_type type;       /* how it was declared; layers is what counts */
    fg_chw input;             /* (channels, height, width) */
    int n_bits;
    /* top prior */
    int learn_top;
    int y_condition;
    int classes;              /* 0 when not given */
    float weight_y;
    /* the condition of every coupling and prior (model.condition) */
    fg_condition_kind condition;
    int cond_channels;        /* Cc: classes for class, condition_channels
                                 for tensor, 0 for none */
    /* the glow preset as written (meaningful when type == FG_MODEL_GLOW) */
    int levels, steps, hidden;
    fg_transform_kind coupling;
    int bins;                 /* spline coupling only (else 0) */
    float bound;              /* spline coupling only (else 0) */
    fg_permutation permutation;
    int lu;
    float actnorm_scale;
    float split_logs_floor;   /* 0, or the splits' logs_floor */
    int permutation_seed;     /* -1: channel orders from the training seed */
    /* the expanded layer list, the one thing builders read */
    int n_layers;
    fg_layer_spec *layers;
    fg_chw top;               /* shape reaching the top prior */
} fg_model_spec;

typedef enum { FG_DATASET_NONE, FG_DATASET_FASHION_MNIST, FG_DATASET_MNIST,
               FG_DATASET_CIFAR10, FG_DATASET_SYNTHETIC, FG_DATASET_FOLDER } fg_dataset_kind;

/* How a training step keeps what its backward pass needs (train.memory). */
typedef enum { FG_MEMORY_STORE = 0, FG_MEMORY_INVERT } fg_memory_mode;

typedef struct fg_train_spec {
    fg_dataset_kind dataset;  /* FG_DATASET_NONE when there is no train: */
    char *data_path;          /* NULL only for synthetic data */
    /* image folders only */
    char *test_path;          /* NULL: split the folder by name */
    fg_resize_kind resize;
    fg_bad_file_policy on_bad_file;
    int cache;
    int flip;                 /* random horizontal flips of training batches */
    int batch;
    fg_optim_kind optimizer;  /* FG_ADAM or FG_ADAMAX (nn/nn.h) */
    double lr;
    int64_t warmup;
    double grad_clip;         /* 0 = off */
    fg_schedule_kind schedule;
    int guard;                /* 1: outlier steps are skipped (nn/step_guard.c) */
    int guard_window;
    double guard_threshold;
    double clip_factor;       /* clip at this times the median norm; 0 = off */
    double ema;               /* 0 = off */
    int epochs;               /* 0 when steps is given */
    int64_t steps;            /* 0 when counted in epochs */
    uint64_t seed;
    int64_t checkpoint_every; /* 0 = end of each epoch */
    int64_t sample_every;     /* 0 = end of each epoch */
    int64_t test_every;       /* 0 = end of each epoch */
    double temperature;
    fg_memory_mode memory;
} fg_train_spec;

typedef struct fg_config {
    char *name;               /* display name used in messages */
    char *text;               /* the YAML as given, NUL-terminated */
    size_t text_len;
    fg_model_spec model;
    int has_train;
    fg_train_spec train;
} fg_config;

/* Parse, validate and expand. On success *out owns a config to release
 * with fg_config_free; on FG_ERR *out is NULL and fg_last_error() says
 * "NAME:LINE:COLUMN: what was expected". */
FG_API int fg_config_load_file(const char *path, fg_config **out);
/* name labels messages (e.g. "run/checkpoint.safetensors:config"); text
 * need not be NUL-terminated. */
FG_API int fg_config_load_string(const char *text, size_t len, const char *name,
                          fg_config **out);
FG_API void fg_config_free(fg_config *cfg);

/* Human-readable dump: model summary, one line per expanded layer with its
 * level and shapes, the top prior, and the training settings. */
FG_API void fg_config_print(const fg_config *cfg, FILE *f);
FG_API void fg_model_spec_print(const fg_model_spec *m, FILE *f);
/* "coupling affine hidden=512 mask=channel scale=sigmoid" into buf. */
FG_API const char *fg_layer_spec_describe(const fg_layer_spec *l, char *buf, size_t n);

/* Names as written in YAML. */
FG_API const char *fg_layer_kind_name(const fg_layer_kind *k);
FG_API const char *fg_dataset_kind_name(fg_dataset_kind d);
FG_API const char *fg_memory_mode_name(fg_memory_mode m);
FG_API const char *fg_condition_kind_name(fg_condition_kind c);
/* 1 when the model reads the data's labels: y_condition, or condition:
 * class (then every image of a data set needs a label below classes). */
FG_API int fg_model_spec_needs_labels(const fg_model_spec *m);
/* FG_OK unless the model is conditioned on a tensor (condition: tensor),
 * which the data sets of a config cannot give: then FG_ERR saying that
 * `what` (a command) needs condition none or class, the config named. */
FG_API int fg_model_spec_check_data_condition(const fg_model_spec *m, const char *name,
                                              const char *what);
/* FG_OK and *out for "store" or "invert", else FG_ERR naming the choices. */
FG_API int fg_memory_mode_parse(const char *s, fg_memory_mode *out);

#ifdef __cplusplus
}
#endif
#endif
