/* flowgrad eval: bits/dim of a checkpoint on a split of its dataset. */
#include "examples/cli.h"

#include <string.h>

static const char cmd[] = "eval";

static void help(void)
{
    puts("usage: flowgrad eval CKPT [options]\n"
         "\n"
         "  --split test|train  which split (default test)\n"
         "  --limit N           only the first N images (default all)\n"
         "  --batch B           batch size (default: the config's)\n"
         "  --threads T         compute threads\n"
         "  --json              print the result as JSON\n"
         "  --help              this text");
}

int cmd_eval(int argc, char **argv)
{
    const char *ckpt = NULL, *split = "test", *v;
    long long limit = 0, batch = 0, threads = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--split")) {
            if (!(split = cli_value(argc, argv, &i)))
                return cli_usage_error(cmd, "%s", fg_last_error());
            if (strcmp(split, "test") && strcmp(split, "train"))
                return cli_usage_error(cmd, "--split: expected test or train, got '%s'", split);
        } else if (!strcmp(a, "--limit") || !strcmp(a, "--batch") || !strcmp(a, "--threads")) {
            long long *t = a[2] == 'l' ? &limit : a[2] == 'b' ? &batch : &threads;
            if (!(v = cli_value(argc, argv, &i)) || cli_int(a, v, 1, 1 << 30, t) != FG_OK)
                return cli_usage_error(cmd, "%s", fg_last_error());
        } else {
            int rc = cli_positional(cmd, a, &ckpt, "CKPT");
            if (rc)
                return rc;
        }
    }
    if (!ckpt)
        return cli_usage_error(cmd, "missing CKPT: expected a checkpoint.safetensors");
    if (threads > 0)
        fg_set_threads((int)threads);
    cli_loaded L;
    if (cli_load_checkpoint(ckpt, &L) != FG_OK)
        return cli_fail(cmd, "%s", fg_last_error());
    fg_dataset d;
    if (fg_config_load_split(L.cfg, !strcmp(split, "train"), fg_memory_available(), &d) != FG_OK) {
        cli_loaded_free(&L);
        return cli_fail(cmd, "%s", fg_last_error());
    }
    int b = batch > 0 ? (int)batch : L.cfg->train.batch;
    fg_graph *g = fg_graph_create();
    double bpd = fg_model_eval_bpd(L.model, g, &d, b, L.cfg->train.seed, (int)limit);
    int n = limit > 0 && limit < d.n ? (int)limit : d.n;
    if (json)
        printf("{\"split\": \"%s\", \"images\": %d, \"bits_per_dim\": %.6f}\n", split, n, bpd);
    else
        printf("%s bits/dim: %.4f (%d images)\n", split, bpd, n);
    fg_graph_destroy(g);
    fg_dataset_free(&d);
    cli_loaded_free(&L);
    return 0;
}
