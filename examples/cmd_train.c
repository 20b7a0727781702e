/* flowgrad train: fits a model declared in YAML and keeps a resumable
 * checkpoint, a metrics table and sample grids in the output folder.
 *
 * Determinism: the batch order is a function of (seed, epoch, position) and
 * each step's dequantization noise comes from the stream (seed, step), so a
 * resumed run sees exactly the data an uninterrupted one would. */
#include "examples/cli.h"
#include "examples/train_dist.h"
#include "examples/train_guard.h"
#include "examples/train_memory.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char cmd[] = "train";

static void help(void)
{
    puts("usage: flowgrad train CONFIG [options]\n"
         "\n"
         "Trains the model of a YAML config on its train: dataset.\n"
         "\n"
         "  --out DIR       output folder (default runs/<config name>): checkpoint.safetensors,\n"
         "                  metrics.csv, samples_<step>.png\n"
         "  --resume CKPT   continue from a checkpoint of this config\n"
         "  --steps N       train for N steps in total (overrides the config)\n"
         "  --epochs E      train for E epochs in total (overrides the config)\n"
         "  --batch B       batch size (overrides the config)\n"
         "  --threads T     compute threads (default FLOWGRAD_THREADS or all cores)\n"
         "  --seed S        seed for weights, data order and noise (overrides the config)\n"
         "  --skip-nonfinite N  skip up to N batches whose loss or gradient is not finite\n"
         "                  (default 0: the first one stops the run)\n"
         "  --no-memory-check  start even when the estimated memory (flowgrad info --batch)\n"
         "                  exceeds MemAvailable (also FLOWGRAD_NO_MEMORY_CHECK=1)\n"
         "\n"
         "SIGINT or SIGTERM ends the current step, writes the checkpoint and exits with\n"
         "status 130 or 143; a second signal stops at once. Files are written to\n"
         "FILE.tmp.<pid> and renamed into place; such temporaries of killed runs are\n"
         "removed by the next write into the folder. The --resume checkpoint is checked\n"
         "(permutations, LU signs, finite weights, moments and averages, counters)\n"
         "before anything is loaded.\n"
         "  --help          this text");
}

/* Distinct stream numbers keep the noise of different purposes apart. */
#define STREAM_NOISE 0x100000000ULL
#define STREAM_SAMPLE 0x200000000ULL

typedef struct run {
    fg_config *cfg;
    fg_model *model;
    fg_optim optim;
    fg_ema ema;
    int use_ema;
    fg_graph *g;
    fg_dataset train, test;
    fg_batch_iter it;
    long step, total_steps;
    int epochs;               /* 0: counted in steps */
    double elapsed;           /* seconds of training, carried across resumes */
    long skip_nonfinite, skipped; /* bad batches allowed, and seen */
    int stopped_by;           /* signal that ended the run, or 0 */
    const char *out;
    char path[4096];
} run;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *out_file(run *r, const char *name)
{
    snprintf(r->path, sizeof r->path, "%s/%s", r->out, name);
    return r->path;
}

static int save_checkpoint(run *r)
{
    if (!dist_is_root())
        return FG_OK;
    /* A checkpoint is the state to come back to: never replace a good one
     * with weights that are no longer finite. */
    char why[512];
    if (fg_state_list_check_finite(&r->model->state, 0) != FG_OK) {
        snprintf(why, sizeof why, "%s", fg_last_error());
        return fg_error("step %ld: %s; checkpoint not written, the last good one is kept",
                        r->step, why);
    }
    guard_report_ill_conditioned(&r->model->state, GUARD_COND_WARN, r->step);
    fg_safetensors st;
    fg_st_init(&st);
    fg_st_add_state(&st, &r->model->state);
    fg_optim_save(&r->optim, &st);
    if (r->use_ema) {
        fg_state_list el;
        fg_state_list_init(&el);
        fg_ema_visit(&r->ema, fg_state_list_add, &el);
        fg_st_add_state(&st, &el);
        fg_state_list_free(&el);
    }
    int64_t s[4] = {r->step, r->it.epoch, r->it.pos, (int64_t)r->cfg->train.seed};
    fg_st_add_i64(&st, "train.state", s, 4);
    fg_st_set_meta(&st, "config", r->cfg->text);
    char buf[64];
    snprintf(buf, sizeof buf, "%.3f", r->elapsed);
    fg_st_set_meta(&st, "elapsed_seconds", buf);
    fg_st_set_meta(&st, "format", "flowgrad-checkpoint-1");
    int rc = fg_st_write(&st, out_file(r, "checkpoint.safetensors"));
    fg_st_free(&st);
    if (rc != FG_OK && !strstr(fg_last_error(), "left untouched")) {
        snprintf(why, sizeof why, "%s", fg_last_error());
        rc = fg_error("%s (the previous checkpoint is left untouched)", why);
    }
    return rc;
}

