/* The condition of a batch, shaped for the layer that reads it.
 *
 * A conditional layer concatenates the condition to a tensor of its own
 * along the channel axis (a coupling's conditioning part, a prior conv's
 * input), so the condition must take that tensor's spatial shape: a vector
 * per sample is the same at every pixel, and an image of a finer grid is
 * averaged over the pixels that land on one of the layer's (the layer
 * sees the mean of the condition over its receptive cell). Both are
 * products with constant matrices, so the gradient reaches the condition
 * through the ops the tape already has. */
#include "flows/layer.h"

#include <string.h>

/* (rows, k) x (k, cols) with b a constant filled by fill(b, k, cols). */
static fg_var *times_const(fg_graph *g, fg_var *a, int k, int cols,
                           void (*fill)(float *b, int k, int cols))
{
    int shape[2] = {k, cols};
    fg_var *b = fg_const(g, 2, shape);
    fill(b->t.data, k, cols);
    return fg_matmul(g, a, b, 0, 0);
}

static void fill_ones(float *b, int k, int cols)
{
    fg_k_fill((size_t)k * cols, 1.0f, b);
}

static void fill_mean_of_rows(float *b, int k, int cols)
{
    fg_k_fill((size_t)k * cols, 1.0f / (float)k, b);
}

/* Row block k*W + w -> column w, each with weight 1/k: the mean over k
 * consecutive rows of W values. */
static void fill_mean_of_blocks(float *b, int kw, int w)
{
    int k = kw / w;
    memset(b, 0, (size_t)kw * w * sizeof *b);
    for (int r = 0; r < kw; r++)
        b[(size_t)r * w + r % w] = 1.0f / (float)k;
}

/* (N, Cc) -> (N, Cc, H, W), the same vector at every pixel. */
static fg_var *broadcast(fg_graph *g, fg_var *c, int h, int w)
{
    int n = c->t.shape[0], cc = c->t.shape[1];
    int col[2] = {n * cc, 1}, img[4] = {n, cc, h, w};
    fg_var *v = fg_reshape(g, c, 2, col);
    if (h * w > 1)
        v = times_const(g, v, 1, h * w, fill_ones);
    return fg_reshape(g, v, 4, img);
}

/* (N, Cc, Hc, Wc) -> (N, Cc, H, W), each value the mean of its
 * (Hc/H) x (Wc/W) cell. */
static fg_var *pool(fg_graph *g, fg_var *c, int h, int w)
{
    int n = c->t.shape[0], cc = c->t.shape[1], hc = c->t.shape[2], wc = c->t.shape[3];
    int fh = hc / h, fw = wc / w;
    fg_var *v = c;
    if (fw > 1) {
        int rows[2] = {n * cc * hc * w, fw};
        v = times_const(g, fg_reshape(g, v, 2, rows), fw, 1, fill_mean_of_rows);
    }
    if (fh > 1) {
        int rows[2] = {n * cc * h, fh * w};
        v = times_const(g, fg_reshape(g, v, 2, rows), fh * w, w, fill_mean_of_blocks);
    }
    int img[4] = {n, cc, h, w};
    return fg_reshape(g, v, 4, img);
}

fg_var *fg_condition_for(fg_graph *g, const fg_var *condition, const fg_var *like,
                         const char *layer)
{
    char a[FG_SHAPE_STR_LEN], b[FG_SHAPE_STR_LEN];
    fg_var *c = (fg_var *)condition;   /* ops read their inputs only */
    FG_CHECK(c != NULL, layer, "the layer is conditional but no condition was given");
    fg_shape_str(&c->t, a, sizeof a);
    fg_shape_str(&like->t, b, sizeof b);
    int ok_rank = (c->t.ndim == 2 || c->t.ndim == 4) && (like->t.ndim == 2 || like->t.ndim == 4);
    FG_CHECK(ok_rank && c->t.shape[0] == like->t.shape[0], layer,
             "condition %s does not fit the layer's tensor %s: expected (N, Cc) vectors or "
             "(N, Cc, Hc, Wc) images with the same N", a, b);
    if (like->t.ndim == 2) {
        if (c->t.ndim == 2)
            return c;
        int flat[2] = {c->t.shape[0], (int)(fg_numel(&c->t) / (size_t)c->t.shape[0])};
        return fg_reshape(g, c, 2, flat);
    }
    int h = like->t.shape[2], w = like->t.shape[3];
    if (c->t.ndim == 2)
        return broadcast(g, c, h, w);
    FG_CHECK(c->t.shape[2] % h == 0 && c->t.shape[3] % w == 0, layer,
             "image condition %s does not fit the layer's tensor %s: its height and width "
             "must be whole multiples of the layer's %dx%d", a, b, h, w);
    if (c->t.shape[2] == h && c->t.shape[3] == w)
        return c;
    return pool(g, c, h, w);
}
