/* flowgrad reconstruct: test images through every latent and back. */
#include "examples/cli.h"

#include <stdlib.h>
#include <string.h>

static const char cmd[] = "reconstruct";

static void help(void)
{
    puts("usage: flowgrad reconstruct CKPT --out FILE.png [options]\n"
         "\n"
         "Encodes test images to all latents, decodes them, writes originals (top row)\n"
         "over reconstructions (bottom row) and prints the max abs error.\n"
         "\n"
         "  --n N        number of test images (default 8)\n"
         "  --out FILE   the image grid (required; a new or regular file: an existing\n"
         "               device, fifo or directory is refused, never replaced)\n"
         "  --json       print the result as JSON\n"
         "  --help       this text");
}

int cmd_reconstruct(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *v;
    long long n = 8;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--n")) {
            if (!(v = cli_value(argc, argv, &i)) || cli_int(a, v, 1, 1024, &n) != FG_OK)
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
    cli_loaded L;
    if (cli_load_checkpoint(ckpt, &L) != FG_OK)
        return cli_fail(cmd, "%s", fg_last_error());
    if (fg_model_spec_check_data_condition(&L.cfg->model, ckpt, "flowgrad reconstruct") != FG_OK) {
        cli_loaded_free(&L);
        return cli_fail(cmd, "%s", fg_last_error());
    }
    fg_dataset d;
    if (fg_config_load_split(L.cfg, 0, fg_memory_available(), &d) != FG_OK) {
        cli_loaded_free(&L);
        return cli_fail(cmd, "%s", fg_last_error());
    }
    if (n > d.n)
        n = d.n;
    fg_model *m = L.model;
    int *idx = fg_xmalloc((size_t)n * sizeof *idx, "indices"), *y = fg_xmalloc((size_t)n * sizeof *y, "labels");
    for (int i = 0; i < n; i++)
        idx[i] = i;
    fg_dataset_labels(&d, idx, (int)n, y);
    fg_graph *g = fg_graph_create();
    fg_set_grad_enabled(g, 0);
    fg_rng rng;
    fg_rng_seed(&rng, 0);
    fg_var *x = fg_model_input(g, &d, idx, (int)n, m->n_bits, &rng);
    fg_var *lat[FG_FLOW_MAX_LATENTS];
    fg_var *c = fg_model_condition(m, g, y, (int)n);
    int k = fg_multiscale_encode_cond(m->flow, g, x, y, c, lat, NULL);
    fg_var *back = fg_multiscale_decode_cond(m->flow, g, lat, k, c);
    size_t D = (size_t)fg_model_dims(m);
    double err = fg_k_max_abs_diff(n * D, x->t.data, back->t.data);
    int shape[4] = {(int)(2 * n), m->c, m->h, m->w};
    fg_tensor *grid = fg_tensor_new(4, shape);
    memcpy(grid->data, x->t.data, n * D * sizeof(float));
    memcpy(grid->data + n * D, back->t.data, n * D * sizeof(float));
    int rc = cli_write_grid(out, grid, 2);
    if (rc == FG_OK) {
        if (json)
            printf("{\"images\": %lld, \"max_abs_error\": %.6g}\n", n, err);
        else
            printf("reconstructed %lld test images: max abs error %.3g -> %s\n", n, err, out);
    }
    fg_tensor_free(grid);
    fg_graph_destroy(g);
    free(idx);
    free(y);
    fg_dataset_free(&d);
    cli_loaded_free(&L);
    return rc == FG_OK ? 0 : cli_fail(cmd, "%s", fg_last_error());
}
