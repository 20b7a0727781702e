/* The IDX (MNIST-family) reader, plain or gzip, on arbitrary bytes. The
 * first two bytes choose where the input splits into the images file and
 * the labels file. */
#include "nn/io.h"
#include "tests/fuzz/fuzz_mem.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t rest = size - 2, cut = ((size_t)data[0] | (size_t)data[1] << 8);
    if (cut > rest)
        cut = rest;
    char img[64], lab[64];
    int fi = fuzz_mem_file(data + 2, cut, img, sizeof img);
    int fl = fuzz_mem_file(data + 2 + cut, rest - cut, lab, sizeof lab);
    if (fi >= 0 && fl >= 0) {
        fg_dataset d;
        if (fg_dataset_load_idx(&d, img, lab) == FG_OK) {
            if (d.n < 1 || d.c != 1)
                __builtin_trap();
            fg_dataset_free(&d);
        }
    }
    if (fi >= 0)
        close(fi);
    if (fl >= 0)
        close(fl);
    return 0;
}
