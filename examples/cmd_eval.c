/* flowgrad eval: bits/dim of a checkpoint on a data set, per image when
 * asked, with a tighter bound from several dequantization draws, and a
 * histogram against an out-of-distribution set. The library does the
 * work (models/eval.h); this file reads options and writes outputs. */
#include "examples/cli.h"
#include "examples/plots.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char cmd[] = "eval";

static void help(void)
{
    puts("usage: flowgrad eval CKPT [options]\n"
         "\n"
         "  --dataset NAME      data set (default: the checkpoint's own): fashion-mnist,\n"
         "                      synthetic, mnist or cifar10 (from the config's folder when it\n"
         "                      trains on them), or the checkpoint's own data transformed:\n"
         "                      flipped-vertical, inverted (255 - x), noise (uniform)\n"
         "  --data DIR          a folder of PNG and JPEG images instead (all of them,\n"
         "                      resized to the model's shape, labels from class subfolders);\n"
         "                      --per-image names each row by its file\n"
         "  --split test|train  which split (default test)\n"
         "  --samples K         dequantization draws per image, combined into the\n"
         "                      importance-weighted bound log (1/K) sum_k p(x + u_k)\n"
         "                      (default 1: the bound training reports)\n"
         "  --per-image FILE.csv  one row per image: index, label, bits/dim\n"
         "  --ood NAME[,NAME]   data sets to compare with (names as for --dataset), e.g.\n"
         "                      inverted,noise; at most 3\n"
         "  --histogram FILE.png  histogram of per-image bits/dim, the --ood sets\n"
         "                      overlaid (needs gnuplot)\n"
         "  --limit N           only the first N images of each set (default all)\n"
         "  --batch B           batch size (default: the config's)\n"
         "  --threads T         compute threads\n"
         "  --json              print the result as JSON\n"
         "  --help              this text\n"
         "\n"
         "Outputs are written atomically; a failed run leaves none behind.");
}

#define MAX_SETS 4   /* the data set and up to 3 --ood sets */

typedef struct options {
    const char *ckpt, *split, *dataset, *data, *ood, *csv, *histogram;
    char ood_list[1024];
    const char *set[MAX_SETS];   /* NULL first: the checkpoint's own */
    int n_sets;
    long long limit, batch, threads, samples;
    int json;
} options;

/* One evaluated set: its images' bounds, their mean, median and worst. */
typedef struct evaluated {
    fg_eval_set set;
    int n;
    double *bpd, mean;
    fg_bpd_summary summary;
} evaluated;


static int parse(int argc, char **argv, options *o)
{
    *o = (options){.samples = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        const char **text = !strcmp(a, "--split") ? &o->split
                            : !strcmp(a, "--dataset") ? &o->dataset
                            : !strcmp(a, "--data") ? &o->data
                            : !strcmp(a, "--ood") ? &o->ood
                            : !strcmp(a, "--per-image") ? &o->csv
                            : !strcmp(a, "--histogram") ? &o->histogram : NULL;
        long long *num = !strcmp(a, "--limit") ? &o->limit
                         : !strcmp(a, "--batch") ? &o->batch
                         : !strcmp(a, "--threads") ? &o->threads
                         : !strcmp(a, "--samples") ? &o->samples : NULL;
        long long hi = num == &o->samples ? FG_EVAL_MAX_SAMPLES : 1 << 30;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return -1;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (text || num) {
            if (!(v = cli_value(argc, argv, &i)) || (num && cli_int(a, v, 1, hi, num) != FG_OK))
                return cli_usage_error(cmd, "%s", fg_last_error());
            if (text)
                *text = v;
        } else {
            int rc = cli_positional(cmd, a, &o->ckpt, "CKPT");
            if (rc)
                return rc;
        }
    }
    if (!o->ckpt)
        return cli_usage_error(cmd, "missing CKPT: expected a checkpoint.safetensors");
    if (o->data && (o->dataset || o->split))
        return cli_usage_error(cmd, "--data takes every image of its folder: give it without "
                               "%s", o->dataset ? "--dataset" : "--split");
    if (!o->split)
        o->split = o->data ? "all" : "test";
    else if (strcmp(o->split, "test") && strcmp(o->split, "train"))
        return cli_usage_error(cmd, "--split: expected test or train, got '%s'", o->split);
    o->set[0] = o->dataset;
    o->n_sets = 1;
    if (o->ood) {
        snprintf(o->ood_list, sizeof o->ood_list, "%s", o->ood);
        char *save = NULL;
        for (char *name = strtok_r(o->ood_list, ",", &save); name;
             name = strtok_r(NULL, ",", &save)) {
            if (o->n_sets == MAX_SETS)
                return cli_usage_error(cmd, "--ood: at most %d data sets, got '%s'",
                                       MAX_SETS - 1, o->ood);
            o->set[o->n_sets++] = name;
        }
        if (o->n_sets == 1)
            return cli_usage_error(cmd, "--ood: expected a data set name, got '%s'", o->ood);
    }
    return 0;
}

