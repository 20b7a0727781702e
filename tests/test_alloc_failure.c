/* Running out of memory while a run resumes, steps and checkpoints.
 *
 * A child process resumes a tiny model's run from its checkpoint (builds
 * the model and trainer, fg_checkpoint_resume; the config and dataset are
 * read once, before), takes one training step and saves the checkpoint
 * over the one it resumed from. A first child counts the allocations A of
 * that sequence; then for every N in 1..A a child runs it with the Nth
 * allocation failing (fg_alloc_fail_at). Each
 * must end with a report, never a signal: status FG_EXIT_OUT_OF_MEMORY and
 * "flowgrad: out of memory (...): cannot allocate N bytes for WHAT", or a
 * reader's FG_ERR naming the size it could not allocate. Afterwards the
 * checkpoint is the old file byte for byte or the complete new one, and no
 * temporary is left beside it. The same for every allocation of
 * fg_checkpoint_load, the loader of eval and sample. */
#include "check_main.h"
#include "flowgrad.h"
#include "tensor/alloc_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Under AddressSanitizer a fork and exit cost some 30 ms of system time
 * (the page tables of its shadow memory) and a child that gets as far as
 * the step some 200 ms: minutes for every N. There the allocations are
 * sampled, every LOAD_STRIDE-th of the load (thousands that are much
 * alike: one JSON node and one tensor after another), every
 * STEP_SAVE_STRIDE-th of the step and the save, and the last of each
 * phase. The plain build fails every N. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifdef SANITIZED
enum { LOAD_STRIDE = 16, STEP_SAVE_STRIDE = 4 };
#else
enum { LOAD_STRIDE = 1, STEP_SAVE_STRIDE = 1 };
#endif

static char dir[256];

