/* Memory estimate of a training run from measured steps (see fg_train_memory.h).
 *
 * Agreement with reality (BENCHMARKS.md, "Memory estimate"): against the peak
 * RSS of 'flowgrad train models/fmnist-quick.yaml --steps 3' on 2 threads the
 * estimate was 594 MiB for a measured 591 MiB at batch 16 (where sampling 64
 * images, not the step, sets the peak) and 1109 MiB for 1102 MiB at batch 64:
 * within 1%, above. On the tiny test config the fixed runtime allowance
 * dominates: 14.9 MiB for 9.2 MiB at batch 16, 30.4 MiB for 23.1 MiB at 256;
 * tests/test_memory.c requires measured <= estimate <= 2 x measured there,
 * in both memory modes. In invert mode (BENCHMARKS.md, "Memory by
 * inversion") the line alone was within 0.2% for Glow on Fashion-MNIST
 * (hidden 256 and 512) but 3-6% below for the CIFAR-10 shapes: every
 * layer's graph is rewound and rebuilt in the same arena, and tensors of
 * half a 64 MiB chunk that start a new chunk at different points touch,
 * between the layers, more pages than the peak counts; steps at the small
 * batches measured never cross a chunk, so the line cannot see it. The arenas' events
 * are therefore recorded and replayed at the batch asked for
 * (tensor/arena_trace.h), which counts the pages each chunk has touched. */
#include "models/train_memory.h"
#include "tensor/arena_trace.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* The two batch sizes measured. Not 1: a batch of one is already
 * channel-major and skips the layout copies that every larger batch makes,
 * so its arena events differ. */
#define BATCH_A 2
#define BATCH_B 3

/* The events of the graph's arena and scratch arena over the measured
 * training steps, at BATCH_A ([0]) and BATCH_B ([1]). */
struct fg_train_memory_layout {
    fg_arena_trace *arena[2], *scratch[2];
    size_t arena_chunk, scratch_chunk;
};

static void layout_free(struct fg_train_memory_layout *l)
{
    if (!l)
        return;
    for (int i = 0; i < 2; i++) {
        fg_arena_trace_free(l->arena[i]);
        fg_arena_trace_free(l->scratch[i]);
    }
    free(l);
}

void fg_train_memory_free(fg_train_memory *m)
{
    layout_free(m->layout);
    m->layout = NULL;
}

/* Bytes the step's arenas touch at batch n, or -1 when the traces cannot
 * be replayed. */
static double replayed_step(const struct fg_train_memory_layout *l, double n)
{
    double a = fg_arena_trace_replay(l->arena[0], BATCH_A, l->arena[1], BATCH_B, n,
                                     l->arena_chunk);
    double s = fg_arena_trace_replay(l->scratch[0], BATCH_A, l->scratch[1], BATCH_B, n,
                                     l->scratch_chunk);
    return a < 0 || s < 0 ? -1 : a + s;
}

static double graph_peak(fg_graph *g)
{
    return (double)fg_arena_peak(fg_graph_arena(g)) + (double)fg_arena_peak(fg_graph_scratch(g));
}

/* The condition of n images as a run would give it: the labels' for a
 * class condition, zeros of the same size for a tensor one. */
static fg_var *stand_in_condition(fg_model *m, fg_graph *g, const int *y, int n)
{
    if (m->condition != FG_CONDITION_TENSOR)
        return fg_model_condition(m, g, y, n);
    int shape[2] = {n, m->cond_channels};
    return fg_const(g, 2, shape);
}

/* Peaks of n-image steps on a fresh throwaway model: *train of two training
 * steps (the first also initializes the actnorms from its batch, which the
 * real run's first step does too), *sample of drawing n images after them. */
