/* The safetensors checkpoint parser on arbitrary bytes, and the accessors
 * a checkpoint loader calls on whatever it accepted. */
#include "nn/io.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fg_safetensors st;
    fg_st_init(&st);
    if (fg_st_parse(&st, data, size, "fuzz.safetensors") == FG_OK) {
        int64_t s[4];
        fg_st_get_i64(&st, "train.state", s, 4);
        fg_st_get_meta(&st, "config");
        for (int i = 0; i < st.n; i++) {
            /* Every accepted tensor's bytes must be readable in full. */
            volatile unsigned char sum = 0;
            const unsigned char *p = st.t[i].data;
            for (size_t k = 0; k < st.t[i].nbytes; k++)
                sum ^= p[k];
        }
    }
    fg_st_free(&st);
    return 0;
}
