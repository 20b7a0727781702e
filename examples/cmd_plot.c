/* flowgrad plot: the learning curves of a training run from its
 * metrics.csv (plots.h), the figure flowgrad train leaves as curves.png. */
#include "examples/cli.h"
#include "examples/plots.h"

#include <string.h>

static const char cmd[] = "plot";

static void help(void)
{
    puts("usage: flowgrad plot RUN_DIR [options]\n"
         "\n"
         "Draws RUN_DIR/metrics.csv (written by flowgrad train) as four panels against\n"
         "step: train and test bits/dim, learning rate, gradient norm, images per second.\n"
         "Columns are read by name; others are ignored. Needs gnuplot.\n"
         "\n"
         "  --out FILE.png  where to write it (default RUN_DIR/curves.png), atomically\n"
         "  --help          this text");
}

int cmd_plot(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        } else if (!strcmp(a, "--out")) {
            if (!(out = cli_value(argc, argv, &i)))
                return cli_usage_error(cmd, "%s", fg_last_error());
        } else {
            int rc = cli_positional(cmd, a, &dir, "RUN_DIR");
            if (rc)
                return rc;
        }
    }
    if (!dir)
        return cli_usage_error(cmd, "missing RUN_DIR: expected the --out folder of a "
                               "flowgrad train run");
    char csv[4200], png[4200];
    snprintf(csv, sizeof csv, "%s/metrics.csv", dir);
    if (!out) {
        snprintf(png, sizeof png, "%s/curves.png", dir);
        out = png;
    }
    if (plot_curves(csv, out, dir, NULL) != FG_OK)
        return cli_fail(cmd, "%s", fg_last_error());
    printf("wrote %s\n", out);
    return 0;
}
