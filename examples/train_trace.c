/* FLOWGRAD_TRACE: see train_trace.h. */
#include "examples/train_trace.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static FILE *out;
static long step;
static int index_of_logdet, index_of_prior;

static void row(const char *what, int index, const float *x, size_t n)
{
    double sum = 0, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        sum += x[i];
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    fprintf(out, "%ld,%d,%s,%.6g,%.6g,%.6g\n", step, index, what, n ? sum / (double)n : 0, lo,
            hi);
}

static void observe(void *ctx, const char *what, const fg_var *v)
{
    (void)ctx;
    /* Every layer adds one term in forward order, so the count is its
     * position; priors are numbered on their own. */
    int index = !strcmp(what, "logdet") ? index_of_logdet++
                : !strcmp(what, "prior.logp") ? index_of_prior++ : index_of_prior;
    row(what, index, v->t.data, fg_numel(&v->t));
}

int trace_start(void)
{
    const char *path = getenv("FLOWGRAD_TRACE");
    if (!path || !*path)
        return FG_OK;
    if (!(out = fopen(path, "w")))
        return fg_error("FLOWGRAD_TRACE=%s: cannot open for writing", path);
    fprintf(out, "step,index,what,mean,min,max\n");
    fg_flow_set_observer(observe, NULL);
    return FG_OK;
}

int trace_active(void)
{
    return out != NULL;
}

void trace_set_step(long s)
{
    if (!out)
        return;
    step = s;
    index_of_logdet = index_of_prior = 0;
}

/* "flow.3.coupling.nn.0.weight" -> "flow.3.coupling": a layer's state. */
static size_t group_len(const char *name)
{
    const char *p = name;
    for (int dots = 0; *p; p++)
        if (*p == '.' && ++dots == 3)
            break;
    return (size_t)(p - name);
}

void trace_groups(const fg_state_list *l)
{
    if (!out)
        return;
    for (int i = 0; i < l->n;) {
        size_t len = group_len(l->items[i].name);
        double sq = 0, big = 0;
        int j = i;
        for (; j < l->n && group_len(l->items[j].name) == len &&
               !strncmp(l->items[j].name, l->items[i].name, len); j++) {
            const fg_var *v = l->items[j].var;
            if (l->items[j].kind != FG_PARAM)
                continue;
            size_t n = fg_numel(&v->t);
            for (size_t k = 0; k < n; k++) {
                if (v->grad)
                    sq += (double)v->grad[k] * v->grad[k];
                big = fabs(v->t.data[k]) > big ? fabs(v->t.data[k]) : big;
            }
        }
        fprintf(out, "%ld,%d,grad:%.*s,%.6g,,\n", step, i, (int)len, l->items[i].name, sqrt(sq));
        fprintf(out, "%ld,%d,value:%.*s,%.6g,,\n", step, i, (int)len, l->items[i].name, big);
        i = j;
    }
}

void trace_inspect_gradients(void *ctx, const fg_state_list *l)
{
    (void)ctx;
    trace_groups(l);
}

void trace_stop(void)
{
    if (out)
        fclose(out);
    out = NULL;
    fg_flow_set_observer(NULL, NULL);
}

long trace_inject_step(void)
{
    const char *v = getenv("FLOWGRAD_INJECT_OUTLIER");
    return v ? strtol(v, NULL, 10) : 0;
}

long trace_stop_after(void)
{
    const char *v = getenv("FLOWGRAD_STOP_AFTER");
    return v ? strtol(v, NULL, 10) : 0;
}
