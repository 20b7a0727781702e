/* Outlier-step guard: judges each step's loss and gradient norm against
 * robust statistics (medians and MADs) of recent accepted steps. Medians,
 * not means and variances, because the outliers it exists for are 1e2 to
 * 1e8 times the typical value and would drag a mean along with them.
 * Gradient norms are judged in log space: across training they vary by
 * factors, not offsets. The history is kept as floats so that a checkpoint
 * holds it exactly and a resumed run takes the same decisions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/step_guard.h"

/* MAD * 1.4826 estimates the standard deviation of a normal sample. */
#define MAD_TO_SIGMA 1.4826
/* Spread floors: a window of near-identical values must not turn ordinary
 * changes into outliers. The loss's is 0.1 bits/dim (at the default
 * threshold of 8, 0.8 above the recent level): successive training losses
 * of the ablation model differ by only 0.01-0.05 around step 100, yet swing
 * by 0.2 while Adam's steps settle, and undoing those swings only repeats
 * them; the jumps worth a skip are 1 bit/dim and more. The norm's is 0.5
 * in log (at threshold 8, e^4 = 55 times the median): during warmup the
 * norm of fmnist-quick climbs 8-fold within 3 steps from a window that
 * varies by 5 %; the norms of the jumps we measured were 14 to 1e7 times
 * the median, and the loss catches the smaller ones. See BENCHMARKS.md,
 * "Loss jumps". */
#define LOSS_FLOOR 0.1
#define LOG_NORM_FLOOR 0.5

void fg_step_guard_init(fg_step_guard *g, int window, int warmup, double threshold,
                        double clip_factor)
{
    FG_CHECK(window >= 1 && window <= FG_GUARD_MAX_WINDOW && warmup >= 1 &&
                 warmup <= window && threshold > 0 && clip_factor >= 0,
             "fg_step_guard_init", "window %d, warmup %d, threshold %g, clip_factor %g",
             window, warmup, threshold, clip_factor);
    memset(g, 0, sizeof *g);
    g->window = window;
    g->warmup = warmup;
    g->threshold = threshold;
    g->clip_factor = clip_factor;
    g->lr_scale = 1.0f;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median and MAD of the n values of v. */
static void robust(const float *v, int n, double *median, double *mad)
{
    float s[FG_GUARD_MAX_WINDOW];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_float);
    double m = n % 2 ? s[n / 2] : 0.5 * ((double)s[n / 2 - 1] + s[n / 2]);
    for (int i = 0; i < n; i++)
        s[i] = (float)fabs(s[i] - m);
    qsort(s, (size_t)n, sizeof *s, cmp_float);
    *median = m;
    *mad = n % 2 ? s[n / 2] : 0.5 * ((double)s[n / 2 - 1] + s[n / 2]);
}

static double limit(const float *v, int n, double threshold, double floor)
{
    double med, mad;
    robust(v, n, &med, &mad);
    double spread = MAD_TO_SIGMA * mad;
    return med + threshold * (spread > floor ? spread : floor);
}

/* Steps the loss's level is the median of: few, so that a falling or
 * rising loss is followed closely. */
#define LEVEL_STEPS 5

/* The loss falls fast early and may drift later: a spread taken around
 * one median would count that trend as noise and let 2 bits/dim jumps
 * through. So its level is the median of the last LEVEL_STEPS losses and its
 * spread comes from the differences of successive losses, which a trend
 * shifts but does not widen (the MAD of a difference of two independent
 * values is sqrt(2) times theirs). */
static double loss_limit(const fg_step_guard *g)
{
    float d[FG_GUARD_MAX_WINDOW], recent[LEVEL_STEPS];
    int first = (g->head - g->n + g->window) % g->window, nd = 0, nr = 0;
    for (int i = 0; i < g->n; i++) {
        float v = g->loss[(first + i) % g->window];
        if (i > 0)
            d[nd++] = v - g->loss[(first + i - 1) % g->window];
        if (i >= g->n - LEVEL_STEPS)
            recent[nr++] = v;
    }
    double level, mad, dmed, dmad;
    robust(recent, nr, &level, &mad);
    robust(d, nd, &dmed, &dmad);
    double spread = MAD_TO_SIGMA * dmad / sqrt(2.0);
    return level + g->threshold * (spread > LOSS_FLOOR ? spread : LOSS_FLOOR);
}