static const char *file(const char *name)
{
    static char buf[2][512];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* The config and the dataset, read once by the test process: every child
 * inherits them. */
static fg_config *cfg;
static fg_dataset train_set;

typedef struct run {
    fg_model *model;
    fg_trainer tr;
    fg_batch_iter it;
    fg_model_batches b;
} run;

/* The model and trainer as flowgrad train builds them. */
static int run_open(run *r)
{
    memset(r, 0, sizeof *r);
    const fg_train_spec *t = &cfg->train;
    if (fg_model_build(&cfg->model, t->seed, &r->model) != FG_OK)
        return FG_ERR;
    fg_trainer_options o = fg_config_trainer_options(cfg, 0);
    fg_trainer_init(&r->tr, &r->model->state, &o);
    fg_batch_iter_init(&r->it, &train_set, t->batch, 1, 1, t->seed);
    fg_model_batches_init(&r->b, r->model, &train_set, t->batch, t->seed);
    return FG_OK;
}

static fg_var *loss(void *ctx, fg_graph *g, const fg_batch *b, double *bpd)
{
    return fg_model_batch_loss(&((run *)ctx)->b, g, b, bpd);
}

static int train_one_step(run *r)
{
    fg_train_hooks h = {.ctx = r, .loss = loss};
    fg_train_plan p = {.total_steps = r->tr.step + 1};
    return fg_train_run(&r->tr, &r->it, &p, &h, NULL);
}

/* The two checkpoint calls, in one place each. */
static int save_checkpoint(run *r, const char *path)
{
    fg_train_state s = {r->tr.step, r->it.epoch, r->it.pos, cfg->train.seed, 1.5};
    return fg_checkpoint_save(path, cfg, r->model, &r->tr, &s);
}

static int resume_checkpoint(run *r, const char *path)
{
    fg_train_state s;
    if (fg_checkpoint_resume(path, r->model, &r->tr, train_set.n, &s) != FG_OK)
        return FG_ERR;
    r->tr.step = s.step;
    fg_batch_iter_seek(&r->it, s.epoch, s.position);
    return FG_OK;
}

/* Allocations counted after each phase of the sequence. */
typedef struct counts { long load, step, save; } counts;

/* The sequence under test, in a child: never returns. Status 0 when all
 * went through, 1 after an FG_ERR (its message on stderr); a stop for want
 * of memory exits inside the library. */
static _Noreturn void resume_step_save(long fail_at, int counts_fd)
{
    run r;
    counts c;
    fg_alloc_fail_at(fail_at);
    int rc = run_open(&r);
    if (rc == FG_OK)
        rc = resume_checkpoint(&r, file("ckpt.safetensors"));
    c.load = fg_alloc_count();
    if (rc == FG_OK)
        rc = train_one_step(&r);
    c.step = fg_alloc_count();
    if (rc == FG_OK)
        rc = save_checkpoint(&r, file("ckpt.safetensors"));
    c.save = fg_alloc_count();
    if (rc != FG_OK) {
        fprintf(stderr, "error: %s\n", fg_last_error());
        _Exit(1);
    }
    if (counts_fd >= 0 && write(counts_fd, &c, sizeof c) != (ssize_t)sizeof c)
        _Exit(2);
    _Exit(0);
}

/* Loading a checkpoint for use (eval, sample): config from its metadata,
 * every check, the model built and loaded. */
static _Noreturn void load_for_use(long fail_at, int counts_fd)
{
    fg_checkpoint L;
    fg_alloc_fail_at(fail_at);
    int rc = fg_checkpoint_load(file("ckpt.safetensors"), -1, &L);
    counts c = {fg_alloc_count(), fg_alloc_count(), fg_alloc_count()};
    if (rc != FG_OK) {
        fprintf(stderr, "error: %s\n", fg_last_error());
        _Exit(1);
    }
    if (counts_fd >= 0 && write(counts_fd, &c, sizeof c) != (ssize_t)sizeof c)
        _Exit(2);
    _Exit(0);
}

/* A child's whole life: it exits, never returns. */
typedef void (*sequence)(long fail_at, int counts_fd);

/* Forks a sequence with its stderr in a file; returns the wait status. */
static int fork_sequence(sequence seq, long fail_at, int counts_fd)
{
    fflush(NULL);   /* no buffered output of ours is written twice */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(file("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 2) < 0)
            _Exit(4);
        close(fd);
        seq(fail_at, counts_fd);
        _Exit(5);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    ck_assert_ptr_nonnull(buf);
    for (size_t got; (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            ck_assert_ptr_nonnull(buf);
        }
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void put_file(const char *path, const char *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f && fwrite(bytes, 1, len, f) == len && fclose(f) == 0, "cannot write %s",
                  path);
}

/* Names in the folder that look like temporaries (".tmp." anywhere). */
static int temporaries(char *first, size_t n)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int k = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.") && k++ == 0)
            snprintf(first, n, "%s", e->d_name);
    closedir(d);
    return k;
}

static void remove_folder(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlink(file(e->d_name));
    closedir(d);
    rmdir(dir);
}

typedef struct bytes { char *s; size_t n; } bytes;

static int same(const bytes *a, const char *s, size_t n)
{
    return a->n == n && memcmp(a->s, s, n) == 0;
}

/* A run trained one step and checkpointed: the file every child resumes.
 * Made in a child of its own, so that the process every child is forked
 * from stays small (a fork copies its page tables: thousands of forks of a
 * process holding a model and BLIS's buffers cost seconds). */
static void make_old_checkpoint(void)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        run r;
        int rc = run_open(&r);
        if (rc == FG_OK)
            rc = train_one_step(&r);
        if (rc == FG_OK)
            rc = save_checkpoint(&r, file("ckpt.safetensors"));
        if (rc != FG_OK)
            fprintf(stderr, "%s\n", fg_last_error());
        _Exit(rc == FG_OK ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "no first checkpoint");
}

/* What a child that ran out of memory at its Nth allocation may have done:
 * the messages it may have left, the files it may have left. */
static void check_child(long n, int status, regex_t *stop, regex_t *refusal, const bytes *old,
                        const bytes *new)
{
    size_t len;
    char *err = slurp(file("stderr.txt"), &len);
    ck_assert_msg(!WIFSIGNALED(status), "allocation %ld: killed by signal %d; stderr: %s", n,
                  WIFSIGNALED(status) ? WTERMSIG(status) : 0, err);
    ck_assert(WIFEXITED(status));
    int code = WEXITSTATUS(status);
    if (code == FG_EXIT_OUT_OF_MEMORY)
        ck_assert_msg(regexec(stop, err, 0, NULL, 0) == 0,
                      "allocation %ld: status %d without the message; stderr: %s", n, code, err);
    else if (code == 1)
        ck_assert_msg(regexec(refusal, err, 0, NULL, 0) == 0,
                      "allocation %ld: an error that does not say what it could not "
                      "allocate: %s", n, err);
    else
        ck_assert_msg(0, "allocation %ld failed, yet the sequence ended with status %d; "
                      "stderr: %s", n, code, err);
    free(err);

    char *ck = slurp(file("ckpt.safetensors"), &len);
    ck_assert_msg(same(old, ck, len) || same(new, ck, len),
                  "allocation %ld: the checkpoint is neither the old file nor the new one "
                  "(%zu bytes)", n, len);
    if (!same(old, ck, len))
        put_file(file("ckpt.safetensors"), old->s, old->n);
    free(ck);
    char tmp[256];
    ck_assert_msg(temporaries(tmp, sizeof tmp) == 0, "allocation %ld left %s", n, tmp);
}

/* A folder with the first checkpoint; the config and dataset read. */
static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/fg-alloc-failure-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* One thread: the allocations come in the same order every time. */
    fg_set_threads(1);
    char path[512];
    ck_assert_int_eq(fg_config_load_file(fg_test_path("tests/configs/cli-tiny.yaml", path,
                                                      sizeof path), &cfg), FG_OK);
    ck_assert_int_eq(fg_config_load_split(cfg, 1, -1, &train_set), FG_OK);
    make_old_checkpoint();
}

static void teardown(void)
{
    fg_dataset_free(&train_set);
    fg_config_free(cfg);
    remove_folder();
}

/* A stop for want of memory, as fg_xmalloc and its kin print it, and a
 * reader's refusal, as the children print fg_last_error(). */
static void compile_patterns(regex_t *stop, regex_t *refusal)
{
    ck_assert_int_eq(regcomp(stop, "^flowgrad: out of memory \\((malloc|calloc|realloc|"
                                   "aligned_alloc)\\): cannot (allocate [0-9]+ (x [0-9]+ )?"
                                   "bytes for [[:alnum:]]|grow [[:alnum:]].* to [0-9]+ bytes)",
                             REG_EXTENDED | REG_NEWLINE), 0);
    ck_assert_int_eq(regcomp(refusal, "^error: .*cannot allocate [0-9]+ ",
                             REG_EXTENDED | REG_NEWLINE), 0);
}

/* How many allocations a sequence makes unarmed, by phase. */
static counts count_allocations(sequence seq)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    int status = fork_sequence(seq, 0, fds[1]);
    close(fds[1]);
    counts c;
    ck_assert_int_eq(read(fds[0], &c, sizeof c), (ssize_t)sizeof c);
    close(fds[0]);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the sequence fails unarmed");
    return c;
}

