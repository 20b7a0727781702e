/* Shared main() for the Check suites: each test program defines
 * Suite *fg_test_suite(void) and includes this file once. */
#ifndef FLOWGRAD_CHECK_MAIN_H
#define FLOWGRAD_CHECK_MAIN_H

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Suite *fg_test_suite(void);

/* Generous per-case limit: the sanitizer build runs several times slower. */
static inline TCase *fg_tcase(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 600);
    return tc;
}

/* Path of a file under the source tree's tests/ folder (VPATH and distcheck
 * builds run tests from another directory). */
static inline const char *fg_test_path(const char *rel, char *buf, size_t n)
{
    const char *src = getenv("srcdir");
    snprintf(buf, n, "%s/%s", src ? src : ".", rel);
    return buf;
}

/* Whether s ends with suffix (state names by their last parts). */
static inline int fg_test_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Scratch folders made by fg_test_scratch_dir in this process. */
static struct {
    char path[256];
    pid_t owner;
} fg_scratch[64];
static int fg_scratch_count;

static int fg_scratch_remove_entry(const char *path, const struct stat *sb, int type,
                                   struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    remove(path);
    return 0;
}

static void fg_scratch_remove_all(void)
{
    if (getenv("FLOWGRAD_KEEP_TEST_DIRS"))
        return;
    for (int i = 0; i < fg_scratch_count; i++)
        /* A forked test inherits its parent's list; only the maker removes. */
        if (fg_scratch[i].owner == getpid())
            nftw(fg_scratch[i].path, fg_scratch_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh folder for one test, "$TMPDIR/flowgrad-test-NAME.XXXXXX", into
 * buf. mkdtemp, not the pid, names it: pids repeat between runs in a fresh
 * container, and a folder an earlier run left behind must never be mistaken
 * for this one. It is removed with its contents when the process that made
 * it exits (Check ends each forked case with exit); set
 * FLOWGRAD_KEEP_TEST_DIRS to keep them for a look after a failure. */
static inline const char *fg_test_scratch_dir(const char *name, char *buf, size_t n)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, n, "%s/flowgrad-test-%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    ck_assert_msg(mkdtemp(buf) != NULL, "cannot make a scratch folder %s", buf);
    if (fg_scratch_count == 0)
        atexit(fg_scratch_remove_all);
    if (fg_scratch_count < (int)(sizeof fg_scratch / sizeof *fg_scratch)) {
        snprintf(fg_scratch[fg_scratch_count].path, sizeof fg_scratch[0].path, "%s", buf);
        fg_scratch[fg_scratch_count++].owner = getpid();
    }
    return buf;
}

int main(void)
{
    SRunner *sr = srunner_create(fg_test_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
