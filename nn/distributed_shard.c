/* The arithmetic of data parallelism that sits above the collectives:
 * shards of a global batch, means over ranks, and agreeing on a stop. */
#include "nn/distributed.h"

int fg_dist_check_batch(int batch)
{
    int size = fg_dist_size();
    if (batch % size != 0)
        return fg_error("batch %d: the batch is global and must divide evenly among the "
                        "%d ranks (use a multiple of %d)", batch, size, size);
    return FG_OK;
}

int fg_dist_shard_first(int n)
{
    return fg_dist_rank() * (n / fg_dist_size());
}

int fg_dist_shard_size(int n)
{
    return n / fg_dist_size();
}

void fg_dist_mean(double *v, int n)
{
    int size = fg_dist_size();
    if (size == 1)
        return;
    fg_dist_sum(v, n, NULL);
    for (int i = 0; i < n; i++)
        v[i] /= size;
}

int fg_dist_agree_max(int v)
{
    if (fg_dist_size() == 1)
        return v;
    /* Exact in double for every int. */
    double x = v;
    fg_dist_max(&x, 1);
    return (int)x;
}
