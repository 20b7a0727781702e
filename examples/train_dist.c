/* flowgrad train over several processes: the glue between the training loop
 * and the library's data-parallel calls (nn.h, fg_dist_*). */
#include "examples/train_dist.h"

#include <signal.h>
#include <stdlib.h>

int dist_start(int threads_given)
{
    if (fg_dist_init() != FG_OK)
        return FG_ERR;
    if (fg_dist_size() == 1)
        return FG_OK;
    fg_actnorm_set_reducer(fg_dist_sum, NULL);
    /* Ranks on one machine split its cores instead of each taking all. */
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    int per_node = local ? atoi(local) : 0;
    if (!threads_given && !getenv("FLOWGRAD_THREADS") && per_node > 1) {
        int t = fg_get_threads() / per_node;
        fg_set_threads(t > 0 ? t : 1);
    }
    return FG_OK;
}

int dist_check_batch(int batch)
{
    int size = fg_dist_size();
    if (batch % size != 0)
        return fg_error("batch %d: the batch is global and must divide evenly among the "
                        "%d ranks (use a multiple of %d)", batch, size, size);
    return FG_OK;
}

int dist_shard_first(int n)
{
    return fg_dist_rank() * (n / fg_dist_size());
}

int dist_shard_size(int n)
{
    return n / fg_dist_size();
}

void dist_skip_noise(fg_rng *rng, const fg_dataset *d, int first)
{
    /* fg_dequantize draws one uniform per value, sample by sample, and the
     * Philox stream is indexed by its counter. */
    rng->counter += (uint64_t)first * d->c * d->h * d->w;
}

void dist_mean(double *v, int n)
{
    int size = fg_dist_size();
    if (size == 1)
        return;
    fg_dist_sum(v, n, NULL);
    for (int i = 0; i < n; i++)
        v[i] /= size;
}

double dist_eval_bpd(fg_model *m, fg_graph *g, const fg_dataset *d, int batch,
                     uint64_t seed)
{
    int size = fg_dist_size(), rank = fg_dist_rank();
    if (size == 1)
        return cli_eval_bpd(m, g, d, batch, seed, 0);
    /* Contiguous parts whose sizes differ by at most one image. */
    int first = (int)((long long)d->n * rank / size);
    int last = (int)((long long)d->n * (rank + 1) / size);
    double sum = cli_eval_bpd_sum(m, g, d, batch, seed, first, last - first);
    fg_dist_sum(&sum, 1, NULL);
    return sum / d->n;
}

void dist_broadcast_start(const fg_state_list *model, fg_optim *o, fg_ema *ema)
{
    if (fg_dist_size() == 1)
        return;
    fg_state_list l;
    fg_state_list_init(&l);
    fg_optim_visit(o, fg_state_list_add, &l);
    if (ema)
        fg_ema_visit(ema, fg_state_list_add, &l);
    fg_dist_broadcast_state(model);
    fg_dist_broadcast_state(&l);
    fg_state_list_free(&l);
}

int dist_is_root(void)
{
    return fg_dist_rank() == 0;
}

int dist_agree_stop(int local_signal)
{
    if (fg_dist_size() == 1)
        return local_signal;
    /* Counts of the two signals train catches, summed over ranks. */
    double seen[2] = {local_signal == SIGTERM, local_signal == SIGINT};
    fg_dist_sum(seen, 2, NULL);
    return seen[0] > 0 ? SIGTERM : seen[1] > 0 ? SIGINT : 0;
}

int dist_end(int status, int agreed)
{
    if (status != 0 && !agreed && fg_dist_size() > 1)
        fg_dist_abort(status);
    fg_dist_finalize();
    return status;
}
