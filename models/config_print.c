/* Human-readable dump of a loaded config: the expanded layer list with the
 * shape entering and leaving each layer, the priors, the training plan. */
#include <inttypes.h>

#include "models/config_internal.h"
#include "models/layer_internal.h"

static const char *const permutation_names[] = { "invconv", "shuffle", "reverse" };

void fg_model_spec_print(const fg_model_spec *m, FILE *f)
{
    char in[48], out[48], what[640], opts[64] = "";
    layer_shape_str(m->input, in, sizeof in);
    if (m->coupling == FG_TRANSFORM_SPLINE)
        snprintf(opts, sizeof opts, " bins=%d bound=%g", m->bins, (double)m->bound);
    char floor[48] = "";
    if (m->split_logs_floor > 0)
        snprintf(floor, sizeof floor, " split_logs_floor=%g", (double)m->split_logs_floor);
    if (m->type == FG_MODEL_GLOW)
        fprintf(f, "model: glow preset, input %s (CxHxW), levels=%d steps=%d hidden=%d "
                "coupling=%s%s permutation=%s%s actnorm_scale=%g%s n_bits=%d\n", in,
                m->levels, m->steps, m->hidden, layer_transform_names[m->coupling], opts,
                permutation_names[m->permutation],
                m->permutation == FG_PERMUTATION_INVCONV ? (m->lu ? " lu=true" : " lu=false") : "",
                (double)m->actnorm_scale, floor, m->n_bits);
    else
        fprintf(f, "model: layer list, input %s (CxHxW), n_bits=%d\n", in, m->n_bits);
    if (m->permutation_seed >= 0)
        fprintf(f, "channel orders from permutation_seed=%d, the same for every training "
                "seed\n", m->permutation_seed);
    fprintf(f, "%5s %5s  %-48s %10s -> %s\n", "#", "level", "layer", "in", "out");
    for (int i = 0; i < m->n_layers; i++) {
        const fg_layer_spec *l = &m->layers[i];
        layer_shape_str(l->in, in, sizeof in);
        layer_shape_str(l->out, out, sizeof out);
        fprintf(f, "%5d %5d  %-48s %10s -> %s\n", i, l->level,
                fg_layer_spec_describe(l, what, sizeof what), in, out);
    }
    layer_shape_str(m->top, out, sizeof out);
    fprintf(f, "top prior: %s, shape %s", m->learn_top ? "learned" : "standard normal", out);
    if (m->y_condition)
        fprintf(f, ", class-conditional (classes=%d weight_y=%g)", m->classes,
                (double)m->weight_y);
    fputc('\n', f);
    if (m->condition != FG_CONDITION_NONE)
        fprintf(f, "condition: %s, %d channels, to every coupling, split prior and the top "
                "prior\n", fg_condition_kind_name(m->condition), m->cond_channels);
}

static void print_every(FILE *f, const char *what, int64_t every)
{
    if (every)
        fprintf(f, " %s every %" PRId64 " steps,", what, every);
    else
        fprintf(f, " %s each epoch,", what);
}

void fg_config_print(const fg_config *cfg, FILE *f)
{
    fprintf(f, "config: %s\n", cfg->name);
    fg_model_spec_print(&cfg->model, f);
    if (!cfg->has_train) {
        fprintf(f, "train: (no train section)\n");
        return;
    }
    const fg_train_spec *t = &cfg->train;
    fprintf(f, "train: dataset %s (%s), batch %d, %s lr=%g warmup=%" PRId64 " steps,",
            fg_dataset_kind_name(t->dataset), t->data_path ? t->data_path : "default path",
            t->batch, fg_optim_kind_name(t->optimizer), t->lr, t->warmup);
    if (t->dataset == FG_DATASET_FOLDER)
        fprintf(f, "\n       test %s, %s resizing, bad files %s, cache %s,",
                t->test_path ? t->test_path : "by name", fg_resize_kind_name(t->resize),
                t->on_bad_file == FG_BAD_FILE_SKIP ? "skipped" : "refused",
                t->cache ? "on" : "off");
    if (t->flip)
        fprintf(f, " random horizontal flips,");
    if (t->grad_clip > 0)
        fprintf(f, " grad_clip=%g,", t->grad_clip);
    else
        fprintf(f, " grad_clip off,");
    if (t->ema > 0)
        fprintf(f, " ema=%g,", t->ema);
    else
        fprintf(f, " ema off,");
    if (t->steps)
        fprintf(f, " %" PRId64 " steps,", t->steps);
    else
        fprintf(f, " %d epochs,", t->epochs);
    fprintf(f, " seed %" PRIu64 "\n      ", t->seed);
    print_every(f, "checkpoint", t->checkpoint_every);
    print_every(f, "samples", t->sample_every);
    print_every(f, "test", t->test_every);
    fprintf(f, " temperature %g, memory %s\n", t->temperature, fg_memory_mode_name(t->memory));
    fprintf(f, "      schedule %s, ", fg_schedule_name(t->schedule));
    if (!t->guard)
        fprintf(f, "guard off\n");
    else if (t->clip_factor > 0)
        fprintf(f, "guard over %d steps at %g sigmas, clip at %g x median norm\n",
                t->guard_window, t->guard_threshold, t->clip_factor);
    else
        fprintf(f, "guard over %d steps at %g sigmas, no adaptive clip\n", t->guard_window,
                t->guard_threshold);
}