/* The checkpoint comes from outside: what its tensors mean is checked
 * (fg_checkpoint_check_values: optimizer and EMA state too) before any is
 * copied, and the loaded model once more as its layers will use it. */
static int load_resume(run *r, const char *path)
{
    fg_safetensors st;
    fg_st_init(&st);
    if (fg_st_read(&st, path) != FG_OK)
        return FG_ERR;
    int64_t s[4];
    int rc = FG_ERR;
    if (fg_checkpoint_check_values(&st) != FG_OK ||
        fg_st_get_i64(&st, "train.state", s, 4) != FG_OK)
        goto done;
    if (s[2] > r->train.n) {
        fg_error("%s: train.state (step %lld, epoch %lld, position %lld) does not fit "
                 "a dataset of %d images", path, (long long)s[0], (long long)s[1],
                 (long long)s[2], r->train.n);
        goto done;
    }
    if (fg_st_load_state(&st, &r->model->state, "") != FG_OK ||
        fg_optim_load(&r->optim, &st) != FG_OK)
        goto done;
    if (r->use_ema) {
        fg_state_list el;
        fg_state_list_init(&el);
        fg_ema_visit(&r->ema, fg_state_list_add, &el);
        int e = fg_st_load_state(&st, &el, "");
        fg_state_list_free(&el);
        if (e != FG_OK)
            goto done;
    }
    if (fg_model_check_state(r->model) != FG_OK) {
        fg_error("%s: %s", path, fg_last_error());
        goto done;
    }
    r->step = (long)s[0];
    fg_batch_iter_seek(&r->it, (long)s[1], (int)s[2]);
    const char *el = fg_st_get_meta(&st, "elapsed_seconds");
    char *end = NULL;
    r->elapsed = el ? strtod(el, &end) : 0;
    if (el && (end == el || *end || !isfinite(r->elapsed) || r->elapsed < 0)) {
        fg_error("%s: __metadata__ elapsed_seconds is '%.64s'; expected a number of seconds "
                 ">= 0", path, el);
        goto done;
    }
    rc = FG_OK;
done:
    fg_st_free(&st);
    return rc;
}

/* Evaluations and samples use the EMA weights when there are any. */
static double test_bpd(run *r)
{
    if (r->use_ema)
        fg_ema_swap(&r->ema);
    double bpd = dist_eval_bpd(r->model, r->g, &r->test,
                               dist_shard_size(r->cfg->train.batch), r->cfg->train.seed);
    if (r->use_ema)
        fg_ema_swap(&r->ema);
    return bpd;
}

static int write_samples(run *r)
{
    if (!dist_is_root())
        return FG_OK;
    if (r->use_ema)
        fg_ema_swap(&r->ema);
    fg_rng rng;
    fg_rng_seed_stream(&rng, r->cfg->train.seed, STREAM_SAMPLE);
    int n = 64, *y = NULL;
    int labels[64];
    if (r->model->n_classes) {
        for (int i = 0; i < n; i++)
            labels[i] = (i / 8) % r->model->n_classes;
        y = labels;
    }
    fg_graph_reset(r->g);
    fg_var *x = fg_multiscale_sample(r->model->flow, r->g, n, y,
                                     (float)r->cfg->train.temperature, &rng);
    char name[64];
    snprintf(name, sizeof name, "samples_%ld.png", r->step);
    int rc = cli_write_grid(out_file(r, name), &x->t, 8);
    fg_graph_reset(r->g);
    if (r->use_ema)
        fg_ema_swap(&r->ema);
    return rc;
}