static int measure_at(const fg_config *cfg, fg_memory_mode mode, int n, double *train,
                      double *sample, struct fg_train_memory_layout *l)
{
    fg_model *m;
    if (fg_model_build(&cfg->model, cfg->train.seed, &m) != FG_OK)
        return FG_ERR;
    int labels[BATCH_B];
    int classes = fg_model_spec_needs_labels(&cfg->model) ? cfg->model.classes : 1;
    for (int i = 0; i < BATCH_B; i++)
        labels[i] = i % classes;
    const int *y = classes > 1 ? labels : NULL;
    fg_rng rng;
    fg_rng_seed(&rng, 1);
    fg_graph *g = fg_graph_create();
    int k = n == BATCH_A ? 0 : 1;
    l->arena[k] = fg_arena_trace_start(fg_graph_arena(g));
    l->scratch[k] = fg_arena_trace_start(fg_graph_scratch(g));
    l->arena_chunk = fg_arena_chunk_bytes(fg_graph_arena(g));
    l->scratch_chunk = fg_arena_chunk_bytes(fg_graph_scratch(g));
    for (int rep = 0; rep < 2; rep++) {
        fg_graph_reset(g);
        int shape[4] = {n, m->c, m->h, m->w};
        fg_var *x = fg_const(g, 4, shape);
        size_t count = fg_numel(&x->t);
        fg_rng_uniform(&rng, x->t.data, count);
        for (size_t i = 0; i < count; i++)
            x->t.data[i] -= 0.5f;
        fg_var *loss = fg_model_loss_cond(m, g, x, y, stand_in_condition(m, g, y, n), NULL,
                                          mode, NULL);
        fg_state_list_zero_grad(&m->state);
        fg_backward(g, loss);
    }
    *train = graph_peak(g);
    fg_arena_trace_stop(fg_graph_arena(g));
    fg_arena_trace_stop(fg_graph_scratch(g));
    fg_graph_destroy(g);

    g = fg_graph_create();
    fg_set_grad_enabled(g, 0);
    fg_model_sample(m, g, n, y, stand_in_condition(m, g, y, n), 0.7f, &rng);
    *sample = graph_peak(g);
    fg_graph_destroy(g);
    fg_model_free(m);
    return FG_OK;
}

int fg_train_memory_check_build(const fg_config *cfg)
{
    fg_model_size size;
    fg_model_spec_size(&cfg->model, &size);
    double avail = fg_memory_available();
    if (avail < 0 || size.build_bytes <= avail)
        return FG_OK;
    char need[32], have[32];
    return fg_error("%s: the model needs about %s to build (%.0f parameters, with their "
                    "gradients), more than the %s available: lower hidden, steps or levels",
                    cfg->name, fg_train_memory_human(size.build_bytes, need, sizeof need),
                    size.params, fg_train_memory_human(avail, have, sizeof have));
}

int fg_train_memory_measure(const fg_config *cfg, int use_ema, double dataset_bytes,
                         fg_train_memory *m)
{
    return fg_train_memory_measure_mode(cfg, cfg->has_train ? cfg->train.memory
                                                            : FG_MEMORY_STORE,
                                        use_ema, dataset_bytes, m);
}

int fg_train_memory_measure_mode(const fg_config *cfg, fg_memory_mode mode, int use_ema,
                                 double dataset_bytes, fg_train_memory *m)
{
    memset(m, 0, sizeof *m);
    m->memory = mode;
    /* The measurement builds the model: refuse one that cannot be built
     * before it stops in malloc. */
    if (fg_train_memory_check_build(cfg) != FG_OK)
        return FG_ERR;
    double t1, t2, s1, s2;
    struct fg_train_memory_layout *l = fg_xcalloc(1, sizeof *l, "memory layout");
    if (measure_at(cfg, mode, BATCH_A, &t1, &s1, l) != FG_OK ||
        measure_at(cfg, mode, BATCH_B, &t2, &s2, l) != FG_OK) {
        layout_free(l);
        return FG_ERR;
    }
    if (replayed_step(l, BATCH_A) < 0)
        layout_free(l), l = NULL;
    m->layout = l;
    /* Every intermediate is a fixed number of floats per image, so the peak
     * is linear in the batch; two points fix the line. */
    const double span = BATCH_B - BATCH_A;
    m->step_per_image = t2 > t1 ? (t2 - t1) / span : 0;
    m->step_fixed = t1 - BATCH_A * m->step_per_image > 0 ? t1 - BATCH_A * m->step_per_image : 0;
    double s_per = s2 > s1 ? (s2 - s1) / span : 0;
    double s_fixed = s1 - BATCH_A * s_per > 0 ? s1 - BATCH_A * s_per : 0;
    m->sample_bytes = s_fixed + s_per * FG_TRAIN_MEMORY_SAMPLE_IMAGES;

    fg_model_size size;
    fg_model_spec_size(&cfg->model, &size);
    m->params = (size_t)size.params;
    /* Value and gradient, Adam's or Adamax's two moments, the EMA copy. */
    m->copies = 4 + (use_ema ? 1 : 0);
    /* The step guard keeps a copy of values, moments and EMA to roll back
     * to (nn/guarded_step.c). */
    m->guard_copies = cfg->has_train && cfg->train.guard ? 3 + (use_ema ? 1 : 0) : 0;
    m->dataset_bytes = dataset_bytes;
    fg_train_memory_at(m, cfg->has_train ? cfg->train.batch : 1);
    return FG_OK;
}

