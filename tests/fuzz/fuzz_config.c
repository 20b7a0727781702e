/* The YAML loader and validator on arbitrary text: every input is either a
 * config or an error with a message, within bounded time and memory. */
#include "models/config.h"
#include "tensor/tensor.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fg_config *cfg = NULL;
    int rc = fg_config_load_string((const char *)data, size, "fuzz.yaml", &cfg);
    if (rc == FG_OK) {
        if (!cfg)
            __builtin_trap();
        fg_config_free(cfg);
    } else if (cfg || fg_last_error()[0] == '\0') {
        __builtin_trap(); /* an error must say what was wrong */
    }
    return 0;
}
