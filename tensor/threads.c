/* One thread count for BLIS and OpenMP, so the two never oversubscribe. */
#include "tensor/tensor.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <omp.h>
#include <blis.h>

static int thread_count;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void apply(int n)
{
    thread_count = n;
    omp_set_num_threads(n);
    bli_thread_set_num_threads(n);
}

/* A bad FLOWGRAD_THREADS value falls back to the core count rather than
 * aborting: it is a tuning knob, not data. */
static void read_env(void)
{
    long n = 0;
    const char *s = getenv("FLOWGRAD_THREADS");
    if (s && *s) {
        char *end;
        n = strtol(s, &end, 10);
        if (*end != '\0' || n < 1 || n > 4096)
            n = 0;
    }
    if (n == 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        if (n < 1)
            n = 1;
    }
    apply((int)n);
}

/* Apply FLOWGRAD_THREADS when the library is loaded: kernels and BLIS read
 * their thread counts without asking us, so waiting for the first
 * fg_get_threads call could leave the setting unapplied. omp_set_num_threads
 * sets the count of the calling (here: the initial) thread; threads created
 * later by the application start from OpenMP's own default. */
__attribute__((constructor)) static void init_threads(void)
{
    pthread_once(&env_once, read_env);
}

void fg_set_threads(int n)
{
    pthread_once(&env_once, read_env);
    apply(n < 1 ? 1 : n);
}

int fg_get_threads(void)
{
    pthread_once(&env_once, read_env);
    return thread_count;
}
