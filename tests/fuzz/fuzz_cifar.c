/* The CIFAR-10 binary reader on arbitrary bytes (one batch file). */
#include "nn/io.h"
#include "tests/fuzz/fuzz_mem.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_mem_file(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    const char *paths[1] = {path};
    fg_dataset d;
    if (fg_dataset_load_cifar10_files(&d, paths, 1) == FG_OK) {
        for (int i = 0; i < d.n; i++)
            if (d.labels[i] >= 10)
                __builtin_trap(); /* labels are checked on load */
        fg_dataset_free(&d);
    }
    close(fd);
    return 0;
}
