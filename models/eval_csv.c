/* The per-image table of an evaluation (see models/eval.h). */
#include "models/eval.h"

#include <string.h>

/* A name as one CSV field: quoted, with quotes doubled, when it holds a
 * comma, a quote or a line break. */
static void put_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int fg_eval_write_csv(const char *path, const fg_dataset *d, int first, int count,
                      const double *bpd, const char *const *names)
{
    FG_CHECK(first >= 0 && count >= 0 && first + count <= d->n, "fg_eval_write_csv",
             "images [%d, %d) of %d", first, first + count, d->n);
    fg_atomic_file a;
    if (fg_atomic_open(&a, path) != FG_OK)
        return FG_ERR;
    fprintf(a.f, "%s,label,bits_per_dim\n", names ? "file" : "index");
    for (int i = first; i < first + count; i++) {
        if (names)
            put_field(a.f, names[i]);
        else
            fprintf(a.f, "%d", i);
        /* A diverged image is a result too: written as nan or inf. */
        fprintf(a.f, ",%d,%.6f\n", d->labels[i], bpd[i - first]);
    }
    return fg_atomic_commit(&a);
}
