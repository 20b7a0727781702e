/* Stop requests by signal and weight-health checks for flowgrad train. */
#include "examples/train_guard.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    if (stop_signal) {
        /* Asked twice: the user means it now. */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_signal = sig;
}

void guard_catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    /* SA_RESTART: a write to the checkpoint interrupted by the signal goes on. */
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int guard_stop_signal(void)
{
    return (int)stop_signal;
}

int guard_stop_status(int sig)
{
    return 128 + sig;
}

static double norm_1(int n, const double *a)
{
    double best = 0;
    for (int j = 0; j < n; j++) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += fabs(a[(size_t)i * n + j]);
        if (s > best)
            best = s;
    }
    return best;
}

double guard_condition_1(int n, const float *w)
{
    size_t nn = (size_t)n * n;
    double *a = fg_xmalloc(2 * nn * sizeof *a, "condition estimate");
    double *inv = a + nn;
    for (size_t i = 0; i < nn; i++)
        a[i] = w[i];
    double cond = INFINITY;
    /* The inverse goes through the LU in double; a singular W reports an
     * error we do not want to keep, since singular is the answer here. */
    char saved[512];
    snprintf(saved, sizeof saved, "%s", fg_last_error());
    if (fg_mat_inverse(n, a, inv) == FG_OK) {
        double c = norm_1(n, a) * norm_1(n, inv);
        if (isfinite(c))
            cond = c;
    } else {
        fg_error("%s", saved);
    }
    free(a);
    return cond;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int guard_report_ill_conditioned(const fg_state_list *l, double limit, long step)
{
    int reported = 0;
    for (int i = 0; i < l->n; i++) {
        const fg_state_entry *e = &l->items[i];
        const fg_tensor *t = &e->var->t;
        if (!ends_with(e->name, "invconv.weight") || t->ndim != 2 || t->shape[0] != t->shape[1])
            continue;
        double c = guard_condition_1(t->shape[0], t->data);
        if (c > limit) {
            fprintf(stderr, "warning: step %ld: %s is ill-conditioned (condition number "
                    "%.3g > %.0g); its inverse loses precision. Consider lu: true or a lower "
                    "lr\n", step, e->name, c, limit);
            reported++;
        }
    }
    return reported;
}
