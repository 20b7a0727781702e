/* flowgrad train over several processes: starting and ending MPI around the
 * library's data-parallel calls (nn.h, fg_dist_*). */
#include "examples/train_dist.h"

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

int dist_is_root(void)
{
    return fg_dist_rank() == 0;
}

int dist_end(int status, int agreed)
{
    if (status != 0 && !agreed && fg_dist_size() > 1)
        fg_dist_abort(status);
    fg_dist_finalize();
    return status;
}
