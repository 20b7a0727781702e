/* Opt-in time profile (environment FLOWGRAD_PROFILE=1): named counters of
 * seconds and calls, printed to stderr at exit. Off, a timer costs one
 * branch; on, two clock reads and a short locked update. */
#include "tensor/tensor.h"
#include <pthread.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_COUNTERS 128

typedef struct counter {
    const char *name;   /* static strings: compared by address, then text */
    double seconds;
    long calls;
} counter;

static counter counters[MAX_COUNTERS];
static int n_counters;
static int enabled = -1;
static double started;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void report_at_exit(void) { fg_profile_report(stderr); }

static void init(void)
{
    const char *e = getenv("FLOWGRAD_PROFILE");
    enabled = e && *e && strcmp(e, "0") != 0;
    if (enabled) {
        started = fg_profile_now();
        atexit(report_at_exit);
    }
}

int fg_profile_enabled(void)
{
    if (enabled < 0) pthread_once(&once, init);
    return enabled;
}

double fg_profile_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void fg_profile_add(const char *name, double seconds)
{
    pthread_mutex_lock(&lock);
    int i = 0;
    while (i < n_counters && counters[i].name != name && strcmp(counters[i].name, name) != 0) i++;
    if (i == n_counters && n_counters < MAX_COUNTERS) counters[n_counters++].name = name;
    if (i < n_counters) {
        counters[i].seconds += seconds;
        counters[i].calls++;
    }
    pthread_mutex_unlock(&lock);
}

void fg_profile_add_shared(const char *name, double seconds)
{
    /* Teams inside teams: the threads side by side are the product of
     * the team sizes at every level. */
    int side_by_side = 1;
    for (int level = omp_get_level(); level > 0; level--)
        side_by_side *= omp_get_team_size(level);
    fg_profile_add(name, seconds / side_by_side);
}

double fg_profile_seconds(const char *name)
{
    double s = 0.0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n_counters; i++)
        if (strcmp(counters[i].name, name) == 0) s = counters[i].seconds;
    pthread_mutex_unlock(&lock);
    return s;
}

static int by_time(const void *a, const void *b)
{
    double x = ((const counter *)a)->seconds, y = ((const counter *)b)->seconds;
    return (x < y) - (x > y);
}

static void totals_of(const counter *c, int n, fg_profile_totals *t)
{
    /* Kernel counters (gemm, im2col, col2im) run inside op counters; the
     * categories separate them so that nothing is counted twice. */
    double kernels = 0.0;
    *t = (fg_profile_totals){0};
    for (int i = 0; i < n; i++) {
        const char *s = c[i].name;
        if (strncmp(s, "kernel:", 7) == 0) kernels += c[i].seconds;
        else if (strncmp(s, "op:", 3) == 0) t->ops += c[i].seconds;
        else if (strncmp(s, "optimizer", 9) == 0) t->optimizer += c[i].seconds;
        if (strcmp(s, "kernel:gemm") == 0) t->gemm += c[i].seconds;
        if (strcmp(s, "kernel:im2col") == 0 || strcmp(s, "kernel:col2im") == 0)
            t->columns += c[i].seconds;
    }
    t->other_ops = t->ops > kernels ? t->ops - kernels : 0.0;
}

void fg_profile_get_totals(fg_profile_totals *t)
{
    pthread_mutex_lock(&lock);
    totals_of(counters, n_counters, t);
    pthread_mutex_unlock(&lock);
}

void fg_profile_report(FILE *f)
{
    if (!fg_profile_enabled()) return;
    pthread_mutex_lock(&lock);
    counter sorted[MAX_COUNTERS];
    int n = n_counters;
    memcpy(sorted, counters, (size_t)n * sizeof *sorted);
    pthread_mutex_unlock(&lock);
    qsort(sorted, (size_t)n, sizeof *sorted, by_time);
    double wall = fg_profile_now() - started;
    fg_profile_totals t;
    totals_of(sorted, n, &t);
    fprintf(f, "\nflowgrad profile: %.2f s since start\n", wall);
    fprintf(f, "%-40s %10s %8s %10s\n", "counter", "seconds", "share", "calls");
    for (int i = 0; i < n; i++)
        fprintf(f, "%-40s %10.3f %7.1f%% %10ld\n", sorted[i].name, sorted[i].seconds,
                100.0 * sorted[i].seconds / wall, sorted[i].calls);
    fprintf(f, "shares of the run: GEMM %.1f%%, im2col/col2im %.1f%%, other op work "
               "(elementwise, reductions, layout) %.1f%%, optimizer %.1f%%, outside ops %.1f%%\n",
            100 * t.gemm / wall, 100 * t.columns / wall, 100 * t.other_ops / wall,
            100 * t.optimizer / wall, 100 * (wall - t.ops - t.optimizer) / wall);
}
