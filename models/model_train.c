/* A flow model of a config on its dataset, as the library trainer sees it
 * (see models/train.h). */
#include "models/train.h"

#include <stdlib.h>
#include <string.h>

fg_trainer_options fg_config_trainer_options(const fg_config *cfg, long skip_nonfinite)
{
    const fg_train_spec *t = &cfg->train;
    return (fg_trainer_options){.optimizer = t->optimizer, .beta1 = 0.9, .beta2 = 0.999,
                                .eps = 1e-8, .lr = t->lr, .warmup = (long)t->warmup,
                                .schedule = t->schedule, .total_steps = (long)t->steps,
                                .grad_clip = t->grad_clip, .guard = t->guard,
                                .guard_window = t->guard_window,
                                .guard_threshold = t->guard_threshold,
                                .clip_factor = t->clip_factor, .ema = t->ema,
                                .skip_nonfinite = skip_nonfinite};
}

void fg_model_batches_init(fg_model_batches *b, fg_model *m, const fg_dataset *d, int batch,
                           uint64_t seed)
{
    memset(b, 0, sizeof *b);
    b->model = m;
    b->data = d;
    b->seed = seed;
    b->flip = 0;
    b->labels = fg_xmalloc((size_t)(batch > 0 ? batch : 1) * sizeof *b->labels,
                           "batch labels");
}

void fg_model_batches_free(fg_model_batches *b)
{
    free(b->labels);
    memset(b, 0, sizeof *b);
}

fg_var *fg_model_batch_input(fg_model_batches *mb, fg_graph *g, const fg_batch *b)
{
    const fg_dataset *d = mb->data;
    fg_dataset_labels(d, b->idx, b->n, fg_model_batch_labels(mb, b));
    fg_rng noise;
    fg_rng_seed_stream(&noise, mb->seed, FG_STREAM_NOISE + (uint64_t)b->step);
    /* fg_dequantize draws one uniform per value, image by image, and the
     * Philox stream is indexed by its counter: this shard draws what one
     * process would draw for these images of the global batch. */
    noise.counter += (uint64_t)b->first * d->c * d->h * d->w;
    fg_var *x = fg_model_input(g, d, b->idx, b->n, mb->model->n_bits, &noise);
    if (mb->flip) {
        /* One draw per image, indexed the same way. */
        fg_rng coin;
        fg_rng_seed_stream(&coin, mb->seed, FG_STREAM_FLIP + (uint64_t)b->step);
        coin.counter += (uint64_t)b->first;
        fg_flip_random(x->t.data, b->n, d->c, d->h, d->w, &coin);
    }
    return x;
}

fg_var *fg_model_batch_loss(void *ctx, fg_graph *g, const fg_batch *b, double *bpd)
{
    fg_model_batches *mb = ctx;
    fg_var *x = fg_model_batch_input(mb, g, b);
    return fg_model_loss_ex(mb->model, g, x, fg_model_batch_labels(mb, b), bpd, mb->memory,
                            &mb->invert);
}

int *fg_model_batch_labels(fg_model_batches *mb, const fg_batch *b)
{
    return mb->labels + b->offset;
}

int fg_model_can_split(fg_model *m, fg_memory_mode memory)
{
    /* Data-dependent initialization writes the actnorms' parameters from
     * the batch it sees, and memory by inversion records its drift in one
     * place: both want the batch whole. */
    return memory == FG_MEMORY_STORE && fg_flow_init_pending(m->flow->body) == 0;
}

int fg_model_batches_can_split(const fg_model_batches *mb)
{
    return fg_model_can_split(mb->model, mb->memory);
}