static void evaluate(cli_loaded *L, const options *o, evaluated *e)
{
    const fg_dataset *d = &e->set.data;
    e->n = o->limit > 0 && o->limit < d->n ? (int)o->limit : d->n;
    e->bpd = fg_xmalloc((size_t)e->n * sizeof *e->bpd, "per-image bits/dim");
    fg_graph *g = fg_graph_create();
    int b = o->batch > 0 ? (int)o->batch : L->cfg->train.batch;
    e->mean = fg_model_eval_images(L->model, g, d, b, L->cfg->train.seed, 0, e->n,
                                   (int)o->samples, e->bpd, NULL) / e->n;
    fg_bpd_summarize(e->bpd, e->n, &e->summary);
    fg_graph_destroy(g);
}

static void evaluated_free(evaluated *e)
{
    fg_eval_set_free(&e->set);
    free(e->bpd);
}

/* JSON has no NaN or infinity: a model that overflowed on an image gets null. */
static void json_number(double v)
{
    if (isfinite(v))
        printf("%.6f", v);
    else
        printf("null");
}

static void report(const options *o, const evaluated *e, int n_sets)
{
    if (o->json) {
        const fg_bpd_summary *sm = &e[0].summary;
        printf("{\"split\": \"%s\", \"samples\": %lld, \"images\": %d, \"bits_per_dim\": ",
               o->split, o->samples, e[0].n);
        json_number(e[0].mean);
        printf(", \"median_bits_per_dim\": ");
        json_number(sm->median);
        printf(", \"worst_image\": %d, \"worst_bits_per_dim\": ", sm->worst);
        json_number(sm->worst_bpd);
        printf(", \"bits_per_dim_without_worst\": ");
        json_number(sm->mean_without_worst);
        printf(", \"dataset\": ");
        cli_json_string(stdout, e[0].set.title);
        if (n_sets > 1)
            printf(", \"ood\": [");
        for (int k = 1; k < n_sets; k++) {
            printf("%s{\"dataset\": ", k > 1 ? ", " : "");
            cli_json_string(stdout, e[k].set.title);
            printf(", \"images\": %d, \"bits_per_dim\": ", e[k].n);
            json_number(e[k].mean);
            printf("}");
        }
        printf("%s}\n", n_sets > 1 ? "]" : "");
        return;
    }
    for (int k = 0; k < n_sets; k++) {
        const fg_bpd_summary *sm = &e[k].summary;
        printf("%s bits/dim: %.4f (%d images%s)\n",
               k || o->dataset || o->data ? e[k].set.title : o->split, e[k].mean,
               e[k].n, o->samples > 1 ? ", importance-weighted over draws" : "");
        cli_report_dominated(stdout, sm, "--per-image");
    }
}

/* The histogram first: it is the output that can fail for a reason of its
 * own (no gnuplot), and then no table is written either. */
static int write_outputs(const options *o, const evaluated *e, int n_sets)
{
    if (o->histogram) {
        plot_series s[MAX_SETS];
        for (int k = 0; k < n_sets; k++)
            s[k] = (plot_series){e[k].set.title, e[k].bpd, e[k].n};
        char title[512];
        snprintf(title, sizeof title, "%s%s", o->ckpt,
                 o->samples > 1 ? " (importance-weighted over draws)" : "");
        if (plot_histogram(o->histogram, title, "bits/dim", s, n_sets, NULL) != FG_OK)
            return FG_ERR;
    }
    if (o->csv && fg_eval_write_csv(o->csv, &e[0].set.data, 0, e[0].n, e[0].bpd,
                                    (const char *const *)e[0].set.data.names) != FG_OK)
        return FG_ERR;
    return FG_OK;
}

int cmd_eval(int argc, char **argv)
{
    options o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    /* Before the evaluation spends its time. */
    if (cli_check_output("--per-image", o.csv) != FG_OK ||
        cli_check_output("--histogram", o.histogram) != FG_OK)
        return cli_fail(cmd, "%s", fg_last_error());
    if (o.threads > 0)
        fg_set_threads((int)o.threads);
    cli_loaded L;
    if (cli_load_checkpoint(o.ckpt, &L) != FG_OK)
        return cli_fail(cmd, "%s", fg_last_error());
    if (fg_model_spec_check_data_condition(&L.cfg->model, o.ckpt, "flowgrad eval") != FG_OK) {
        cli_loaded_free(&L);
        return cli_fail(cmd, "%s", fg_last_error());
    }
    evaluated e[MAX_SETS];
    int n_sets = o.n_sets, status = 0;
    memset(e, 0, sizeof e);
    /* Every set is loaded before any is evaluated: a bad name fails at once. */
    for (int k = 0; k < n_sets && !status; k++)
        if (k == 0 && o.data ? fg_eval_set_load_folder(L.cfg, o.data, fg_memory_available(),
                                                       &e[k].set) != FG_OK
                             : fg_eval_set_load(L.cfg, o.set[k], !strcmp(o.split, "train"),
                                                fg_memory_available(), &e[k].set) != FG_OK)
            status = cli_fail(cmd, "%s%s", k ? "--ood: " : o.data ? "--data: " : o.dataset
                              ? "--dataset: " : "", fg_last_error());
    for (int k = 0; k < n_sets && !status; k++)
        evaluate(&L, &o, &e[k]);
    if (!status && write_outputs(&o, e, n_sets) != FG_OK)
        status = cli_fail(cmd, "%s", fg_last_error());
    if (!status)
        report(&o, e, n_sets);
    for (int k = 0; k < n_sets; k++)
        evaluated_free(&e[k]);
    cli_loaded_free(&L);
    return status;
}
