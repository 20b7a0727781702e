/* Shared by the fuzz targets: readers that take a path get the fuzz input
 * through an anonymous in-memory file. */
#ifndef FLOWGRAD_FUZZ_MEM_H
#define FLOWGRAD_FUZZ_MEM_H

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes data to a fresh memfd and puts its /proc path in path; returns
 * the descriptor (close it after use) or -1. */
static inline int fuzz_mem_file(const unsigned char *data, size_t size, char *path, size_t n)
{
    int fd = memfd_create("fuzz", 0);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    snprintf(path, n, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
