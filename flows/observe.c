/* An observer of the log-densities a flow computes, for finding which layer
 * or prior a loss spike comes from (flowgrad train's FLOWGRAD_TRACE). One
 * process-wide observer: tracing is a debugging aid of a single run, and
 * threading it through every layer's signature would cost all callers. */
#include "flows/layer.h"

static fg_flow_observer_fn observer;
static void *observer_ctx;

void fg_flow_set_observer(fg_flow_observer_fn fn, void *ctx)
{
    observer = fn;
    observer_ctx = ctx;
}

void fg_flow_observe(const char *what, const fg_var *v)
{
    if (observer && v)
        observer(observer_ctx, what, v);
}
