/* Dotted names for module state: "flow.3" + "weight" -> "flow.3.weight". */
#include <stdio.h>
#include <string.h>
#include "nn/nn.h"

const char *fg_name_join(char *buf, size_t n, const char *prefix, const char *name)
{
    int len;
    if (!prefix || !prefix[0])
        len = snprintf(buf, n, "%s", name);
    else
        len = snprintf(buf, n, "%s.%s", prefix, name);
    /* A truncated name could collide with another; names are ours, so fatal. */
    FG_CHECK(len >= 0 && (size_t)len < n, "fg_name_join",
             "name '%s.%s' longer than %zu bytes", prefix ? prefix : "", name, n - 1);
    return buf;
}
