/* Data parallelism over MPI, and its one-process stand-in when the library is
 * built without MPI or the program was not started by an MPI launcher.
 *
 * MPI starts only when a launcher's environment is present, so a plain
 * `flowgrad train` on a library built with MPI never pays for (or depends on)
 * a singleton MPI start-up. Only the calling thread talks to MPI; OpenMP and
 * BLIS threads stay inside each rank's compute. */
#include "nn/distributed.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#ifdef HAVE_MPI
#include <mpi.h>
#endif

static int rank_, size_ = 1, started;

/* OpenMPI's mpirun (OMPI_*), PMIx launchers (PMIX_RANK) and MPICH's Hydra
 * (PMI_RANK) each leave one of these in every rank's environment. */
static int launched_by_mpi(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

int fg_dist_available(void)
{
#ifdef HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int fg_dist_init(void)
{
    if (started)
        return FG_OK;
    started = 1;
#ifdef HAVE_MPI
    if (!launched_by_mpi())
        return FG_OK;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return fg_error("MPI_Init_thread failed");
    /* The default, stated: any MPI error ends every rank, so a lost peer
     * stops the job instead of leaving the others waiting. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
#else
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n)
        n = getenv("PMI_SIZE");
    /* Alone, every rank would train the whole model into the same folder. */
    if (n && strcmp(n, "1") != 0)
        return fg_error("started by mpirun, but this flowgrad was built without MPI "
                        "(configure --with-mpi after installing libopenmpi-dev)");
#endif
    return FG_OK;
}

static int mpi_running(void)
{
#ifdef HAVE_MPI
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
#else
    return 0;
#endif
}

void fg_dist_finalize(void)
{
#ifdef HAVE_MPI
    if (mpi_running())
        MPI_Finalize();
#endif
    rank_ = 0;
    size_ = 1;
    started = 0;
}

int fg_dist_rank(void)
{
    return rank_;
}

int fg_dist_size(void)
{
    return size_;
}

void fg_dist_abort(int status)
{
#ifdef HAVE_MPI
    if (mpi_running() && size_ > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
#endif
    exit(status);
}

void fg_dist_sum(double *v, int n, void *ctx)
{
    (void)ctx;
#ifdef HAVE_MPI
    if (size_ > 1 && n > 0)
        MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)v;
    (void)n;
#endif
}

void fg_dist_max(double *v, int n)
{
#ifdef HAVE_MPI
    if (size_ > 1 && n > 0)
        MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
#else
    (void)v;
    (void)n;
#endif
}

void fg_dist_broadcast_state(const fg_state_list *l)
{
#ifdef HAVE_MPI
    if (size_ <= 1)
        return;
    for (int i = 0; i < l->n; i++) {
        fg_tensor *t = &l->items[i].var->t;
        size_t n = fg_numel(t);
        FG_CHECK(n <= INT32_MAX, "fg_dist_broadcast_state", "%s has %zu values",
                 l->items[i].name, n);
        MPI_Bcast(t->data, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    }
#else
    (void)l;
#endif
}

/* The flat gradient buffer lives as long as the process: a training step
 * allocates nothing. */
static float *flat;
static size_t flat_cap;

size_t fg_dist_average_grads(const fg_state_list *l)
{
#ifdef HAVE_MPI
    if (size_ <= 1)
        return 0;
    size_t total = fg_state_list_param_count(l);
    FG_CHECK(total <= INT32_MAX, "fg_dist_average_grads", "%zu gradient values", total);
    if (total > flat_cap) {
        free(flat);
        flat = fg_xmalloc(total * sizeof *flat, "gradient buffer");
        flat_cap = total;
    }
    size_t at = 0;
    for (int i = 0; i < l->n; i++) {
        if (l->items[i].kind != FG_PARAM)
            continue;
        fg_var *v = l->items[i].var;
        size_t n = fg_numel(&v->t);
        if (v->grad)
            memcpy(flat + at, v->grad, n * sizeof *flat);
        else
            memset(flat + at, 0, n * sizeof *flat);
        at += n;
    }
    MPI_Allreduce(MPI_IN_PLACE, flat, (int)total, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    const float inv = 1.0f / (float)size_;
    at = 0;
    for (int i = 0; i < l->n; i++) {
        if (l->items[i].kind != FG_PARAM)
            continue;
        fg_var *v = l->items[i].var;
        size_t n = fg_numel(&v->t);
        if (v->grad)
            for (size_t j = 0; j < n; j++)
                v->grad[j] = flat[at + j] * inv;
        at += n;
    }
    return total * sizeof *flat;
#else
    (void)l;
    return 0;
#endif
}

/* FNV-1a over the bytes of every value: equal on all ranks exactly when the
 * states are equal (up to a 2^-64 collision). */
static uint64_t state_hash(const fg_state_list *l)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < l->n; i++) {
        const fg_tensor *t = &l->items[i].var->t;
        const unsigned char *p = (const unsigned char *)t->data;
        size_t n = fg_numel(t) * sizeof(float);
        for (size_t j = 0; j < n; j++)
            h = (h ^ p[j]) * 1099511628211ull;
    }
    return h;
}

int fg_dist_check_same(const fg_state_list *l)
{
#ifdef HAVE_MPI
    if (size_ <= 1)
        return FG_OK;
    uint64_t h = state_hash(l);
    /* The max of h and of ~h: both equal their own values only when every
     * rank has the same h. */
    uint64_t both[2] = {h, ~h};
    MPI_Allreduce(MPI_IN_PLACE, both, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    if (both[0] != h || both[1] != ~h)
        return fg_error("rank %d: the model state differs between ranks", rank_);
    return FG_OK;
#else
    (void)state_hash;
    (void)l;
    return FG_OK;
#endif
}