void fg_train_memory_at(fg_train_memory *m, int batch)
{
    m->batch = batch;
    double step = m->step_fixed + m->step_per_image * batch;
    /* The replay counts what the line cannot: chunk ends skipped. */
    double replayed = m->layout ? replayed_step(m->layout, batch) : -1;
    if (replayed > step)
        step = replayed;
    m->step_bytes = step > m->sample_bytes ? step : m->sample_bytes;
    m->param_bytes = (double)m->params * 4.0 * (m->copies + m->guard_copies);
    m->runtime_bytes = FG_TRAIN_MEMORY_BASE_BYTES + FG_TRAIN_MEMORY_THREAD_BYTES * fg_get_threads();
    m->total = m->step_bytes + m->param_bytes + m->dataset_bytes + m->runtime_bytes;
}

double fg_train_memory_dataset_bytes(const fg_dataset *d)
{
    double n = d->n;
    return n * d->c * d->h * d->w + n + n * sizeof(int);
}

/* "123", "64M", "2.5G": bytes; -1 when malformed. */
static double parse_bytes(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return -1;
    switch (toupper((unsigned char)*end)) {
    case 0: return v;
    case 'K': v *= 1024.0; break;
    case 'M': v *= 1024.0 * 1024; break;
    case 'G': v *= 1024.0 * 1024 * 1024; break;
    case 'T': v *= 1024.0 * 1024 * 1024 * 1024; break;
    default: return -1;
    }
    end++;
    if (toupper((unsigned char)*end) == 'I')
        end++;
    if (toupper((unsigned char)*end) == 'B')
        end++;
    return *end ? -1 : v;
}

