/* The median and the worst image of an evaluation (models/eval.h). */
#include "models/eval.h"

#include <math.h>
#include <stdlib.h>

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void fg_bpd_summarize(const double *bpd, int n, fg_bpd_summary *out)
{
    *out = (fg_bpd_summary){.n = n, .worst = -1, .mean = NAN, .median = NAN,
                            .worst_bpd = NAN, .mean_without_worst = NAN};
    if (n <= 0)
        return;
    double sum = 0.0;
    int worst = 0;
    for (int i = 0; i < n; i++) {
        sum += bpd[i];
        /* The first NaN, else the first of the highest. */
        if (!isnan(bpd[worst]) && (isnan(bpd[i]) || bpd[i] > bpd[worst]))
            worst = i;
    }
    out->mean = sum / n;
    out->worst = worst;
    out->worst_bpd = bpd[worst];
    if (n == 1) {
        out->median = out->mean_without_worst = bpd[0];
        return;
    }
    /* Summed again without it rather than subtracted: sum - worst loses
     * every digit of the others when the worst is in the millions. */
    double rest = 0.0;
    for (int i = 0; i < n; i++)
        if (i != worst)
            rest += bpd[i];
    out->mean_without_worst = rest / (n - 1);
    double *sorted = fg_xmalloc((size_t)n * sizeof *sorted, "bits/dim median");
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(bpd[i]))
            sorted[m++] = bpd[i];
    if (m > 0) {
        qsort(sorted, (size_t)m, sizeof *sorted, by_value);
        out->median = m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]);
    }
    free(sorted);
}

int fg_bpd_summary_dominated(const fg_bpd_summary *s, double limit)
{
    if (s->n < 2)
        return 0;
    if (!isfinite(s->worst_bpd))
        return 1;
    return fabs(s->mean - s->mean_without_worst) > limit;
}
