/* The library as another project uses it: `make install` into a temporary
 * DESTDIR, then examples/library_flow.c compiled with nothing but what
 * `pkg-config --cflags --libs flowgrad` says (relocated to that DESTDIR
 * with --define-prefix) and run against the installed shared library. It
 * builds a flow conditioned on a continuous variable, trains it with the
 * library trainer, saves, reloads and samples it, and exits 0 only when all
 * of that held. */
#include "check_main.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* The first line of a file, without its newline. */
static void first_line(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: missing", path);
    if (!fgets(out, (int)n, f))
        out[0] = 0;
    out[strcspn(out, "\n")] = 0;
    fclose(f);
}

START_TEST(installed_library_builds_a_program)
{
    fg_test_scratch_dir("install", tmpdir, sizeof tmpdir);
    const char *src = getenv("srcdir") ? getenv("srcdir") : ".";
    ck_assert_msg(sh("make -s install DESTDIR=%s/root >%s/install.log 2>&1", tmpdir, tmpdir) == 0,
                  "make install failed: see %s/install.log", tmpdir);
    /* Wherever the configured prefix put it. */
    char pcdir[1024], flags[2048], libdir[1024];
    ck_assert_int_eq(sh("dirname $(find %s/root -name flowgrad.pc | head -n 1) >%s/pcdir",
                        tmpdir, tmpdir), 0);
    first_line(strcat(strcpy(pcdir, tmpdir), "/pcdir"), pcdir, sizeof pcdir);
    ck_assert_int_eq(sh("PKG_CONFIG_PATH=%s pkg-config --define-prefix --cflags --libs flowgrad "
                        ">%s/flags && PKG_CONFIG_PATH=%s pkg-config --define-prefix "
                        "--variable=libdir flowgrad >%s/libdir", pcdir, tmpdir, pcdir, tmpdir),
                     0);
    char path[512];
    snprintf(path, sizeof path, "%s/flags", tmpdir);
    first_line(path, flags, sizeof flags);
    snprintf(path, sizeof path, "%s/libdir", tmpdir);
    first_line(path, libdir, sizeof libdir);
    ck_assert_msg(strstr(flags, tmpdir) != NULL, "pkg-config flags not under DESTDIR: %s", flags);
    /* Only the installed headers and library: no -I into this tree (and,
     * in a --enable-sanitizers build, the sanitizers the library has). */
    ck_assert_msg(sh("cc -std=c11 -Wall -Wextra -Werror %s %s/examples/library_flow.c %s "
                     "-o %s/library_flow >%s/cc.log 2>&1", FG_SANITIZER_FLAGS, src, flags,
                     tmpdir, tmpdir) == 0,
                  "compiling examples/library_flow.c with '%s' failed: see %s/cc.log", flags,
                  tmpdir);
    ck_assert_msg(sh("LD_LIBRARY_PATH=%s FLOWGRAD_THREADS=1 %s/library_flow %s/flow.safetensors "
                     ">%s/run.log 2>&1", libdir, tmpdir, tmpdir, tmpdir) == 0,
                  "library_flow failed: see %s/run.log", tmpdir);
    /* It ran against the installed copy, not this tree's. */
    ck_assert_int_eq(sh("LD_LIBRARY_PATH=%s ldd %s/library_flow | grep -q '%s/.*libflowgrad'",
                        libdir, tmpdir, tmpdir), 0);
    ck_assert_int_eq(sh("rm -rf %s", tmpdir), 0);
}
END_TEST

Suite *fg_test_suite(void)
{
    Suite *s = suite_create("install");
    TCase *tc = fg_tcase("install");
    tcase_add_test(tc, installed_library_builds_a_program);
    suite_add_tcase(s, tc);
    return s;
}
