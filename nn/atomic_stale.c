/* Temporaries that writers killed mid-write left behind. An atomic write
 * goes to PATH.tmp.<pid> and renames it into place; a SIGKILL (or a power
 * cut) between the two leaves the temporary, as large as the file it was
 * meant to become. The next write into the same folder removes every such
 * file whose writer is gone. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "nn/io.h"

/* The writer's pid when name is "<something>.tmp.<pid>", else 0. */
static long tmp_pid(const char *name)
{
    const char *t = strstr(name, ".tmp.");
    if (!t || t == name)
        return 0;
    for (const char *next; (next = strstr(t + 1, ".tmp.")); )
        t = next;
    const char *d = t + 5;
    if (!*d || strlen(d) > 9)
        return 0;
    long pid = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9')
            return 0;
        pid = pid * 10 + (*d - '0');
    }
    return pid;
}

/* Gone for sure: kill(pid, 0) says there is no such process. A pid alive
 * but not ours (EPERM) may still be writing. */
static int writer_gone(long pid)
{
    return pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int fg_atomic_remove_stale(const char *path)
{
    size_t n = strlen(path);
    char *dir = fg_xmalloc(n + 2, "folder of an atomic write");
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    DIR *d = opendir(dir);
    int removed = 0;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            long pid = tmp_pid(e->d_name);
            if (!pid)
                continue;
            size_t len = strlen(dir) + strlen(e->d_name) + 2;
            char *p = fg_xmalloc(len, "temporary file path");
            snprintf(p, len, "%s/%s", dir, e->d_name);
            /* Only our own regular files; never follow a link. */
            struct stat sb;
            if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == geteuid() &&
                writer_gone(pid) && unlink(p) == 0)
                removed++;
            free(p);
        }
        closedir(d);
    }
    free(dir);
    return removed;
}