START_TEST(every_allocation_of_resume_step_save_fails_cleanly)
{
    setup();
    bytes old, new;
    old.s = slurp(file("ckpt.safetensors"), &old.n);

    /* The count, and the new checkpoint the sequence writes. */
    counts c = count_allocations(resume_step_save);
    int status;
    new.s = slurp(file("ckpt.safetensors"), &new.n);
    ck_assert_msg(!same(&old, new.s, new.n), "the step changed nothing");
    put_file(file("ckpt.safetensors"), old.s, old.n);
    printf("allocations: %ld to load, %ld in the step, %ld to save\n", c.load,
           c.step - c.load, c.save - c.step);
    ck_assert_int_gt(c.save, c.step);
    ck_assert_int_gt(c.step, c.load);

    regex_t stop, refusal;
    compile_patterns(&stop, &refusal);
    long stops = 0, refusals = 0;
    for (long n = 1; n <= c.save; n++) {
        if (n != c.load && n != c.step && n != c.save &&
            (n - 1) % (n <= c.load ? LOAD_STRIDE : STEP_SAVE_STRIDE) != 0)
            continue;
        status = fork_sequence(resume_step_save, n, -1);
        check_child(n, status, &stop, &refusal, &old, &new);
        if (WEXITSTATUS(status) == FG_EXIT_OUT_OF_MEMORY)
            stops++;
        else
            refusals++;
    }
    if (LOAD_STRIDE == 1 && STEP_SAVE_STRIDE == 1)
        printf("%ld stops, %ld refusals: every allocation failed once\n", stops, refusals);
    else
        printf("%ld stops, %ld refusals: every %d-th allocation of the load failed, every "
               "%d-th of the step and the save\n", stops, refusals, (int)LOAD_STRIDE,
               (int)STEP_SAVE_STRIDE);
    regfree(&stop);
    regfree(&refusal);

    /* A temporary of a writer that died is removed by the next save. */
    fflush(NULL);
    pid_t gone = fork();
    if (gone == 0)
        _Exit(0);
    ck_assert_int_eq(waitpid(gone, &status, 0), gone);
    char name[64];
    snprintf(name, sizeof name, "ckpt.safetensors.tmp.%ld", (long)gone);
    put_file(file(name), old.s, old.n / 2);
    status = fork_sequence(resume_step_save, 0, -1);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char tmp[256];
    ck_assert_msg(temporaries(tmp, sizeof tmp) == 0, "%s is left after a save", tmp);
    size_t len;
    char *ck = slurp(file("ckpt.safetensors"), &len);
    ck_assert(same(&new, ck, len));
    free(ck);
    /* The new checkpoint is a whole one: it loads, passes every check of
     * its values and is a step further than the old. (Loaded only now: a
     * model in this process would make every fork above slower.) */
    fg_checkpoint L;
    ck_assert_msg(fg_checkpoint_load(file("ckpt.safetensors"), -1, &L) == FG_OK, "%s",
                  fg_last_error());
    ck_assert_int_eq(fg_checkpoint_check_values(&L.st), FG_OK);
    ck_assert_int_eq(L.state.step, 2);
    fg_checkpoint_free(&L);
    free(old.s);
    free(new.s);
    teardown();
}
END_TEST

