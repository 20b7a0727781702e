/* Shared pieces of the flowgrad command line: argument parsing with
 * messages that name the argument, data loading, checkpoints, evaluation. */
#ifndef FLOWGRAD_EXAMPLES_CLI_H
#define FLOWGRAD_EXAMPLES_CLI_H

#include "flowgrad.h"
#include "models/model.h"
#include "models/checkpoint.h"
#include "models/train.h"
#include "models/eval.h"
#include "models/train_memory.h"

/* Subcommands: argv[0] is the subcommand's name. Return the exit status. */
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_reconstruct(int argc, char **argv);
int cmd_interpolate(int argc, char **argv);
int cmd_manipulate(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_ablate(int argc, char **argv);
int cmd_plot(int argc, char **argv);

/* Prints "flowgrad CMD: message" to stderr; returns exit status 2 (usage)
 * or 1 (failure). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Value parsing: FG_ERR with "--NAME: expected ..., got '...'". */
int cli_int(const char *opt, const char *s, long long lo, long long hi, long long *out);
int cli_double(const char *opt, const char *s, double lo, double hi, double *out);
/* Comma-separated numbers in [lo, hi]; at most max of them. */
int cli_double_list(const char *opt, const char *s, double lo, double hi,
                    double *out, int max, int *n);
/* argv[*i] is an option needing a value: returns it and advances, or NULL
 * with an error message. */
const char *cli_value(int argc, char **argv, int *i);
/* mkdir -p: creates path and its missing parents; 0, or -1 with errno. */
int cli_mkdirs(const char *path);
/* The output folder of a run: out when given, else runs/<prefix><name of
 * config without folder and extension> (in buf). */
const char *cli_out_name(const char *out, const char *config, const char *prefix, char *buf,
                         size_t n);
/* cli_out_name, created with its parents. NULL after printing cmd's error. */
const char *cli_out_dir(const char *cmd, const char *out, const char *config,
                        const char *prefix, char *buf, size_t n);
/* FG_OK when an output file can be written at path (NULL: nothing to
 * check): its temporary is created and removed again. Else FG_ERR with
 * "OPT: PATH: why". */
int cli_check_output(const char *opt, const char *path);
/* The end of every argument loop: a is an unknown option, the one
 * positional argument (stored in *slot), or one too many. Returns 0 when a
 * was taken, else the usage error's exit status. */
int cli_positional(const char *cmd, const char *a, const char **slot, const char *what);

/* A model loaded from a checkpoint: the config it was trained with and its
 * weights (the EMA averages when the checkpoint has them), after every check
 * of fg_checkpoint_load; building it may take the memory available
 * (fg_memory_available). */
typedef fg_checkpoint cli_loaded;
int cli_load_checkpoint(const char *path, cli_loaded *out);
void cli_loaded_free(cli_loaded *l);

/* Writes x (n, C, H, W) as a grid of `rows` rows. */
int cli_write_grid(const char *path, const fg_tensor *x, int rows);

/* The warning of cmd for `bad` of `total` images greyed (nothing if none). */
void cli_report_nonfinite(const char *cmd, int bad, int total);
/* The line under a mean of bits/dim that one image moves by more than
 * 0.01 (fg_bpd_summary_dominated): the image, its score, the mean without
 * it and the median; where names how to list them all. Nothing otherwise. */
void cli_report_dominated(FILE *f, const fg_bpd_summary *s, const char *where);

/* JSON-safe printing of a string (quotes included). */
void cli_json_string(FILE *f, const char *s);

#endif
