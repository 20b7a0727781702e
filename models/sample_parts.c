/* Sampling with the batch split between threads (fg_model_sample_parts in
 * models/model.h): each part inverts the flow for its images on a thread
 * and a graph of its own, every kernel of a part on its thread, as the
 * trainer's parts do (nn/trainer_split.c). Each part draws its images'
 * share of every draw (fg_rng_part), so the images are those of one
 * fg_model_sample call on the whole batch, whatever the number of parts. */
#include "models/model.h"

#include <omp.h>
#include <string.h>

void fg_model_sample_parts(fg_model *m, fg_graph **graphs, int parts, int n, const int *y,
                           float temperature, fg_rng *rng, float *out)
{
    const size_t per_image = (size_t)m->c * m->h * m->w;
    if (parts > n)
        parts = n;
    if (parts < 1 || omp_get_level() > 0)
        parts = 1;
    uint64_t counter_after = rng ? rng->counter : 0;
    #pragma omp parallel for schedule(static, 1) num_threads(parts)
    for (int p = 0; p < parts; p++) {
        int first = (int)((long)n * p / parts), last = (int)((long)n * (p + 1) / parts);
        fg_rng part;
        if (rng)
            part = fg_rng_part(rng, first, last - first, n);
        fg_graph_reset(graphs[p]);
        fg_var *x = fg_model_sample(m, graphs[p], last - first, y ? y + first : NULL, NULL,
                                    temperature, rng ? &part : NULL);
        memcpy(out + (size_t)first * per_image, x->t.data,
               (size_t)(last - first) * per_image * sizeof(float));
        fg_graph_reset(graphs[p]);
        if (p == 0 && rng)
            counter_after = part.counter;   /* every part ends at the same count */
    }
    if (rng)
        rng->counter = counter_after;
}
