/* The per-row epilogue a product may apply as it stores its result (not
 * installed): row i becomes (c + bias[i]) scale[i], then max(0, .) when
 * relu. A convolution followed by actnorm and ReLU (a coupling network's
 * layer) then writes its output once, instead of a product's output that a
 * separate pass reads back and rewrites. Every place that applies it (the
 * AVX-512 kernels, the pass after other products, the per-channel ops of
 * autograd) computes one value by the rule below, so that where it runs
 * never changes a result. */
#ifndef FLOWGRAD_ROW_AFFINE_H
#define FLOWGRAD_ROW_AFFINE_H

typedef struct fg_row_affine {
    const float *bias, *scale;
    int relu;
} fg_row_affine;

/* (v + b) rounded before the product, as actnorm's unfused ops do; then
 * +0 for anything not above 0, NaN and -0 included. */
static inline float fg_row_affine_value(float v, float b, float s, int relu)
{
    const float y = (v + b) * s;
    return relu && !(y > 0.0f) ? 0.0f : y;
}

#endif
