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

static _Thread_local int serial_depth;

int fg_serial_begin(void)
{
    int saved = omp_get_max_threads();
    serial_depth++;
    omp_set_num_threads(1);
    return saved;
}

void fg_serial_end(int saved)
{
    if (serial_depth > 0)
        serial_depth--;
    omp_set_num_threads(saved);
}

int fg_in_serial(void)
{
    return serial_depth > 0 || omp_in_parallel();
}

/* libgomp's threads spin for a while at every barrier and between parallel
 * regions before they sleep (GOMP_SPINCOUNT, 300,000 by default). On a
 * quiet machine that saves a wake-up; on a busy one the spinning thread
 * holds a core that the thread it waits for needs, and each barrier can
 * cost a scheduler time slice. With two other processes busy on the two
 * cores, a two-thread training step ran 4x slower than with short spins
 * and sampling 8 images 6x slower (BENCHMARKS.md, "Busy machines").
 * libgomp itself spins only 100 to 1000 times when it can see that its
 * threads outnumber the cores; other processes' threads it cannot see. */
#define SHORT_SPIN "1000"

void fg_short_spin_waits(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return;
    if (setenv("GOMP_SPINCOUNT", SHORT_SPIN, 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* Still here: this process runs on with libgomp's default. */
}