double fg_memory_available(void)
{
    const char *env = getenv("FLOWGRAD_MEMORY_AVAILABLE");
    if (env && *env) {
        double v = parse_bytes(env);
        if (v >= 0)
            return v;
        fprintf(stderr, "flowgrad: FLOWGRAD_MEMORY_AVAILABLE='%s' ignored: expected bytes, "
                "optionally with a K, M or G suffix\n", env);
    }
    double avail = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        double kib = -1;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lf kB", &kib) == 1)
                break;
        fclose(f);
        avail = kib < 0 ? -1 : kib * 1024.0;
    }
    /* An address-space limit (ulimit -v) ends a run as surely as a lack
     * of memory does. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (avail < 0 || (double)rl.rlim_cur < avail))
        avail = (double)rl.rlim_cur;
    return avail;
}

int fg_train_memory_largest_batch(const fg_train_memory *m, double avail, int max_batch)
{
    fg_train_memory t = *m;
    int lo = 0, hi = max_batch;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        fg_train_memory_at(&t, mid);
        if (t.total <= avail)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

const char *fg_train_memory_human(double bytes, char *buf, size_t n)
{
    static const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (bytes >= 1024 && u < 5)
        bytes /= 1024, u++;
    snprintf(buf, n, u ? "%.3g %s" : "%.0f %s", bytes, unit[u]);
    return buf;
}

void fg_train_memory_print(const fg_train_memory *m, FILE *f)
{
    char a[32], b[32], c[32];
    double line = m->step_fixed + m->step_per_image * m->batch;
    double replayed = m->layout ? replayed_step(m->layout, m->batch) : -1;
    double step = replayed > line ? replayed : line;
    fprintf(f, "training memory at batch %d, memory %s (estimate):\n", m->batch,
            fg_memory_mode_name(m->memory));
    fprintf(f, "  step intermediates %10s  (%s + %s per image, measured at batch %d and %d%s)\n",
            fg_train_memory_human(step, a, sizeof a), fg_train_memory_human(m->step_fixed, b, sizeof b),
            fg_train_memory_human(m->step_per_image, c, sizeof c), BATCH_A, BATCH_B,
            step > line ? "; more for chunk ends the large tensors skip" : "");
    fprintf(f, "  sampling %d images %10s  (%s)\n", FG_TRAIN_MEMORY_SAMPLE_IMAGES,
            fg_train_memory_human(m->sample_bytes, a, sizeof a),
            m->sample_bytes > step ? "larger than a step: counted instead" : "fits in the step's");
    fprintf(f, "  parameters         %10s  (%zu x 4 bytes x %d: value, gradient, 2 optimizer "
            "moments%s%s)\n", fg_train_memory_human(m->param_bytes, a, sizeof a), m->params,
            m->copies + m->guard_copies, m->copies > 4 ? ", EMA" : "",
            m->guard_copies ? "; the step guard's copy of all but the gradient" : "");
    fprintf(f, "  dataset            %10s\n", fg_train_memory_human(m->dataset_bytes, a, sizeof a));
    fprintf(f, "  runtime and BLIS   %10s  (allowance: %s + %s per thread x %d)\n",
            fg_train_memory_human(m->runtime_bytes, a, sizeof a),
            fg_train_memory_human(FG_TRAIN_MEMORY_BASE_BYTES, b, sizeof b),
            fg_train_memory_human(FG_TRAIN_MEMORY_THREAD_BYTES, c, sizeof c), fg_get_threads());
    fprintf(f, "  total              %10s\n", fg_train_memory_human(m->total, a, sizeof a));
}

void fg_train_memory_print_json(const fg_train_memory *m, FILE *f)
{
    double replayed = m->layout ? replayed_step(m->layout, m->batch) : -1;
    fprintf(f, "{\"mode\": \"%s\", \"batch\": %d, \"step_fixed_bytes\": %.0f, "
            "\"step_per_image_bytes\": %.0f, \"step_replayed_bytes\": %.0f, "
            "\"step_bytes\": %.0f, \"sample_bytes\": %.0f, "
            "\"parameter_bytes\": %.0f, \"parameter_copies\": %d, \"guard_copies\": %d, "
            "\"dataset_bytes\": %.0f, "
            "\"runtime_bytes\": %.0f, \"total_bytes\": %.0f}", fg_memory_mode_name(m->memory),
            m->batch, m->step_fixed,
            m->step_per_image, replayed, m->step_bytes, m->sample_bytes, m->param_bytes, m->copies, m->guard_copies,
            m->dataset_bytes, m->runtime_bytes, m->total);
}

int fg_train_memory_check(const fg_config *cfg, int batch, const fg_dataset *train,
                       const fg_dataset *test, fg_train_memory *m)
{
    double data = fg_train_memory_dataset_bytes(train) + fg_train_memory_dataset_bytes(test);
    if (fg_train_memory_measure(cfg, cfg->train.ema > 0, data, m) != FG_OK)
        return FG_ERR;
    fg_train_memory_at(m, batch);
    double avail = fg_memory_available();
    if (avail < 0 || m->total <= avail)
        return FG_OK;
    char need[32], per[32], have[32], fits[64] = "no batch fits";
    int b = fg_train_memory_largest_batch(m, avail, batch);
    if (b > 0)
        snprintf(fits, sizeof fits, "e.g. --batch %d fits", b);
    return fg_error("%s needs about %s at batch %d (%s per image), only %s available: lower "
                    "the batch (%s) or the model size; 'flowgrad info %s --batch %d' shows "
                    "the breakdown, --no-memory-check tries anyway", cfg->name,
                    fg_train_memory_human(m->total, need, sizeof need), batch,
                    fg_train_memory_human(m->step_per_image, per, sizeof per),
                    fg_train_memory_human(avail, have, sizeof have), fits, cfg->name, batch);
}
