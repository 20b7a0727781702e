/* Warnings about weights that still work but lose precision (see
 * models/model.h). */
#include "models/model.h"

#include <stdio.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int fg_state_report_ill_conditioned(const fg_state_list *l, double limit, long step)
{
    int reported = 0;
    for (int i = 0; i < l->n; i++) {
        const fg_state_entry *e = &l->items[i];
        const fg_tensor *t = &e->var->t;
        if (!ends_with(e->name, "invconv.weight") || t->ndim != 2 || t->shape[0] != t->shape[1])
            continue;
        double c = fg_mat_condition_1(t->shape[0], t->data);
        if (c > limit) {
            fprintf(stderr, "warning: step %ld: %s is ill-conditioned (condition number "
                    "%.3g > %.0g); its inverse loses precision. Consider lu: true or a lower "
                    "lr\n", step, e->name, c, limit);
            reported++;
        }
    }
    return reported;
}
