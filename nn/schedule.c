/* Learning-rate schedules. */
#include <math.h>

#include "nn/nn.h"

double fg_lr_warmup(double lr, long step, long warmup)
{
    if (warmup <= 0 || step >= warmup)
        return lr;
    return step <= 0 ? 0.0 : lr * (double)step / (double)warmup;
}

const char *fg_schedule_name(fg_schedule_kind k)
{
    return k == FG_SCHEDULE_COSINE ? "cosine" : k == FG_SCHEDULE_LINEAR ? "linear" : "constant";
}

double fg_lr_schedule(fg_schedule_kind kind, double lr, long step, long warmup, long total)
{
    if (step < warmup || kind == FG_SCHEDULE_CONSTANT || total <= warmup)
        return fg_lr_warmup(lr, step, warmup);
    /* Decay over the updates after warmup, reaching 0 after the last. The
     * last update itself keeps a small step: p < 1 there. */
    double p = (double)(step - warmup) / (double)(total - warmup + 1);
    if (p > 1)
        p = 1;
    if (kind == FG_SCHEDULE_LINEAR)
        return lr * (1 - p);
    return lr * 0.5 * (1 + cos(M_PI * p));
}