/* The same for fg_checkpoint_load, the path of eval and sample: a reader
 * of files from outside, where what a file sizes is a refusal. */
START_TEST(every_allocation_of_a_checkpoint_load_fails_cleanly)
{
    setup();
    bytes old;
    old.s = slurp(file("ckpt.safetensors"), &old.n);
    counts c = count_allocations(load_for_use);
    printf("allocations: %ld to load for use\n", c.load);
    regex_t stop, refusal;
    compile_patterns(&stop, &refusal);
    long stops = 0, refusals = 0;
    for (long n = 1; n <= c.load; n++) {
        if (n != c.load && (n - 1) % LOAD_STRIDE != 0)
            continue;
        int status = fork_sequence(load_for_use, n, -1);
        check_child(n, status, &stop, &refusal, &old, &old);
        if (WEXITSTATUS(status) == FG_EXIT_OUT_OF_MEMORY)
            stops++;
        else
            refusals++;
    }
    if (LOAD_STRIDE == 1)
        printf("%ld stops, %ld refusals: every allocation failed once\n", stops, refusals);
    else
        printf("%ld stops, %ld refusals: every %d-th allocation failed\n", stops, refusals,
               (int)LOAD_STRIDE);
    regfree(&stop);
    regfree(&refusal);
    free(old.s);
    teardown();
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("alloc_failure");
    TCase *tc = fg_tcase("resume_step_save");
    tcase_add_test(tc, every_allocation_of_resume_step_save_fails_cleanly);
    tcase_add_test(tc, every_allocation_of_a_checkpoint_load_fails_cleanly);
    suite_add_tcase(s, tc);
    return s;
}