static void progress(run *r, double bpd, double img_s, int final)
{
    if (!dist_is_root())
        return;
    static int tty = -1;
    if (tty < 0)
        tty = isatty(2);
    double eta = img_s > 0 ? (r->total_steps - r->step) * (double)r->cfg->train.batch / img_s : 0;
    int em = (int)(eta / 60), es = (int)eta % 60;
    if (tty) {
        int width = 30, fill = (int)(width * (double)r->step / r->total_steps);
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] step %ld/%ld  %.4f bits/dim  %.1f img/s  ETA %dm%02ds ",
                bar, r->step, r->total_steps, bpd, img_s, em, es);
        if (final)
            fputc('\n', stderr);
    } else {
        long every = r->total_steps / 50 > 10 ? r->total_steps / 50 : 10;
        if (final || r->step % every == 0 || r->step == 1)
            fprintf(stderr, "step %ld/%ld  %.4f bits/dim  %.1f img/s  ETA %dm%02ds\n",
                    r->step, r->total_steps, bpd, img_s, em, es);
    }
    fflush(stderr);
}

static int due(int64_t every, long step)
{
    return every > 0 && step % every == 0;
}

static int train_loop(run *r)
{
    const fg_train_spec *t = &r->cfg->train;
    fg_model *m = r->model;
    FILE *metrics = fopen(dist_is_root() ? out_file(r, "metrics.csv") : "/dev/null",
                          r->step > 0 ? "a" : "w");
    if (!metrics)
        return fg_error("%s: cannot open for writing", r->path);
    if (r->step == 0)
        fprintf(metrics, "step,epoch,train_bpd,test_bpd,lr,img_per_s,elapsed_s,grad_norm\n");
    int *idx = fg_xmalloc((size_t)t->batch * sizeof *idx, "batch indices");
    int *y = fg_xmalloc((size_t)t->batch * sizeof *y, "batch labels");
    int rc = FG_OK;
    double ema_img_s = 0;
    double bpd = 0;
    /* Counted in epochs, the last step is still followed by the end of its
     * epoch: the final evaluation, samples and checkpoint. */
    while (r->step < r->total_steps ||
           (r->epochs && r->it.pos > 0 && r->it.epoch < r->epochs)) {
        int n = fg_batch_iter_next(&r->it, idx);
        if (n == 0) {
            /* End of an epoch: its evaluations, samples and checkpoint. */
            int ended = (int)r->it.epoch;
            double tb = NAN;
            if (t->test_every == 0 || r->epochs) {
                tb = test_bpd(r);
                if (dist_is_root())
                    fprintf(stderr, "epoch %d: test %.4f bits/dim\n", ended, tb);
                fprintf(metrics, "%ld,%d,,%.6f,,,%.2f\n", r->step, ended, tb, r->elapsed);
                fflush(metrics);
            }
            if (t->sample_every == 0 && (rc = write_samples(r)) != FG_OK)
                break;
            if (t->checkpoint_every == 0 && (rc = save_checkpoint(r)) != FG_OK)
                break;
            if (r->epochs && ended >= r->epochs)
                break;
            continue;
        }
        double t0 = now();
        /* n is the global batch; this rank trains on its shard of it. */
        int first = dist_shard_first(n), mine = dist_shard_size(n);
        fg_dataset_labels(&r->train, idx + first, mine, y);
        fg_rng noise;
        fg_rng_seed_stream(&noise, t->seed, STREAM_NOISE + (uint64_t)r->step);
        dist_skip_noise(&noise, &r->train, first);
        fg_graph_reset(r->g);
        fg_var *x = cli_batch(r->g, &r->train, idx + first, mine, m->n_bits, &noise);
        fg_var *loss = fg_model_loss(m, r->g, x, y, &bpd);
        double lv = loss->t.data[0];
        /* Means over ranks, so every rank takes the same decisions below. */
        double means[2] = {lv, bpd};
        dist_mean(means, 2);
        lv = means[0], bpd = means[1];
        const char *bad = NULL;
        char why[512];
        if (!isfinite(lv)) {
            /* Name a parameter when one is already broken. */
            int p_ok = fg_state_list_check_finite(&m->state, 0) == FG_OK;
            snprintf(why, sizeof why, "the loss is %s (bits/dim %g)%s%s",
                     isnan(lv) ? "NaN" : "infinite", bpd, p_ok ? "" : ", ",
                     p_ok ? "" : fg_last_error());
            bad = why;
        } else {
            fg_state_list_zero_grad(&m->state);
            fg_backward(r->g, loss);
            fg_dist_average_grads(&m->state);
            /* State order is forward order, so the first named is the
             * earliest layer with a non-finite gradient. */
            if (fg_state_list_check_finite(&m->state, 1) != FG_OK) {
                snprintf(why, sizeof why, "%s", fg_last_error());
                bad = why;
            }
        }
        if (bad && r->skipped < r->skip_nonfinite) {
            r->skipped++;
            fprintf(stderr, "step %ld: %s; batch skipped (%ld of %ld allowed)\n", r->step + 1,
                    bad, r->skipped, r->skip_nonfinite);
            fg_graph_reset(r->g);
            continue;
        }
        if (bad) {
            rc = fg_error("step %ld: %s; stopping without writing a checkpoint, the last "
                          "good one is kept. Try a lower lr, more warmup, grad_clip or "
                          "--skip-nonfinite N", r->step + 1, bad);
            break;
        }
        /* The norm before clipping (grad_clip 0 clips nothing): a spike in it
         * is where a loss spike comes from. */
        double grad_norm = fg_state_list_clip_grad_norm(&m->state, t->grad_clip);
        r->step++;
        double lr = fg_lr_warmup(t->lr, r->step, t->warmup);
        fg_optim_step(&r->optim, lr);
        if (r->use_ema)
            fg_ema_update(&r->ema);
        fg_graph_reset(r->g);
        double dt = now() - t0;
        r->elapsed += dt;
        double img_s = n / (dt > 1e-9 ? dt : 1e-9);
        ema_img_s = ema_img_s == 0 ? img_s : 0.9 * ema_img_s + 0.1 * img_s;
        double tb = NAN;
        int last = r->step == r->total_steps;
        if (due(t->test_every, r->step) || (last && !r->epochs && t->test_every > 0)) {
            tb = test_bpd(r);
            if (dist_is_root())
                fprintf(stderr, "%sstep %ld: test %.4f bits/dim\n", isatty(2) ? "\n" : "",
                        r->step, tb);
        }
        fprintf(metrics, "%ld,%ld,%.6f,", r->step, r->it.epoch, bpd);
        if (isfinite(tb))
            fprintf(metrics, "%.6f", tb);
        fprintf(metrics, ",%.6g,%.2f,%.2f,%.6g\n", lr, img_s, r->elapsed, grad_norm);
        fflush(metrics);
        progress(r, bpd, ema_img_s, last);
        if (due(t->sample_every, r->step) || (last && t->sample_every > 0))
            if ((rc = write_samples(r)) != FG_OK)
                break;
        if (due(t->checkpoint_every, r->step) || (last && t->checkpoint_every > 0))
            if ((rc = save_checkpoint(r)) != FG_OK)
                break;
        /* Agreed between ranks, so that all of them stop after this step
         * even when the signal reached only some. */
        if ((r->stopped_by = dist_agree_stop(guard_stop_signal())) != 0) {
            if ((rc = save_checkpoint(r)) == FG_OK && dist_is_root())
                fprintf(stderr, "\nstopped by signal %d after step %ld; checkpoint written to "
                        "%s\n", r->stopped_by, r->step, r->path);
            break;
        }
    }
    /* A step budget that ends inside an epoch still leaves a checkpoint. */
    if (rc == FG_OK && !r->stopped_by && r->epochs == 0 && t->checkpoint_every == 0)
        rc = save_checkpoint(r);
    if (rc == FG_OK && !r->stopped_by && r->epochs == 0 && t->sample_every == 0)
        rc = write_samples(r);
    free(idx);
    free(y);
    fclose(metrics);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    const char *config = NULL, *out = NULL, *resume = NULL;
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
        } else if (!strcmp(a, "--out") || !strcmp(a, "--resume")) {
            if (!(v = cli_value(argc, argv, &i)))
                return cli_usage_error(cmd, "%s", fg_last_error());
            *(a[2] == 'o' ? &out : &resume) = v;
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

    run r;
    memset(&r, 0, sizeof r);
    if (fg_config_load_file(config, &r.cfg) != FG_OK)
        return dist_end(cli_fail(cmd, "%s", fg_last_error()), 0);
    int status = 1;
    fg_train_spec *t = &r.cfg->train;
    if (!r.cfg->has_train) {
        cli_fail(cmd, "%s: no train: section; expected one with at least a dataset", config);
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

    char default_out[4096];
    if (!(out = cli_out_dir(cmd, out, config, "", default_out, sizeof default_out)))
        goto out_cfg;
    r.out = out;

    if (cli_load_split(r.cfg, 1, &r.train) != FG_OK ||
        cli_load_split(r.cfg, 0, &r.test) != FG_OK) {
        cli_fail(cmd, "%s", fg_last_error());
        goto out_data;
    }
    if (dist_check_batch(t->batch) != FG_OK) {
        cli_fail(cmd, "%s", fg_last_error());
        goto out_data;
    }
    /* Refuse up front, with numbers, what would otherwise fail in malloc
     * hours later or drive the machine into swap. */
    train_memory mem;
    double refused = memory_check && train_memory_check(r.cfg, dist_shard_size(t->batch),
                                                         &r.train, &r.test, &mem) != FG_OK;
    char why[1024] = "another rank's machine cannot fit its share of the batch";
    if (refused)
        snprintf(why, sizeof why, "%s", fg_last_error());
    dist_mean(&refused, 1); /* every rank stops when one must */
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
    fg_optim_init(&r.optim, t->optimizer, &r.model->state, 0.9, 0.999, 1e-8);
    r.use_ema = t->ema > 0;
    if (r.use_ema)
        fg_ema_init(&r.ema, &r.model->state, t->ema);
    r.g = fg_graph_create();
    fg_batch_iter_init(&r.it, &r.train, t->batch, 1, 1, t->seed);
    long per_epoch = r.train.n / t->batch;
    r.epochs = t->steps > 0 ? 0 : t->epochs;
    r.total_steps = t->steps > 0 ? (long)t->steps : per_epoch * t->epochs;

    if (resume && load_resume(&r, resume) != FG_OK) {
        cli_fail(cmd, "--resume: %s", fg_last_error());
        goto out_model;
    }
    dist_broadcast_start(&r.model->state, &r.optim, r.use_ema ? &r.ema : NULL);
    size_t params = fg_state_list_param_count(&r.model->state);
    if (dist_is_root())
        fprintf(stderr, "%s: %zu parameters, %d train / %d test images, %ld steps of batch %d "
                "on %d thread%s x %d rank%s -> %s\n", config, params, r.train.n, r.test.n,
                r.total_steps, t->batch, fg_get_threads(), fg_get_threads() == 1 ? "" : "s",
                fg_dist_size(), fg_dist_size() == 1 ? "" : "s", out);
    if (r.step >= r.total_steps && !(r.epochs && r.it.pos > 0 && r.it.epoch < r.epochs)) {
        fprintf(stderr, "nothing to do: the checkpoint is at step %ld of %ld\n", r.step,
                r.total_steps);
        status = 0;
        goto out_model;
    }
    r.skip_nonfinite = (long)skip;
    guard_catch_stop_signals();
    if (train_loop(&r) != FG_OK)
        cli_fail(cmd, "%s", fg_last_error());
    else
        status = r.stopped_by ? guard_stop_status(r.stopped_by) : 0;
    if (status == 0 && fg_dist_check_same(&r.model->state) != FG_OK)
        status = cli_fail(cmd, "%s", fg_last_error());
out_model:
    fg_batch_iter_free(&r.it);
    fg_graph_destroy(r.g);
    if (r.use_ema)
        fg_ema_free(&r.ema);
    fg_optim_free(&r.optim);
    fg_model_free(r.model);
out_data:
    fg_dataset_free(&r.train);
    fg_dataset_free(&r.test);
out_cfg:
    fg_config_free(r.cfg);
    return dist_end(status, status != 0 && status == guard_stop_status(r.stopped_by));
}
