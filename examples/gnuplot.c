/* Running gnuplot on a generated script (see gnuplot.h). */
#include "examples/gnuplot.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void gnuplot_put_terminal(FILE *f, int width, int height)
{
    /* pngcairo antialiases and blends transparent fills; libgd's png (a
     * gnuplot built without cairo) paints them. */
    fprintf(f, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
            "  set terminal pngcairo size %d,%d\n} else {\n  set terminal png size %d,%d\n}\n"
            "set termoption noenhanced\n", width, height, width, height);
    /* noenhanced: titles are file and data set names, whose underscores
     * are not subscripts. */
}

void gnuplot_put_string(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

/* gnuplot may run in another folder: the temporary's absolute path. */
static char *absolute(const char *path)
{
    char cwd[4096];
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd))
        cwd[0] = '\0';
    size_t n = strlen(cwd) + strlen(path) + 2;
    char *out = fg_xmalloc(n, "path");
    snprintf(out, n, "%s%s%s", cwd, cwd[0] ? "/" : "", path);
    return out;
}

/* The whole script, terminal and output first. */
static char *script_text(const char *out, const char *body, int width, int height, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        fg_fatal("gnuplot script", "out of memory");
    gnuplot_put_terminal(f, width, height);
    fputs("set output ", f);
    gnuplot_put_string(f, out);
    fprintf(f, "\n%s\nunset output\n", body);
    fclose(f);
    return text;
}

/* Feeds text to program's standard input in dir; its exit status as
 * waitpid gives it, or -1 with errno. */
static int run_on_stdin(const char *program, const char *dir, const char *text, size_t len)
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fd[0]);
        close(fd[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        dup2(fd[0], 0);
        close(fd[0]);
        close(fd[1]);
        if (dir && chdir(dir) != 0)
            _exit(126);
        execlp(program, program, (char *)NULL);
        _exit(errno == ENOENT ? 127 : 126);
    }
    close(fd[0]);
    /* A gnuplot that stops early (or is missing) closes the pipe: that is
     * its exit status to report, not a signal to die of. */
    struct sigaction ignore = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &old);
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd[1], text + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    close(fd[1]);
    sigaction(SIGPIPE, &old, NULL);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

static int is_png(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    int ok = fread(head, 1, 8, f) == 8 && !memcmp(head, sig, 8);
    fclose(f);
    return ok;
}

int gnuplot_draw(const char *png, const char *body, int width, int height, const char *dir,
                 int *missing)
{
    if (missing)
        *missing = 0;
    fg_atomic_file a;
    if (fg_atomic_open(&a, png) != FG_OK)
        return FG_ERR;
    /* GNUPLOT names another program (or a copy outside PATH). */
    const char *program = getenv("GNUPLOT") && *getenv("GNUPLOT") ? getenv("GNUPLOT")
                                                                   : "gnuplot";
    char *out = absolute(a.tmp);
    size_t len;
    char *text = script_text(out, body, width, height, &len);
    int status = run_on_stdin(program, dir, text, len);
    int e = errno;
    free(text);
    int rc = FG_ERR;
    if (status < 0)
        fg_error("%s: cannot run %s: %s", png, program, strerror(e));
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        if (missing)
            *missing = 1;
        fg_error("%s not drawn: '%s' not found; install gnuplot ('apt-get install "
                 "gnuplot-nox') and rerun", png, program);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fg_error("%s not drawn: %s failed (its messages are above)", png, program);
    else if (!is_png(out))
        fg_error("%s not drawn: %s wrote no PNG", png, program);
    else
        rc = FG_OK;
    free(out);
    if (rc != FG_OK) {
        fg_atomic_abort(&a);
        return FG_ERR;
    }
    return fg_atomic_commit(&a);
}
