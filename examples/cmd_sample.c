/* flowgrad sample: draws from a trained model, one row per temperature, or
 * per class and temperature (--per-class, the default of a model
 * conditioned on the class). */
#include "examples/cli.h"

#include <stdlib.h>
#include <string.h>

static const char cmd[] = "sample";

static void help(void)
{
    puts("usage: flowgrad sample CKPT --out FILE.png [options]\n"
         "\n"
         "  --n N              samples per temperature (default 64)\n"
         "  --temperature LIST one or more temperatures, comma separated (default: the\n"
         "                     config's); a list gives one row per temperature\n"
         "  --seed S           random seed (default 0)\n"
         "  --class K          class label for a class-conditional model (default: cycle,\n"
         "                     or one row per class for condition: class)\n"
         "  --per-class        one row of N samples per class (and temperature)\n"
         "  --out FILE.png     the sample grid (required; a new or regular file: an existing\n"
         "                     device, fifo or directory is refused, never replaced)\n"
         "  --json             print a summary as JSON\n"
         "  --help             this text");
}

int cmd_sample(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *v;
    long long n = 64, seed = 0, cls = -1;
    double temps[32];
    int n_temps = 0, json = 0, per_class = 0, n_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--per-class")) {
            per_class = 1;
        } else if (!strcmp(a, "--n") || !strcmp(a, "--seed") || !strcmp(a, "--class")) {
            long long *t = a[2] == 'n' ? &n : a[2] == 's' ? &seed : &cls;
            long long lo = a[2] == 'n' ? 1 : 0, hi = a[2] == 'n' ? 4096 : INT64_MAX;
            n_given |= a[2] == 'n';
            if (!(v = cli_value(argc, argv, &i)) || cli_int(a, v, lo, hi, t) != FG_OK)
                return cli_usage_error(cmd, "%s", fg_last_error());
        } else if (!strcmp(a, "--temperature")) {
            if (!(v = cli_value(argc, argv, &i)) ||
                cli_double_list(a, v, 0, 10, temps, 32, &n_temps) != FG_OK)
                return cli_usage_error(cmd, "%s", fg_last_error());
        } else if (!strcmp(a, "--out")) {
            if (!(out = cli_value(argc, argv, &i)))
                return cli_usage_error(cmd, "%s", fg_last_error());
        } else {
            int rc = cli_positional(cmd, a, &ckpt, "CKPT");
            if (rc)
                return rc;
        }
    }
    if (!ckpt)
        return cli_usage_error(cmd, "missing CKPT: expected a checkpoint.safetensors");
    if (!out)
        return cli_usage_error(cmd, "missing --out FILE.png: where to write the grid");
    if (per_class && cls >= 0)
        return cli_usage_error(cmd, "--per-class and --class: give one (a row per class, "
                               "or every sample of one class)");
    cli_loaded L;
    if (cli_load_checkpoint(ckpt, &L) != FG_OK)
        return cli_fail(cmd, "%s", fg_last_error());
    if (fg_model_spec_check_data_condition(&L.cfg->model, ckpt, "flowgrad sample") != FG_OK) {
        cli_loaded_free(&L);
        return cli_fail(cmd, "%s", fg_last_error());
    }
    fg_model *m = L.model;
    int classes = fg_model_spec_needs_labels(&L.cfg->model) ? L.cfg->model.classes : 0;
    if ((cls >= 0 || per_class) && (!classes || cls >= classes)) {
        cli_loaded_free(&L);
        if (per_class)
            return cli_usage_error(cmd, "--per-class: the model is not class-conditional "
                                   "(expected condition: class or y_condition: true)");
        return cli_usage_error(cmd, "--class %lld: expected a label in [0, %d) of a "
                               "class-conditional model", cls, classes);
    }
    /* A flow conditioned on the class shows what the condition does best
     * one class to a row. */
    if (m->condition == FG_CONDITION_CLASS && cls < 0)
        per_class = 1;
    if (per_class && !n_given)
        n = 10;
    if (n_temps == 0)
        temps[n_temps++] = L.cfg->has_train ? L.cfg->train.temperature : 0.7;
    size_t D = (size_t)fg_model_dims(m);
    int per_temp = (int)n * (per_class ? classes : 1);
    int total = per_temp * n_temps;
    int shape[4] = {total, m->c, m->h, m->w};
    fg_tensor *all = fg_tensor_new(4, shape);
    int *y = NULL;
    if (classes) {
        y = fg_xmalloc((size_t)per_temp * sizeof *y, "labels");
        for (int i = 0; i < per_temp; i++)
            y[i] = cls >= 0 ? (int)cls : per_class ? i / (int)n : i % classes;
    }
    /* The images of a temperature split between the threads; the same
     * images on any number of them. */
    int parts = fg_get_threads();
    fg_graph **graphs = fg_xcalloc((size_t)parts, sizeof *graphs, "sampling graphs");
    for (int p = 0; p < parts; p++)
        graphs[p] = fg_graph_create();
    for (int r = 0; r < n_temps; r++) {
        fg_rng rng;
        fg_rng_seed_stream(&rng, (uint64_t)seed, (uint64_t)r);
        fg_model_sample_parts(m, graphs, parts, per_temp, y, (float)temps[r], &rng,
                              all->data + (size_t)r * per_temp * D);
    }
    for (int p = 0; p < parts; p++)
        fg_graph_destroy(graphs[p]);
    free(graphs);
    int rows = per_class ? classes * n_temps : n_temps > 1 ? n_temps : 1;
    if (n_temps == 1 && !per_class) {
        while ((long long)(rows + 1) * (rows + 1) <= n)
            rows++;
    }
    int bad = fg_images_grey_nonfinite(all);
    int rc = cli_write_grid(out, all, rows);
    if (rc == FG_OK) {
        if (json) {
            printf("{\"out\": ");
            cli_json_string(stdout, out);
            printf(", \"n\": %lld, \"rows\": %d, \"temperatures\": [", n, rows);
            for (int r = 0; r < n_temps; r++)
                printf("%s%g", r ? ", " : "", temps[r]);
            printf("], \"non_finite\": %d}\n", bad);
        } else {
            printf("wrote %d samples to %s\n", total, out);
        }
        cli_report_nonfinite(cmd, bad, total);
    }
    free(y);
    fg_tensor_free(all);
    cli_loaded_free(&L);
    if (rc != FG_OK)
        return cli_fail(cmd, "%s", fg_last_error());
    return 0;
}
