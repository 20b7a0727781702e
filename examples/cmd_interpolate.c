/* flowgrad interpolate: a straight line between two images' latents. */
#include "examples/cli.h"

#include <stdlib.h>
#include <string.h>

static const char cmd[] = "interpolate";

static void help(void)
{
    puts("usage: flowgrad interpolate CKPT --from I --to J --out FILE.png [options]\n"
         "\n"
         "Encodes test images I and J, interpolates every latent linearly and decodes.\n"
         "\n"
         "  --from I     index of the first test image (required)\n"
         "  --to J       index of the second test image (required)\n"
         "  --steps S    images on the line, ends included (default 8, at least 2)\n"
         "  --out FILE   the image row (required; a new or regular file: an existing\n"
         "               device, fifo or directory is refused, never replaced)\n"
         "  --json       print a summary as JSON\n"
         "  --help       this text");
}

int cmd_interpolate(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *v;
    long long from = -1, to = -1, steps = 8;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--from") || !strcmp(a, "--to") || !strcmp(a, "--steps")) {
            long long *t = a[2] == 'f' ? &from : a[2] == 't' ? &to : &steps;
            if (!(v = cli_value(argc, argv, &i)) ||
                cli_int(a, v, a[2] == 's' ? 2 : 0, a[2] == 's' ? 256 : 1 << 30, t) != FG_OK)
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
    if (from < 0 || to < 0)
        return cli_usage_error(cmd, "missing --from I and --to J: expected two test image indices");
    if (!out)
        return cli_usage_error(cmd, "missing --out FILE.png: where to write the images");
    cli_loaded L;
    if (cli_load_checkpoint(ckpt, &L) != FG_OK)
        return cli_fail(cmd, "%s", fg_last_error());
    if (fg_model_spec_check_data_condition(&L.cfg->model, ckpt, "flowgrad interpolate") != FG_OK) {
        cli_loaded_free(&L);
        return cli_fail(cmd, "%s", fg_last_error());
    }
    fg_dataset d;
    if (fg_config_load_split(L.cfg, 0, fg_memory_available(), &d) != FG_OK) {
        cli_loaded_free(&L);
        return cli_fail(cmd, "%s", fg_last_error());
    }
    if (from >= d.n || to >= d.n) {
        int n = d.n;
        fg_dataset_free(&d);
        cli_loaded_free(&L);
        return cli_usage_error(cmd, "--from %lld / --to %lld: expected indices below the %d "
                               "test images", from, to, n);
    }
    fg_model *m = L.model;
    int idx[2] = {(int)from, (int)to}, y[2];
    fg_dataset_labels(&d, idx, 2, y);
    fg_graph *g = fg_graph_create();
    fg_set_grad_enabled(g, 0);
    fg_rng rng;
    fg_rng_seed(&rng, 0);
    fg_var *x = fg_model_input(g, &d, idx, 2, m->n_bits, &rng);
    fg_var *lat[FG_FLOW_MAX_LATENTS], *mix[FG_FLOW_MAX_LATENTS];
    fg_var *c = fg_model_condition(m, g, y, 2);
    int k = fg_multiscale_encode_cond(m->flow, g, x, y, c, lat, NULL);
    for (int l = 0; l < k; l++) {
        int shape[4];
        memcpy(shape, lat[l]->t.shape, sizeof shape);
        size_t per = fg_numel(&lat[l]->t) / 2;
        shape[0] = (int)steps;
        mix[l] = fg_const(g, lat[l]->t.ndim, shape);
        for (int s = 0; s < steps; s++) {
            float t = (float)s / (float)(steps - 1);
            float *dst = mix[l]->t.data + s * per;
            for (size_t i = 0; i < per; i++)
                dst[i] = (1 - t) * lat[l]->t.data[i] + t * lat[l]->t.data[per + i];
        }
    }
    /* A conditional flow decodes each step under the same mix of the two
     * images' conditions as of their latents. */
    fg_var *cmix = NULL;
    if (c) {
        size_t per = fg_numel(&c->t) / 2;
        int shape[2] = {(int)steps, (int)per};
        cmix = fg_const(g, 2, shape);
        for (int s = 0; s < steps; s++) {
            float t = (float)s / (float)(steps - 1);
            for (size_t i = 0; i < per; i++)
                cmix->t.data[s * per + i] = (1 - t) * c->t.data[i] + t * c->t.data[per + i];
        }
    }
    fg_var *xs = fg_multiscale_decode_cond(m->flow, g, mix, k, cmix);
    int bad = fg_images_grey_nonfinite(&xs->t);
    int rc = cli_write_grid(out, &xs->t, 1);
    if (rc == FG_OK) {
        if (json)
            printf("{\"from\": %lld, \"to\": %lld, \"steps\": %lld, \"non_finite\": %d}\n",
                   from, to, steps, bad);
        else
            printf("interpolated test images %lld -> %lld in %lld steps -> %s\n", from, to,
                   steps, out);
        cli_report_nonfinite(cmd, bad, (int)steps);
    }
    fg_graph_destroy(g);
    fg_dataset_free(&d);
    cli_loaded_free(&L);
    return rc == FG_OK ? 0 : cli_fail(cmd, "%s", fg_last_error());
}
