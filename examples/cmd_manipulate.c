/* flowgrad manipulate: Glow's attribute manipulation with classes as the
 * attribute: the difference of class-mean latents over the test set is a
 * direction; images of one class move along it. */
#include "examples/cli.h"

#include <stdlib.h>
#include <string.h>

static const char cmd[] = "manipulate";

static void help(void)
{
    puts("usage: flowgrad manipulate CKPT --from-class A --to-class B --alpha LIST --out FILE.png\n"
         "\n"
         "Averages every latent per class over the test set, then moves test images of\n"
         "class A along mean(B) - mean(A): one row per image, one column per alpha.\n"
         "\n"
         "  --from-class A   source class (required)\n"
         "  --to-class B     target class (required)\n"
         "  --alpha LIST     comma-separated step sizes, e.g. -0.5,0,0.5,1 (required)\n"
         "  --n N            images of class A to move (default 4)\n"
         "  --limit N        test images used for the means (default all)\n"
         "  --out FILE       the image grid (required; a new or regular file: an existing\n"
         "                   device, fifo or directory is refused, never replaced)\n"
         "  --json           print a summary as JSON\n"
         "  --help           this text");
}

int cmd_manipulate(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *v;
    long long ca = -1, cb = -1, n_img = 4, limit = 0;
    double alpha[64];
    int n_alpha = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--from-class") || !strcmp(a, "--to-class") ||
                   !strcmp(a, "--n") || !strcmp(a, "--limit")) {
            long long *t = a[2] == 'f' ? &ca : a[2] == 't' ? &cb : a[2] == 'n' ? &n_img : &limit;
            if (!(v = cli_value(argc, argv, &i)) ||
                cli_int(a, v, t == &n_img || t == &limit ? 1 : 0, 1 << 30, t) != FG_OK)
                return cli_usage_error(cmd, "%s", fg_last_error());
        } else if (!strcmp(a, "--alpha")) {
            if (!(v = cli_value(argc, argv, &i)) ||
                cli_double_list(a, v, -100, 100, alpha, 64, &n_alpha) != FG_OK)
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
    if (ca < 0 || cb < 0)
        return cli_usage_error(cmd, "missing --from-class A and --to-class B: expected two class labels");
    if (n_img > 64)
        return cli_usage_error(cmd, "--n %lld: expected at most 64 images", n_img);
    if (n_alpha == 0)
        return cli_usage_error(cmd, "missing --alpha LIST: expected step sizes like 0,0.5,1");
    if (!out)
        return cli_usage_error(cmd, "missing --out FILE.png: where to write the grid");
    cli_loaded L;
    if (cli_load_checkpoint(ckpt, &L) != FG_OK)
        return cli_fail(cmd, "%s", fg_last_error());
    if (fg_model_spec_check_data_condition(&L.cfg->model, ckpt, "flowgrad manipulate") != FG_OK) {
        cli_loaded_free(&L);
        return cli_fail(cmd, "%s", fg_last_error());
    }
    fg_dataset d;
    if (fg_config_load_split(L.cfg, 0, fg_memory_available(), &d) != FG_OK) {
        cli_loaded_free(&L);
        return cli_fail(cmd, "%s", fg_last_error());
    }
    int status = 1;
    fg_model *m = L.model;
    size_t D = (size_t)fg_model_dims(m);
    int total = limit > 0 && limit < d.n ? (int)limit : d.n;
    if (ca >= d.n_classes || cb >= d.n_classes) {
        status = cli_usage_error(cmd, "--from-class %lld / --to-class %lld: expected labels "
                                 "below %d", ca, cb, d.n_classes);
        goto done_data;
    }
    /* Class means of the flattened latents (forward order), in double. */
    double *mean_a = fg_xcalloc(D, sizeof *mean_a, "class mean"),
           *mean_b = fg_xcalloc(D, sizeof *mean_b, "class mean");
    float *flat = fg_xmalloc(D * sizeof *flat, "latent");
    int count_a = 0, count_b = 0, chosen = 0;
    int *pick = fg_xmalloc((size_t)n_img * sizeof *pick, "images");
    fg_graph *g = fg_graph_create();
    fg_set_grad_enabled(g, 0);
    fg_rng rng;
    fg_rng_seed(&rng, 0);
    const int B = 64;
    int idx[64], y[64];
    fg_var *lat[FG_FLOW_MAX_LATENTS];
    int k = 0;
    for (int start = 0; start < total; start += B) {
        int n = total - start < B ? total - start : B;
        for (int i = 0; i < n; i++)
            idx[i] = start + i;
        fg_dataset_labels(&d, idx, n, y);
        fg_graph_reset(g);
        fg_var *x = fg_model_input(g, &d, idx, n, m->n_bits, &rng);
        k = fg_multiscale_encode_cond(m->flow, g, x, y, fg_model_condition(m, g, y, n), lat,
                                      NULL);
        for (int s = 0; s < n; s++) {
            if (y[s] != ca && y[s] != cb)
                continue;
            size_t off = 0;
            for (int l = 0; l < k; l++) {
                size_t per = fg_numel(&lat[l]->t) / n;
                memcpy(flat + off, lat[l]->t.data + s * per, per * sizeof(float));
                off += per;
            }
            if (y[s] == ca) {
                for (size_t i = 0; i < D; i++) mean_a[i] += flat[i];
                count_a++;
                if (chosen < n_img)
                    pick[chosen++] = idx[s];
            }
            if (y[s] == cb) {
                for (size_t i = 0; i < D; i++) mean_b[i] += flat[i];
                count_b++;
            }
        }
    }
    if (count_a == 0 || count_b == 0) {
        status = cli_fail(cmd, "class %lld has %d and class %lld has %d test images among "
                          "the first %d; expected both present", ca, count_a, cb, count_b, total);
        goto done;
    }
    /* Encode the chosen images, move them for every alpha, decode. */
    int rows = chosen, cols = n_alpha;
    int yc[64];
    fg_graph_reset(g);
    fg_dataset_labels(&d, pick, rows, yc);
    fg_var *x = fg_model_input(g, &d, pick, rows, m->n_bits, &rng);
    k = fg_multiscale_encode_cond(m->flow, g, x, yc, fg_model_condition(m, g, yc, rows), lat,
                                  NULL);
    fg_var *moved[FG_FLOW_MAX_LATENTS];
    size_t off = 0;
    for (int l = 0; l < k; l++) {
        int shape[4];
        memcpy(shape, lat[l]->t.shape, sizeof shape);
        size_t per = fg_numel(&lat[l]->t) / rows;
        shape[0] = rows * cols;
        moved[l] = fg_const(g, lat[l]->t.ndim, shape);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                float *dst = moved[l]->t.data + (size_t)(r * cols + c) * per;
                const float *src = lat[l]->t.data + (size_t)r * per;
                for (size_t i = 0; i < per; i++) {
                    double dir = mean_b[off + i] / count_b - mean_a[off + i] / count_a;
                    dst[i] = (float)(src[i] + alpha[c] * dir);
                }
            }
        off += per;
    }
    /* A conditional flow decodes every moved latent under its image's own
     * condition. */
    int *ym = fg_xmalloc((size_t)rows * cols * sizeof *ym, "labels");
    for (int i = 0; i < rows * cols; i++)
        ym[i] = yc[i / cols];
    fg_var *xs = fg_multiscale_decode_cond(m->flow, g, moved, k,
                                           fg_model_condition(m, g, ym, rows * cols));
    free(ym);
    int bad = fg_images_grey_nonfinite(&xs->t);
    if (cli_write_grid(out, &xs->t, rows) != FG_OK) {
        status = cli_fail(cmd, "%s", fg_last_error());
        goto done;
    }
    if (json)
        printf("{\"from_class\": %lld, \"to_class\": %lld, \"images\": %d, \"alphas\": %d, "
               "\"class_counts\": [%d, %d], \"non_finite\": %d}\n", ca, cb, rows, cols,
               count_a, count_b, bad);
    else {
        /* An image folder's classes have names: its subfolders'. */
        char name_a[300] = "", name_b[300] = "";
        if (d.class_names) {
            snprintf(name_a, sizeof name_a, " (%s)", d.class_names[ca]);
            snprintf(name_b, sizeof name_b, " (%s)", d.class_names[cb]);
        }
        printf("moved %d images of class %lld%s toward class %lld%s (means over %d and %d test "
               "images) -> %s\n", rows, ca, name_a, cb, name_b, count_a, count_b, out);
    }
    cli_report_nonfinite(cmd, bad, rows * cols);
    status = 0;
done:
    fg_graph_destroy(g);
    free(pick);
    free(flat);
    free(mean_a);
    free(mean_b);
done_data:
    fg_dataset_free(&d);
    cli_loaded_free(&L);
    return status;
}
