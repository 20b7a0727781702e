/* Crash-safe file replacement: the new content is complete on disk before
 * it takes the old file's name, so a reader (or a crash) sees the old file
 * or the new one, never a mixture. Only a regular file is ever replaced: a
 * device, fifo or directory at the path is refused, since renaming over it
 * would destroy it (--out /dev/null run as root). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "nn/io.h"

static const char *file_type(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISFIFO(m)) return "a fifo";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(fg_xmalloc(n, "path"), s, n);
}

int fg_atomic_open(fg_atomic_file *a, const char *path)
{
    /* stat follows links: /dev/stdout names a terminal or a pipe. */
    struct stat sb;
    a->f = NULL;
    a->path = a->tmp = NULL;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return fg_error("%s: exists and is %s; only a regular file is replaced: name a new "
                        "file or remove it first", path, file_type(sb.st_mode));
    fg_atomic_remove_stale(path);
    size_t n = strlen(path) + 32;
    a->path = dup_str(path);
    a->tmp = fg_xmalloc(n, "path");
    snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int e = errno;
        free(a->path);
        free(a->tmp);
        a->path = a->tmp = NULL;
        return fg_error("%s: cannot create temporary file: %s", path, strerror(e));
    }
    return FG_OK;
}

void fg_atomic_abort(fg_atomic_file *a)
{
    if (a->f)
        fclose(a->f);
    if (a->tmp)
        remove(a->tmp);
    free(a->path);
    free(a->tmp);
    a->f = NULL;
    a->path = a->tmp = NULL;
}

/* Makes the rename itself durable. Some file systems refuse fsync on a
 * directory (EINVAL); the data is already safe then, so that is no error. */
static int sync_parent_dir(const char *path)
{
    char *dir = dup_str(path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY);
    int rc = 0;
    if (fd >= 0) {
        if (fsync(fd) != 0 && errno != EINVAL)
            rc = -1;
        close(fd);
    }
    free(dir);
    return rc;
}

int fg_atomic_commit(fg_atomic_file *a)
{
    int e = 0;
    if (ferror(a->f) || fflush(a->f) != 0 || fsync(fileno(a->f)) != 0)
        e = errno ? errno : EIO;
    if (fclose(a->f) != 0 && !e)
        e = errno ? errno : EIO;
    a->f = NULL;
    if (e) {
        fg_error("%s: write failed: %s (previous file left untouched)", a->path, strerror(e));
        fg_atomic_abort(a);
        return FG_ERR;
    }
    if (rename(a->tmp, a->path) != 0) {
        e = errno;
        fg_error("%s: cannot rename temporary file into place: %s", a->path, strerror(e));
        fg_atomic_abort(a);
        return FG_ERR;
    }
    int rc = sync_parent_dir(a->path) == 0 ? FG_OK
             : fg_error("%s: written, but syncing its directory failed", a->path);
    free(a->path);
    free(a->tmp);
    a->path = a->tmp = NULL;
    return rc;
}
