/* flowgrad: the command line. One subcommand per source file. */
#include "examples/cli.h"

#include <string.h>

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand commands[] = {
    {"train", cmd_train, "train a model declared in YAML"},
    {"eval", cmd_eval, "bits/dim of a checkpoint, per image or against another data set"},
    {"sample", cmd_sample, "draw samples at one or more temperatures"},
    {"reconstruct", cmd_reconstruct, "encode and decode test images"},
    {"interpolate", cmd_interpolate, "interpolate between two test images' latents"},
    {"manipulate", cmd_manipulate, "move images along a class-mean latent direction"},
    {"check", cmd_check, "verify a config's flow: round trip, log-det, gradient"},
    {"info", cmd_info, "parameters, per-level shapes and FLOPs of a config or checkpoint"},
    {"plot", cmd_plot, "learning curves of a training run from its metrics.csv"},
    {"ablate", cmd_ablate, "the Glow ablation: coupling x permutation x seed, table and plot"},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f)
{
    fputs("usage: flowgrad COMMAND [ARGS]   ('flowgrad COMMAND --help' for details)\n\n", f);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    fg_short_spin_waits(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "flowgrad: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
