/* flowgrad info: what a config or checkpoint declares: parameters, the
 * expanded layer list with shapes, FLOPs and parameters per layer and
 * level, forward FLOPs per image. */
#include "examples/cli.h"
#include "models/train_memory.h"
#include "models/layer_kind.h"

#include <string.h>

static const char cmd[] = "info";

static void help(void)
{
    puts("usage: flowgrad info CONFIG.yaml|CKPT.safetensors [--batch B] [--json]\n"
         "\n"
         "Prints the parameter count, the expanded layer list with the shape entering\n"
         "and leaving each layer per level and its FLOPs and parameters, the top prior's\n"
         "shape, and the forward FLOPs per image (multiply-adds of convolutions, 1x1\n"
         "convolutions and dense layers x 2).\n"
         "\n"
         "  --batch B  also the memory training needs at batch B: intermediates of a\n"
         "             step measured at batch 1 and 2 on a throwaway copy of the model and\n"
         "             extrapolated, parameters with gradients, optimizer moments and EMA,\n"
         "             the dataset (loaded to count it), and a fixed runtime allowance;\n"
         "             in the config's train.memory mode first, then in the other one\n"
         "  --json   the same as JSON\n"
         "  --help   this text");
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* The estimate flowgrad train checks before it starts. Without the
 * dataset's files at hand the data counts as nothing, and the text says so. */
static int info_memory(const fg_config *cfg, int batch, fg_train_memory m[2])
{
    double data = 0;
    for (int train = 1; train >= 0 && cfg->has_train; train--) {
        fg_dataset d;
        if (fg_config_load_split(cfg, train, fg_memory_available(), &d) != FG_OK) {
            fprintf(stderr, "flowgrad %s: dataset not counted: %s\n", cmd, fg_last_error());
            data = 0;
            break;
        }
        data += fg_train_memory_dataset_bytes(&d);
        fg_dataset_free(&d);
    }
    /* The config's own mode first, then the other one. */
    fg_memory_mode mode = cfg->has_train ? cfg->train.memory : FG_MEMORY_STORE;
    for (int i = 0; i < 2; i++) {
        fg_memory_mode mi = i == 0 ? mode : (fg_memory_mode)(1 - (int)mode);
        if (fg_train_memory_measure_mode(cfg, mi, cfg->has_train && cfg->train.ema > 0, data,
                                         &m[i]) != FG_OK)
            return FG_ERR;
        fg_train_memory_at(&m[i], batch);
    }
    return FG_OK;
}

/* What the layer's kind counts for it (the model's total is the built
 * state's). */
static double layer_params(const fg_layer_spec *l)
{
    fg_model_size size = {0, 0, 0, 0};
    fg_layer_spec_size(l, &size);
    return size.params;
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0;
    long long batch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--batch")) {
            const char *v = cli_value(argc, argv, &i);
            if (!v || cli_int(a, v, 1, 65536, &batch) != FG_OK)
                return cli_usage_error(cmd, "%s", fg_last_error());
        } else {
            int rc = cli_positional(cmd, a, &path, "path");
            if (rc)
                return rc;
        }
    }
    if (!path)
        return cli_usage_error(cmd, "missing CONFIG or CKPT: expected a .yaml config or a "
                               ".safetensors checkpoint");
    cli_loaded L;
    memset(&L, 0, sizeof L);
    long long step = -1;
    if (ends_with(path, ".safetensors")) {
        if (cli_load_checkpoint(path, &L) != FG_OK)
            return cli_fail(cmd, "%s", fg_last_error());
        if (L.has_state)
            step = L.state.step;
    } else {
        if (fg_config_load_file(path, &L.cfg) != FG_OK)
            return cli_fail(cmd, "%s", fg_last_error());
        if (fg_train_memory_check_build(L.cfg) != FG_OK) {
            cli_loaded_free(&L);
            return cli_fail(cmd, "%s", fg_last_error());
        }
        if (fg_model_build(&L.cfg->model, 0, &L.model) != FG_OK) {
            int rc = cli_fail(cmd, "%s: %s", path, fg_last_error());
            cli_loaded_free(&L);
            return rc;
        }
    }
    const fg_model_spec *s = &L.cfg->model;
    size_t params = fg_state_list_param_count(&L.model->state);
    double flops = fg_model_spec_flops(s);
    char desc[1024];
    fg_train_memory mem[2];
    memset(mem, 0, sizeof mem);
    if (batch > 0 && info_memory(L.cfg, (int)batch, mem) != FG_OK) {
        int rc = cli_fail(cmd, "%s: %s", path, fg_last_error());
        fg_train_memory_free(&mem[0]);
        fg_train_memory_free(&mem[1]);
        cli_loaded_free(&L);
        return rc;
    }
    if (json) {
        printf("{\"path\": ");
        cli_json_string(stdout, path);
        printf(", \"parameters\": %zu, \"flops_per_image\": %.0f, \"input\": [%d, %d, %d], "
               "\"top\": [%d, %d, %d], \"n_bits\": %d, \"learn_top\": %s, \"classes\": %d",
               params, flops, s->input.c, s->input.h, s->input.w, s->top.c, s->top.h,
               s->top.w, s->n_bits, s->learn_top ? "true" : "false",
               s->y_condition ? s->classes : 0);
        printf(", \"condition\": \"%s\", \"condition_channels\": %d",
               fg_condition_kind_name(s->condition), s->cond_channels);
        if (step >= 0)
            printf(", \"step\": %lld", step);
        if (batch > 0) {
            printf(", \"memory\": ");
            fg_train_memory_print_json(&mem[0], stdout);
            printf(", \"memory_%s\": ", fg_memory_mode_name(mem[1].memory));
            fg_train_memory_print_json(&mem[1], stdout);
        }
        printf(", \"layers\": [");
        for (int i = 0; i < s->n_layers; i++) {
            const fg_layer_spec *l = &s->layers[i];
            printf("%s{\"level\": %d, \"layer\": ", i ? ", " : "", l->level);
            cli_json_string(stdout, fg_layer_spec_describe(l, desc, sizeof desc));
            printf(", \"in\": [%d, %d, %d], \"out\": [%d, %d, %d], \"flops\": %.0f, "
                   "\"parameters\": %.0f}", l->in.c, l->in.h, l->in.w, l->out.c, l->out.h,
                   l->out.w, fg_layer_spec_flops(l), layer_params(l));
        }
        printf("]}\n");
    } else {
        printf("%s\n", path);
        if (step >= 0)
            printf("trained steps:   %lld\n", step);
        printf("parameters:      %zu\n", params);
        printf("forward FLOPs:   %.4g per image (%.3f GFLOP)\n", flops, flops * 1e-9);
        printf("input:           (%d, %d, %d), n_bits %d\n", s->input.c, s->input.h,
               s->input.w, s->n_bits);
        int level = -1;
        printf("  %4s  %-52s %-30s %10s %10s\n", "#", "layer", "in -> out", "FLOPs",
               "parameters");
        for (int i = 0; i < s->n_layers; i++) {
            const fg_layer_spec *l = &s->layers[i];
            char shapes[64];
            if (l->level != level) {
                level = l->level;
                printf("level %d:\n", level);
            }
            snprintf(shapes, sizeof shapes, "(%d, %d, %d) -> (%d, %d, %d)", l->in.c, l->in.h,
                     l->in.w, l->out.c, l->out.h, l->out.w);
            printf("  %4d  %-52s %-30s %10.4g %10.0f\n", i,
                   fg_layer_spec_describe(l, desc, sizeof desc), shapes,
                   fg_layer_spec_flops(l), layer_params(l));
        }
        printf("top prior:       (%d, %d, %d)%s%s\n", s->top.c, s->top.h, s->top.w,
               s->learn_top ? ", learned" : ", N(0, 1)",
               s->y_condition ? ", class-conditional" : "");
        if (s->condition != FG_CONDITION_NONE)
            printf("condition:       %s, %d channels, to every coupling, split prior and the "
                   "top prior\n", fg_condition_kind_name(s->condition), s->cond_channels);
        for (int i = 0; batch > 0 && i < 2; i++)
            fg_train_memory_print(&mem[i], stdout);
    }
    fg_train_memory_free(&mem[0]);
    fg_train_memory_free(&mem[1]);
    cli_loaded_free(&L);
    return 0;
}
