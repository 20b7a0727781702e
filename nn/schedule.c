/* Learning-rate schedules. */
#include "nn/nn.h"

double fg_lr_warmup(double lr, long step, long warmup)
{
    if (warmup <= 0 || step >= warmup)
        return lr;
    return step <= 0 ? 0.0 : lr * (double)step / (double)warmup;
}