int fg_step_guard_judge(const fg_step_guard *g, double loss, double norm)
{
    /* Two values at least: the loss's spread needs one difference. */
    if (g->n < g->warmup || g->n < 2)
        return FG_GUARD_ACCEPT;
    int verdict = FG_GUARD_ACCEPT;
    if (loss > loss_limit(g))
        verdict |= FG_GUARD_LOSS;
    if (norm > 0 && log(norm) > limit(g->log_norm, g->n, g->threshold, LOG_NORM_FLOOR))
        verdict |= FG_GUARD_NORM;
    return verdict;
}

void fg_step_guard_accept(fg_step_guard *g, double loss, double norm)
{
    g->loss[g->head] = (float)loss;
    g->log_norm[g->head] = (float)log(norm > 1e-30 ? norm : 1e-30);
    g->head = (g->head + 1) % g->window;
    if (g->n < g->window)
        g->n++;
    g->run = 0;
    g->lr_scale = g->lr_scale * 1.1f < 1.0f ? g->lr_scale * 1.1f : 1.0f;
}

void fg_step_guard_reject(fg_step_guard *g, int verdict)
{
    g->skipped++;
    g->run++;
    g->lr_scale = g->lr_scale > 1.0f / 64 ? g->lr_scale * 0.5f : 1.0f / 64;
    if (verdict & FG_GUARD_NORM)
        g->by_norm++;
    if (verdict & FG_GUARD_LOSS)
        g->by_loss++;
}

double fg_step_guard_clip(const fg_step_guard *g)
{
    if (g->clip_factor <= 0 || g->n < g->warmup)
        return 0;
    double med, mad;
    robust(g->log_norm, g->n, &med, &mad);
    return g->clip_factor * exp(med);
}

void fg_step_guard_restart(fg_step_guard *g)
{
    g->n = g->head = 0;
    g->run = 0;
    g->restarts++;
}

/* Layout: window, n, head, run, skipped, by_loss, by_norm, restarts, the
 * float bits of lr_scale, then those of the window's losses and log norms. */
#define HEAD 9

int fg_step_guard_state_len(const fg_step_guard *g)
{
    return HEAD + 2 * g->window;
}

void fg_step_guard_save(const fg_step_guard *g, int64_t *s)
{
    uint32_t scale;
    memcpy(&scale, &g->lr_scale, 4);
    int64_t h[HEAD] = {g->window, g->n, g->head, g->run, g->skipped, g->by_loss,
                       g->by_norm, g->restarts, scale};
    memcpy(s, h, sizeof h);
    for (int i = 0; i < g->window; i++) {
        uint32_t a, b;
        memcpy(&a, &g->loss[i], 4);
        memcpy(&b, &g->log_norm[i], 4);
        s[HEAD + i] = a;
        s[HEAD + g->window + i] = b;
    }
}

int fg_step_guard_load(fg_step_guard *g, const int64_t *s, int n)
{
    if (n != fg_step_guard_state_len(g) || s[0] != g->window)
        return fg_error("train.guard: holds a window of %lld steps, the config's "
                        "guard_window is %d", n >= 1 ? (long long)s[0] : 0LL, g->window);
    if (s[1] < 0 || s[1] > g->window || s[2] < 0 || s[2] >= g->window || s[3] < 0 ||
        s[4] < 0 || s[5] < 0 || s[6] < 0 || s[7] < 0)
        return fg_error("train.guard: counters out of range (n %lld, head %lld)",
                        (long long)s[1], (long long)s[2]);
    float scale;
    uint32_t u = (uint32_t)s[8];
    memcpy(&scale, &u, 4);
    if (s[8] < 0 || s[8] > UINT32_MAX || !(scale >= 1.0f / 64 && scale <= 1.0f))
        return fg_error("train.guard: learning-rate factor is not in [1/64, 1]");
    /* All entries are checked before any is copied. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 2 * g->window; i++) {
            float f;
            uint32_t u = (uint32_t)s[HEAD + i];
            memcpy(&f, &u, 4);
            if (s[HEAD + i] < 0 || s[HEAD + i] > UINT32_MAX || !isfinite(f))
                return fg_error("train.guard: entry %d is not a finite float", HEAD + i);
            if (pass)
                (i < g->window ? g->loss : g->log_norm)[i % g->window] = f;
        }
    g->n = (int)s[1];
    g->head = (int)s[2];
    g->run = s[3];
    g->skipped = s[4];
    g->by_loss = s[5];
    g->by_norm = s[6];
    g->restarts = s[7];
    g->lr_scale = scale;
    return FG_OK;
}
