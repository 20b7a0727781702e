/* flowgrad train: fits a model declared in YAML and keeps a resumable
 * checkpoint, a metrics table and sample grids in the output folder. The
 * library trainer takes the steps (models/train.h); train_run.c writes what
 * the run shows; this file reads the options and sets the run up. */
#include "examples/cli.h"
#include "examples/train_dist.h"
#include "examples/train_guard.h"
#include "examples/train_run.h"
#include "examples/train_trace.h"

#include <stdlib.h>
#include <string.h>

static const char cmd[] = "train";

static void help(void)
{
    puts("usage: flowgrad train CONFIG [options]\n"
         "\n"
         "Trains the model of a YAML config on its train: dataset.\n"
         "\n"
         "  --out DIR       output folder (default runs/<config name>): checkpoint.safetensors,\n"
         "                  metrics.csv, samples_<step>.png, and curves.png at the end\n"
         "                  (flowgrad plot; skipped with a warning without gnuplot)\n"
         "  --resume CKPT   continue from a checkpoint of this config\n"
         "  --steps N       train for N steps in total (overrides the config)\n"
         "  --epochs E      train for E epochs in total (overrides the config)\n"
         "  --batch B       batch size (overrides the config)\n"
         "  --threads T     compute threads (default FLOWGRAD_THREADS or all cores)\n"
         "  --seed S        seed for weights, data order and noise (overrides the config)\n"
         "  --memory M      store (the tape keeps every activation) or invert (the backward\n"
         "                  pass recomputes each layer's input with its inverse: same\n"
         "                  gradients, far less memory); overrides train.memory\n"
         "  --skip-nonfinite N  skip up to N batches whose loss or gradient is not finite\n"
         "                  (default 0: the first one stops the run)\n"
         "  --no-memory-check  start even when the estimated memory (flowgrad info --batch)\n"
         "                  exceeds MemAvailable (also FLOWGRAD_NO_MEMORY_CHECK=1)\n"
         "\n"
         "Outlier steps (loss or gradient norm far above recent steps) are skipped, and\n"
         "counted in metrics.csv's guard column and the closing summary; see the train:\n"
         "keys guard, guard_window, guard_threshold, clip_factor and schedule.\n"
         "FLOWGRAD_TRACE=FILE writes each step's per-layer log-determinants, prior\n"
         "log-scales and per-group gradient norms to FILE (CSV), to find a jump's source.\n"
         "\n"
         "SIGINT or SIGTERM ends the current step, writes the checkpoint and exits with\n"
         "status 130 or 143; a second signal stops at once. Running out of memory\n"
         "exits with status 3, the last checkpoint left as it was. Files are written to\n"
         "FILE.tmp.<pid> and renamed into place; such temporaries of killed runs are\n"
         "removed by the next write into the folder. The --resume checkpoint is checked\n"
         "(permutations, LU signs, finite weights, moments and averages, counters)\n"
         "before anything is loaded.\n"
         "  --help          this text");
}

