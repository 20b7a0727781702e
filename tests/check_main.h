/* Shared main() for the Check suites: each test program defines
 * Suite *fg_test_suite(void) and includes this file once. */
#ifndef FLOWGRAD_CHECK_MAIN_H
#define FLOWGRAD_CHECK_MAIN_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

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

int main(void)
{
    SRunner *sr = srunner_create(fg_test_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