int cmd_train(int argc, char **argv)
{
    const char *config = NULL, *out = NULL, *resume = NULL, *memory = NULL;
    long long steps = -1, epochs = -1, batch = -1, threads = -1, seed = -1, skip = 0;
    const char *no_check = getenv("FLOWGRAD_NO_MEMORY_CHECK");
    int memory_check = !(no_check && !strcmp(no_check, "1"));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long long *target = NULL, lo = 1, hi = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        } else if (!strcmp(a, "--no-memory-check")) {
            memory_check = 0;
            continue;
        } else if (!strcmp(a, "--out") || !strcmp(a, "--resume") || !strcmp(a, "--memory")) {
            if (!(v = cli_value(argc, argv, &i)))
                return cli_usage_error(cmd, "%s", fg_last_error());
            *(a[2] == 'o' ? &out : a[2] == 'r' ? &resume : &memory) = v;
            continue;
        } else if (!strcmp(a, "--steps")) {
            target = &steps, hi = FG_CONFIG_MAX_STEPS;
        } else if (!strcmp(a, "--epochs")) {
            target = &epochs, hi = 1000000;
        } else if (!strcmp(a, "--batch")) {
            target = &batch, hi = 65536;
        } else if (!strcmp(a, "--threads")) {
            target = &threads, hi = 1024;
        } else if (!strcmp(a, "--seed")) {
            target = &seed, lo = 0, hi = INT64_MAX;
        } else if (!strcmp(a, "--skip-nonfinite")) {
            target = &skip, lo = 0, hi = FG_CONFIG_MAX_STEPS;
        } else {
            int rc = cli_positional(cmd, a, &config, "CONFIG");
            if (rc)
                return rc;
            continue;
        }
        if (!(v = cli_value(argc, argv, &i)) || cli_int(a, v, lo, hi, target) != FG_OK)
            return cli_usage_error(cmd, "%s", fg_last_error());
    }
    if (!config)
        return cli_usage_error(cmd, "missing CONFIG: expected a YAML model config");
    if (steps >= 0 && epochs >= 0)
        return cli_usage_error(cmd, "--steps and --epochs: give one, not both");
    if (threads > 0)
        fg_set_threads((int)threads);
    if (dist_start(threads > 0) != FG_OK)
        return dist_end(cli_fail(cmd, "%s", fg_last_error()), 0);

    train_run r;
    memset(&r, 0, sizeof r);
    if (fg_config_load_file(config, &r.cfg) != FG_OK)
        return dist_end(cli_fail(cmd, "%s", fg_last_error()), 0);
    int status = 1;
    fg_train_spec *t = &r.cfg->train;
    if (!r.cfg->has_train) {
        cli_fail(cmd, "%s: no train: section; expected one with at least a dataset", config);
        goto out_cfg;
    }
    if (fg_model_spec_check_data_condition(&r.cfg->model, config, "flowgrad train") != FG_OK) {
        cli_fail(cmd, "%s", fg_last_error());
        goto out_cfg;
    }
    if (batch > 0)
        t->batch = (int)batch;
    if (seed >= 0)
        t->seed = (uint64_t)seed;
    if (steps > 0)
        t->steps = steps, t->epochs = 0;
    if (epochs > 0)
        t->epochs = (int)epochs, t->steps = 0;
    if (memory && fg_memory_mode_parse(memory, &t->memory) != FG_OK) {
        status = cli_usage_error(cmd, "--memory: %s", fg_last_error());
        goto out_cfg;
    }

    char default_out[4096];
    if (!(r.out = cli_out_dir(cmd, out, config, "", default_out, sizeof default_out)))
        goto out_cfg;
    double avail = fg_memory_available();
    if (fg_config_load_split(r.cfg, 1, avail, &r.train) != FG_OK ||
        fg_config_load_split(r.cfg, 0, avail, &r.test) != FG_OK ||
        fg_dist_check_batch(t->batch) != FG_OK) {
        cli_fail(cmd, "%s", fg_last_error());
        goto out_data;
    }
    /* Refuse up front, with numbers, what would otherwise fail in malloc
     * hours later or drive the machine into swap. */
    fg_train_memory mem = {0};
    double refused = memory_check && fg_train_memory_check(r.cfg, fg_dist_shard_size(t->batch),
                                                            &r.train, &r.test, &mem) != FG_OK;
    fg_train_memory_free(&mem);
    char why[1024] = "another rank's machine cannot fit its share of the batch";
    if (refused)
        snprintf(why, sizeof why, "%s", fg_last_error());
    fg_dist_mean(&refused, 1); /* every rank stops when one must */
    if (refused > 0) {
        cli_fail(cmd, "%s", why);
        goto out_data;
    }
    if (r.train.n < t->batch) {
        cli_fail(cmd, "batch %d: larger than the %d training images", t->batch, r.train.n);
        goto out_data;
    }
    if (fg_model_build(&r.cfg->model, t->seed, &r.model) != FG_OK) {
        cli_fail(cmd, "%s: %s", config, fg_last_error());
        goto out_data;
    }
    r.plan.epochs = t->steps > 0 ? 0 : t->epochs;
    r.plan.total_steps = t->steps > 0 ? (long)t->steps : (long)(r.train.n / t->batch) * t->epochs;
    fg_trainer_options o = fg_config_trainer_options(r.cfg, (long)skip);
    o.total_steps = r.plan.total_steps;
    o.inspect_gradients = trace_inspect_gradients;
    fg_trainer_init(&r.tr, &r.model->state, &o);
    fg_batch_iter_init(&r.it, &r.train, t->batch, 1, 1, t->seed);

    fg_train_state s;
    if (resume) {
        if (fg_checkpoint_resume(resume, r.model, &r.tr, r.train.n, &s) != FG_OK) {
            cli_fail(cmd, "--resume: %s", fg_last_error());
            goto out_model;
        }
        r.tr.step = s.step;
        r.tr.elapsed = s.elapsed_seconds;
        fg_batch_iter_seek(&r.it, s.epoch, s.position);
    }
    fg_trainer_broadcast(&r.tr);
    if (dist_is_root())
        fprintf(stderr, "%s: %zu parameters, %d train / %d test images, %ld steps of batch %d "
                "on %d thread%s x %d rank%s, memory %s -> %s\n", config,
                fg_state_list_param_count(&r.model->state), r.train.n, r.test.n,
                r.plan.total_steps, t->batch, fg_get_threads(), fg_get_threads() == 1 ? "" : "s",
                fg_dist_size(), fg_dist_size() == 1 ? "" : "s", fg_memory_mode_name(t->memory),
                r.out);
    if (!fg_train_plan_pending(&r.plan, &r.tr, &r.it)) {
        fprintf(stderr, "nothing to do: the checkpoint is at step %ld of %ld\n", r.tr.step,
                r.plan.total_steps);
        status = 0;
        goto out_model;
    }
    r.inject = trace_inject_step();
    r.stop_after = trace_stop_after();
    guard_catch_stop_signals();
    if (trace_start() != FG_OK || train_run_loop(&r) != FG_OK)
        cli_fail(cmd, "%s", fg_last_error());
    else
        status = r.stopped_by ? guard_stop_status(r.stopped_by) : 0;
    train_run_guard_summary(&r);
    if (status == 0 && fg_dist_check_same(&r.model->state) != FG_OK)
        status = cli_fail(cmd, "%s", fg_last_error());
out_model:
    trace_stop();
    fg_batch_iter_free(&r.it);
    fg_trainer_free(&r.tr);
    fg_model_free(r.model);
out_data:
    fg_dataset_free(&r.train);
    fg_dataset_free(&r.test);
out_cfg:
    fg_config_free(r.cfg);
    return dist_end(status, status != 0 && status == guard_stop_status(r.stopped_by));
}
